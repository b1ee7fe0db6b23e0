"""What the app's telemetry exporter sends, captured: an Application Insights ingestion stand-in
(the exporter is pointed at it with the connection string's IngestionEndpoint), the envelopes it
received turned into the tables an operator queries in Azure (traces, dependencies, exceptions,
requests), and a scenario that produces every event the runbook and the alerts read.

The exporter is the real one (azure-monitor-opentelemetry, configured by shared/telemetry.py in
the app's own process), so what is checked here is what would reach Application Insights: the
envelopes after Azure Monitor's mapping of spans and log records, as sent over HTTP."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import json
import re
import threading
from typing import Any

import requests

from devtools.local_env import offline_settings
from exports.services import Services
from exports.settings import ExportSettings
from shared.names import EXPORT_POISON_QUEUE
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample
from standins.server import Request, Response, StandInServer
from tests.harness import FAST, TOKEN_KEY, clear_storage, create_export_record, host_process, wait_for

IKEY = "00000000-0000-0000-0000-000000000000"
OWNER = {"Authorization": "Bearer demo-owner-token"}
SEVERITY = {"Verbose": 0, "Information": 1, "Warning": 2, "Error": 3, "Critical": 4}


class IngestionStandIn:
    """Accepts what the Azure Monitor exporter posts to `{IngestionEndpoint}/v2.1/track` and
    keeps each body as sent (decompressed) and each envelope."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.envelopes: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    raw = gzip.decompress(raw)
                text = raw.decode("utf-8")
                items = (
                    json.loads(text)
                    if text.lstrip().startswith("[")
                    else [json.loads(line) for line in text.splitlines() if line.strip()]
                )
                with stand_in._lock:
                    stand_in.bodies.append(text)
                    stand_in.envelopes.extend(items)
                answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint={self.url}/"

    def __enter__(self) -> IngestionStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.envelopes)


# -- envelopes as Application Insights' tables ------------------------------------------------
def _milliseconds(duration: str) -> float:
    """An envelope duration, `d.hh:mm:ss.fff` (the exporter's ns_to_duration), in milliseconds."""
    days, _, clock = duration.partition(".")
    hours, minutes, seconds = clock.split(":")
    return ((int(days) * 24 + int(hours)) * 60 + int(minutes)) * 60_000 + float(seconds) * 1000


