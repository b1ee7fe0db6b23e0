"""The detections URL the ML service reports is untrusted input (issue: hold up against the real
service and hostile input). Only https links on allowed hosts, or on the ML service's own origin,
are followed and shown; downloads are streamed, bounded in bytes and total time, never inflated;
and one slow download never holds back the other exports of a tick."""

import contextlib
import fcntl
import pathlib
import select
import socket
import tempfile
import threading

import pytest

from standins.ml_service.detections import gzip_bomb
from standins.sample_data import sample_subjects
from standins.server import Response, StandInServer
from tests.harness import wait_for

BOUNDS = {"RESULTS_MAX_MEGABYTES": "1", "RESULTS_DOWNLOAD_SECONDS": "3"}


class Counting(StandInServer):
    """Another host: counts requests, answers a valid detections file."""

    def handle(self, req):
        return Response(200, {"images": []}, content_type="application/json")


@pytest.mark.parametrize("settings_overrides", [BOUNDS])
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(document.cookie)",
        "https://evil.example/detections.json",
        "https://x.blob.core.windows.net.evil.example/detections.json",
        "ftp://127.0.0.1/detections.json",
        "OTHER_HOST",  # plain http to another local host (a different origin than the ML service)
    ],
)
def test_a_results_link_off_the_allowlist_is_neither_fetched_nor_returned(stack, url, caplog):
    with Counting() as other:
        url = f"http://127.0.0.1:{other.port}/detections.json?sv=1&sig=SECRET" if url == "OTHER_HOST" else url
        export = stack.submitted_export()
        stack.ml.configure(export["ml_task_id"], results_url=url)
        stack.tick(), stack.tick()
        done = stack.get(export["id"]).json()
        assert done["status"] == "completed", done
        assert done["results_url"] is None
        assert done["results_summary"]["available"] is False
        assert "not" in done["results_summary"]["reason"] or "only https" in done["results_summary"]["reason"]
        assert url not in str(done) and "SECRET" not in str(done)  # not in ml_message either
        assert other.total_requests == 0
        warnings = [r.getMessage() for r in caplog.records if "not followed" in r.getMessage()]
        assert warnings and all("SECRET" not in w and "sig=" not in w for w in warnings)


class Listener:
    """Counts TCP connections to 127.0.0.1 and ::1 on port 443 (and 80): where a URL that two
    parsers read differently would be fetched from (urllib3 ends the host at a backslash)."""

    # One listener at a time on this machine (xdist workers, parallel runs): a second one could
    # not bind port 443 and its test would be skipped, or count the first one's connections.
    LOCK = pathlib.Path(tempfile.gettempdir()) / "sa-export-tests-listener-443.lock"

    def __init__(self):
        self.connections = 0
        self._sockets = []
        self._lock = open(self.LOCK, "w")  # noqa: SIM115 (held until close())
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            for port in (443, 80):
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    sock.close()
                    if family == socket.AF_INET and port == 443:
                        self._lock.close()
                        pytest.skip(f"cannot listen on {host}:{port} ({exc}); run as root")
                    continue
                sock.listen(16)
                sock.setblocking(False)  # select() waits; accept() only takes what is there
                self._sockets.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            ready, _, _ = select.select(self._sockets, [], [], 0.02)
            self._take(ready)

    def _take(self, sockets):
        for sock in sockets:
            with contextlib.suppress(OSError):
                while True:  # every connection waiting on it (accept raises when there is none)
                    conn, _ = sock.accept()
                    self.connections += 1
                    conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._take(self._sockets)  # connections made just before close() count too
        for sock in self._sockets:
            sock.close()
        self._lock.close()  # the next listener may bind


# The security review's URLs, and variants: hosts that one parser ends at a backslash, an escape,
# whitespace, a control character or a user-info '@', so that a check by one parser and a fetch
# by another would reach 127.0.0.1 or ::1 instead of the allowed host.
PARSER_DIFFERENTIALS = [
    "https://127.0.0.1\\.x.blob.core.windows.net/d.json",
    "https://localhost\\.x.blob.core.windows.net/d.json?sig=SECRET",
    "HTTPS://127.0.0.1\\.X.BLOB.CORE.WINDOWS.NET/d.json",
    "https://127.0.0.1\\\\.x.blob.core.windows.net/d.json",
    "https://127.0.0.1:443\\.x.blob.core.windows.net/d.json",
    "https://[::1]\\.x.blob.core.windows.net/d.json",
    "https://x.blob.core.windows.net\\@127.0.0.1/d.json",
    "https:\\\\127.0.0.1\\.x.blob.core.windows.net/d.json",
    "https://127.0.0.1%5c.x.blob.core.windows.net/d.json",
    "https://127.0.0.1%5C.x.blob.core.windows.net/d.json",
    "https://127.0.0.1%2f.x.blob.core.windows.net/d.json",
    "https://127.0.0.1%00.x.blob.core.windows.net/d.json",
    "https://127.0.0.1\t.x.blob.core.windows.net/d.json",
    "https://127.0.0.1 .x.blob.core.windows.net/d.json",
    "https://127.0.0.1\x00.x.blob.core.windows.net/d.json",
    "https://127.0.0.1\r\n.x.blob.core.windows.net/d.json",
    "https://127.0.0.1\u3002x.blob.core.windows.net/d.json",
    "https://x.blob.core.windows.net@127.0.0.1/d.json",
    "https://x.blob.core.windows.net%40127.0.0.1/d.json",
    "https://0x7f.0.0.1/d.json",
    "https://127.1/d.json",
    "https://x.blob.core.windows.net./d.json",
]


