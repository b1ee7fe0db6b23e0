"""`ready`: is each thing the service needs answering right now? Storage (the export table, the
work and poison queues), Panoptes and the ML service, each asked once with a timeout, and which
one is down. GET /api/health stays anonymous and says only ok or not (it checks storage); this
view is for operators, so it may name what it checked."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable

from ops.connect import Storage
from shared.outbound import OutboundError, OutboundHttp


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail = probe()
        return Check(name, True, detail, time.monotonic() - started)
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {str(exc)[:200]}", time.monotonic() - started)


def storage_probe(storage: Storage) -> Callable[[], str]:
    def probe() -> str:
        storage.store.ping()
        work = storage.queue.get_queue_properties().approximate_message_count
        poison = storage.poison.get_queue_properties().approximate_message_count
        return f"table answers; work queue ~{work} messages, poison queue ~{poison}"

    return probe


def http_probe(url: str, answered: Callable[[int], bool], timeout: float) -> Callable[[], str]:
    def probe() -> str:
        try:
            answer = OutboundHttp(pool_size=1, timeout=timeout).request(
                "GET", url, headers={"Accept": "application/json"}
            )
        except OutboundError as exc:
            raise ConnectionError(f"no answer ({exc.kind})") from None
        if not answered(answer.status):
            raise ConnectionError(f"answered HTTP {answer.status}")
        return f"answered HTTP {answer.status}"

    return probe


def run(
    storage: Storage | None, panoptes_url: str | None, ml_service_url: str | None, timeout: float
) -> list[Check]:
    """Every check at once, each bounded by `timeout` (a service that does not answer is down)."""
    probes: dict[str, Callable[[], str]] = {}
    if storage is not None:
        probes["storage"] = storage_probe(storage)
    if panoptes_url:
        # Anonymous and cheap: one public project.
        probes["Panoptes"] = http_probe(
            panoptes_url.rstrip("/") + "/api/projects?page_size=1", lambda s: s == 200, timeout
        )
    if ml_service_url:
        # The batch API has no health route: an unknown task answers 404 when the service works.
        probes["ML service"] = http_probe(
            ml_service_url.rstrip("/") + "/task/readiness-check", lambda s: s < 500, timeout
        )
    pool = concurrent.futures.ThreadPoolExecutor(max(1, len(probes)))
    futures = {name: pool.submit(_timed, name, probe) for name, probe in probes.items()}
    checks = []
    deadline = time.monotonic() + timeout + 5  # the storage SDK retries on its own; not longer
    for name, future in futures.items():
        try:
            checks.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            checks.append(Check(name, False, f"no answer within {timeout:g} s", timeout))
    pool.shutdown(wait=False, cancel_futures=True)
    return checks
