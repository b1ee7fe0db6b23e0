"""shared/telemetry.py without an exporter: dimensions set once reach every record made inside
them (and only there), URLs lose their query strings, and nothing starts without the setting."""

import concurrent.futures
import contextvars
import logging

import pytest

from shared import telemetry


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    telemetry.start({})  # installs the record factory; no connection string: no exporter
    handler = Recorder()
    logger = logging.getLogger("tests.telemetry.child")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)


def test_dimensions_reach_records_inside_the_block_only(records):
    log = logging.getLogger("tests.telemetry.child")
    with telemetry.log_context(export_id="1-2-x", project_id="1", subject_set_id=None):
        log.info("inside")
        telemetry.bind(ml_task_id="task-1")
        log.info("after the task is known")
        with telemetry.log_context(project_id="9"):
            log.info("nested")
        log.info("back")
    log.info("outside")
    inside, known, nested, back, outside = records
    assert (inside.export_id, inside.project_id) == ("1-2-x", "1")
    assert not hasattr(inside, "subject_set_id") and not hasattr(inside, "ml_task_id")
    assert known.ml_task_id == "task-1" and nested.project_id == "9" and back.project_id == "1"
    assert back.ml_task_id == "task-1"
    assert not hasattr(outside, "export_id") and not hasattr(outside, "ml_task_id")
    assert telemetry.dimensions() == {}


def test_a_copied_context_carries_the_dimensions_into_pool_threads(records):
    log = logging.getLogger("tests.telemetry.child")
    with telemetry.log_context(export_id="1-2-x"), concurrent.futures.ThreadPoolExecutor(2) as pool:
        pool.submit(contextvars.copy_context().run, log.info, "copied").result()
        pool.submit(log.info, "not copied").result()
    copied, plain = records
    assert copied.export_id == "1-2-x" and not hasattr(plain, "export_id")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://acct.blob.core.windows.net/c/b.json?sv=1&sig=abc%2B",
            "https://acct.blob.core.windows.net/c/b.json",
        ),
        ("https://user:pw@host:8443/v4/task/1?x=1#frag", "https://host:8443/v4/task/1"),
        ("http://127.0.0.1:5050", "http://127.0.0.1:5050/"),
    ],
)
def test_urls_lose_query_fragment_and_user_info(url, expected):
    assert telemetry.url_without_query(url) == expected


def test_without_the_setting_nothing_is_configured_and_calls_pass_through():
    assert telemetry.start({"APPLICATIONINSIGHTS_CONNECTION_STRING": " "}) is False

    class Http:
        def request(self, method, url, **kwargs):
            return (method, url, kwargs)

    traced = telemetry.traced(Http(), "Panoptes", ("page",))
    assert traced.request("GET", "http://x/api/subjects", params={"page": 2}) == (
        "GET",
        "http://x/api/subjects",
        {"params": {"page": 2}},
    )
    assert telemetry.traced(traced, "again") is traced


def test_the_exporter_authenticates_with_entra_id_when_the_setting_says_so():
    assert telemetry._credential("") is None
    assert telemetry._credential("Authorization=key") is None
    credential = telemetry._credential("ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD")
    assert type(credential).__name__ == "ManagedIdentityCredential"