def test_the_listener_counts_a_connection_even_one_made_just_before_it_closes():
    """Without this, every test that asserts `listener.connections == 0` could pass with a
    listener that never counts."""
    listener = Listener()
    try:
        with socket.create_connection(("127.0.0.1", 443), timeout=5):
            pass
    finally:
        listener.close()
    assert listener.connections == 1


@pytest.mark.parametrize("url", PARSER_DIFFERENTIALS)
def test_a_results_link_two_parsers_read_differently_is_neither_fetched_nor_returned(stack, url):
    export = stack.submitted_export()  # no results are fetched before the ticks
    stack.ml.configure(export["ml_task_id"], results_url=url)
    listener = Listener()  # one at a time on the machine: held only while results may be fetched
    try:
        stack.tick(), stack.tick()
        done = stack.get(export["id"]).json()
    finally:
        listener.close()
    assert listener.connections == 0, "fetched from a local host"
    assert done["status"] == "completed", done
    assert done["results_url"] is None
    assert done["results_summary"]["available"] is False, done["results_summary"]
    assert url not in str(done) and "SECRET" not in str(done)


@pytest.mark.parametrize(
    "mode,reason,settings_overrides",
    [
        # Each decides on its bound, not on the machine's speed: the deadline is long where the
        # bound is the bytes or the encoding, and short only where it is the time itself.
        (
            "gzip_bomb",
            "could not be downloaded (compressed answer",
            {**BOUNDS, "RESULTS_DOWNLOAD_SECONDS": "120"},
        ),
        ("oversized", "larger than the 1 MB", {**BOUNDS, "RESULTS_DOWNLOAD_SECONDS": "120"}),
        ("not_json", "could not be read", {**BOUNDS, "RESULTS_DOWNLOAD_SECONDS": "120"}),
        ("drip", "did not download within 3 s", BOUNDS),
    ],
)
def test_hostile_results_are_read_only_within_their_bounds(stack, mode, reason):
    gzip_bomb()  # built before the tick (once per process), so its answer starts at once
    export = stack.submitted_export()
    task = export["ml_task_id"]
    # A drip announces 60 s of bytes: past the 3 s deadline whatever the machine's load.
    stack.ml.configure(
        task, results_mode=mode, results_bytes=3 * 1024 * 1024, drip_interval=0.2, drip_max_seconds=60
    )
    stack.tick(), stack.tick()
    stack.ml.end_drips()
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed" and done["results_url"].startswith(stack.ml.root_url)
    summary = done["results_summary"]
    assert summary["available"] is False and reason in summary["reason"], summary


@pytest.mark.parametrize("settings_overrides", [{"RESULTS_DOWNLOAD_SECONDS": "600"}])
def test_a_slow_download_does_not_hold_back_the_ticks_other_exports(stack):
    """The property: the quick export is written while the slow one is still downloading (the
    slow one drips for up to 10 minutes; the test ends it once the quick one is written)."""
    stack.panoptes.add_subject_set("5680", "1234", "Camera C", sample_subjects(first_id=93000, count=3))
    slow = stack.submitted_export("5678")
    quick = stack.submitted_export("5680")
    stack.tick()  # both running
    stack.ml.configure(slow["ml_task_id"], results_mode="drip", drip_interval=0.5, drip_max_seconds=600)
    tick = threading.Thread(target=stack.tick)
    tick.start()
    try:
        wait_for(lambda: stack.export(quick["id"]).status == "completed", 120, message="the quick export")
        assert tick.is_alive(), "the slow download should still be running"
        assert stack.export(quick["id"]).summary["available"] is True
        assert stack.export(slow["id"]).status == "running"
    finally:
        stack.ml.end_drips()  # cut short: the slow one completes without a summary
        tick.join(60)
    slow_done = stack.export(slow["id"])
    assert slow_done.status == "completed" and slow_done.summary["available"] is False


def test_the_same_image_in_two_subjects_is_accounted_for_twice(stack):
    """Rows are matched on (file, meta): the same image URL in two subjects is two rows, each
    found in the file, neither counted as missing."""
    twice = [
        {"id": "950", "locations": [{"image/jpeg": "https://x.example/same.jpg"}]},
        {"id": "951", "locations": [{"image/jpeg": "https://x.example/same.jpg"}]},
    ]
    stack.panoptes.add_subject_set("5681", "1234", "Same image twice", twice)
    export = stack.submitted_export("5681")
    stack.tick(), stack.tick()
    summary = stack.get(export["id"]).json()["results_summary"]
    assert summary["images_sent"] == 2 and summary["images_scored"] + summary["images_failed"] == 2
    assert summary["images_missing"] == 0 and summary["subjects_sent"] == 2