def tables(envelopes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """traces, dependencies, exceptions and requests rows, with the columns the queries use."""
    found: dict[str, list[dict[str, Any]]] = {
        "traces": [],
        "dependencies": [],
        "exceptions": [],
        "requests": [],
    }
    for item in envelopes:
        data = item.get("data", {})
        base = data.get("baseData", {})
        tags = item.get("tags", {})
        common = {
            "timestamp": item["time"].replace("T", " ").rstrip("Z")[:26],
            "customDimensions": json.dumps(base.get("properties") or {}),
            "operation_Id": tags.get("ai.operation.id", ""),
            "cloud_RoleName": tags.get("ai.cloud.role", ""),
        }
        kind = data.get("baseType")
        if kind == "MessageData":
            found["traces"].append(
                {
                    **common,
                    "message": base["message"],
                    "severityLevel": SEVERITY.get(base.get("severityLevel"), 1),
                }
            )
        elif kind == "RemoteDependencyData":
            found["dependencies"].append(
                {
                    **common,
                    "name": base.get("name", ""),
                    "target": base.get("target", ""),
                    "type": base.get("type", ""),
                    "data": base.get("data", ""),
                    "resultCode": base.get("resultCode", ""),
                    "duration": _milliseconds(base.get("duration", "0.00:00:00.000")),
                    "success": bool(base.get("success")),
                }
            )
        elif kind == "ExceptionData":
            details = (base.get("exceptions") or [{}])[0]
            found["exceptions"].append(
                {**common, "type": details.get("typeName", ""), "outerMessage": details.get("message", "")}
            )
    return found


COLUMNS = {
    "traces": "timestamp TIMESTAMP, message VARCHAR, severityLevel INTEGER",
    "dependencies": "timestamp TIMESTAMP, name VARCHAR, target VARCHAR, type VARCHAR, data VARCHAR, "
    "resultCode VARCHAR, duration DOUBLE, success BOOLEAN",
    "exceptions": "timestamp TIMESTAMP, type VARCHAR, outerMessage VARCHAR",
    # Made by the Functions host, not the worker: empty here (its queries are checked for syntax).
    "requests": "timestamp TIMESTAMP, name VARCHAR, url VARCHAR, resultCode VARCHAR, duration DOUBLE, "
    "success BOOLEAN",
}
COMMON_COLUMNS = "customDimensions JSON, operation_Id VARCHAR, cloud_RoleName VARCHAR, itemType VARCHAR"
ITEM_TYPES = {
    "traces": "trace",
    "dependencies": "dependency",
    "exceptions": "exception",
    "requests": "request",
}


def database(rows: dict[str, list[dict[str, Any]]]) -> Any:
    """A DuckDB database holding the tables, for duckdb-kql."""
    import duckdb_kql

    connection = duckdb_kql.connect()
    for table, columns in COLUMNS.items():
        connection.execute(f"CREATE TABLE {table} ({columns}, {COMMON_COLUMNS})")
        names = [c.split()[0] for c in (columns + ", " + COMMON_COLUMNS).split(", ")]
        for row in rows.get(table, []):
            placeholders = ", ".join("?" for _ in names)
            values = {**row, "itemType": ITEM_TYPES[table]}
            connection.execute(f"INSERT INTO {table} VALUES ({placeholders})", [values[n] for n in names])
    return connection


def kql(connection: Any, query: str) -> list[dict[str, Any]]:
    import duckdb_kql

    result = duckdb_kql.query(connection, query)
    columns = [c[0] for c in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


# -- the scenario ------------------------------------------------------------------------------
@dataclasses.dataclass
class Capture:
    envelopes: list[dict[str, Any]]
    bodies: list[str]  # the request bodies as the exporter sent them
    exports: dict[str, str]  # outcome -> export id
    secrets: dict[str, str]  # name -> value that must not reach telemetry
    host_log: str


class Gone(StandInServer):
    """A callback receiver that refuses every delivery for good (410)."""

    def handle(self, req: Request) -> Response:
        return Response(410, {"error": "gone"})


def _export(base: str, export_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{base}/api/exports/{export_id}", headers=OWNER, timeout=30).json()
    return answer


def _start(base: str, subject_set: str, body: dict[str, Any] | None = None) -> str:
    answer = requests.post(
        f"{base}/api/projects/1234/subject-sets/{subject_set}/exports", headers=OWNER, json=body, timeout=30
    )
    assert answer.status_code == 202, answer.text
    export_id: str = answer.json()["id"]
    return export_id


def _final(base: str, export_id: str, timeout: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (e := _export(base, export_id))["status"] in ("completed", "failed", "cancelled") and e,
        timeout,
        message=f"export {export_id} to end",
    )
    return found


def run_scenario(azurite: Any, tmp_path: Any) -> Capture:
    """The app in its own process with telemetry on: one export completes after the ML service
    was unreachable for several ticks, one fails ml_rejected, one subject_set_empty (a user
    outcome), and one is failed by the poison handler."""
    with (
        IngestionStandIn() as ingestion,
        PanoptesStandIn() as panoptes,
        Gone() as gone,
        # The service's monitor is run here, step by step (as the real one runs every 10 minutes),
        # so that the app's timer, which polls every second, sees each status.
        MlServiceStandIn(callers=("zooniverse",)) as ml,
    ):
        load_sample(panoptes)
        image = [{"id": "1", "locations": [{"image/jpeg": "https://x/1.jpg"}]}]
        panoptes.add_subject_set("8400", "1234", "Rejected", image)
        panoptes.add_subject_set("8401", "1234", "Poisoned", image)
        env = offline_settings(
            azurite,
            panoptes,
            ml,
            TOKEN_KEY,
            **FAST,
            ML_POLL_SCHEDULE="* * * * * *",  # a tick every second
            CALLBACK_ALLOW_PRIVATE="true",  # the callback receiver is on 127.0.0.1
            APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string,
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",  # no calls to Microsoft's endpoints
            OTEL_BSP_SCHEDULE_DELAY="200",
            OTEL_BLRP_SCHEDULE_DELAY="200",
        )
        services = Services.from_settings(ExportSettings.from_env(env))
        services.ensure_resources()
        clear_storage(services)
        exports: dict[str, str] = {}
        with host_process(env, tmp_path, timers=True) as host:
            # Completed, after the ML service answered 503 to every status poll for a while.
            down = ml.faults.add(r"/task/", "status", status=503, method="GET")
            exports["completed"] = _start(host.url, "5678")
            wait_for(lambda: down.hits >= 4, 60, message="four polls while the ML service is down")
            down.remove()
            assert ml.wait_for_downloads(30)
            ml.run_monitor()  # the task runs
            wait_for(
                lambda: _export(host.url, exports["completed"])["status"] == "running", 60, message="running"
            )
            ml.run_monitor()  # and completes
            assert _final(host.url, exports["completed"])["status"] == "completed"
            # Failed with an operational code: the ML service refuses the submission.
            refused = ml.faults.add(r"request_detections", "status", status=400, method="POST", times=1)
            exports["ml_rejected"] = _start(host.url, "8400")
            assert _final(host.url, exports["ml_rejected"])["error"]["code"] == "ml_rejected"
            assert refused.hits == 1
            # Failed with a user outcome: nothing to send. Its caller asked for a callback, which
            # the receiver refuses (410): the delivery is given up.
            callback = {"callback_url": f"{gone.root_url}/hook", "callback_token": "x" * 20}
            exports["subject_set_empty"] = _start(host.url, "5679", callback)
            assert _final(host.url, exports["subject_set_empty"])["error"]["code"] == "subject_set_empty"
            wait_for(
                lambda: _export(host.url, exports["subject_set_empty"])["callback"]["state"] == "gave_up",
                60,
                message="the callback to be given up",
            )
            # A message on the poison queue: the poison handler fails its export.
            poisoned, body = create_export_record(services, subject_set_id="8401")
            exports["poisoned"] = poisoned.id
            services.storage.queue(EXPORT_POISON_QUEUE).send_message(body)
            assert _final(host.url, poisoned.id)["error"]["code"] == "internal_error"
            # Everything reached the exporter's stand-in (the exporter sends in the background).
            wanted = set(exports.values())
            wait_for(
                lambda: wanted <= _finished_ids(ingestion.snapshot()),
                60,
                message="the export_finished events to be sent",
            )
            host_log = host.output()
        sas = ml.submissions[0].body["images_requested_json_sas"]
        results_url = ml.task(ml.submissions[0].request_id)["message"]["output_file_urls"]["detections"]
        secrets = {
            "token demo-owner-token": "demo-owner-token",
            "TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
            "storage account key": env["AzureWebJobsStorage"].split("AccountKey=")[1].split(";")[0],
            "manifest SAS signature": _query_value(sas, "sig"),
            "detections file SAS signature": _query_value(results_url, "sig"),
            "detections file SAS signature, as in its URL": _query_value(results_url, "sig", decoded=False),
        }
        return Capture(ingestion.snapshot(), list(ingestion.bodies), exports, secrets, host_log)


def _finished_ids(envelopes: list[dict[str, Any]]) -> set[str]:
    found = set()
    for item in envelopes:
        properties = item.get("data", {}).get("baseData", {}).get("properties") or {}
        if properties.get("event") == "export_finished":
            found.add(properties.get("export_id"))
    return found


def _query_value(url: str, name: str, decoded: bool = True) -> str:
    match = re.search(rf"[?&]{name}=([^&]+)", url)
    assert match, f"no {name} in the URL"
    return requests.utils.unquote(match.group(1)) if decoded else match.group(1)
