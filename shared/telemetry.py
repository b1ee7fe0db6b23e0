"""Telemetry: log dimensions set once per unit of work, dependencies with their duration and
status, and Azure Monitor (OpenTelemetry) configured on first use.

- `log_context(**dimensions)` sets fields (an export's ids, say) for everything logged inside
  it, on this thread and in the threads it hands a copied context to; a log record factory
  copies them onto every record as attributes, which OpenTelemetry's logging handler sends as
  custom dimensions. No log call names them.
- `traced(http, service)` wraps an outbound HTTP client (shared/outbound.py): each call is a
  dependency span carrying the URL *without its query string* (SAS signatures live there), the
  method, the status and the current dimensions.
- `start()` configures Azure Monitor the first time an invocation runs, and only when
  APPLICATIONINSIGHTS_CONNECTION_STRING is set: importing function_app stays cheap (a cold
  start indexes first), and local runs and tests without the setting send nothing.
Why OpenTelemetry and not the classic integration: docs/DECISIONS.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:  # not imported at run time: this module is imported by indexing (cold start)
    from shared.urls import Url

log = logging.getLogger(__name__)

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
TRACER_NAME = "subject_assistant_export"
# Instrumentations of the Azure Monitor distro left off: the outbound calls that matter are traced
# here (traced()), without query strings; a generic urllib3/requests span would carry the query.
# The Azure SDK's own spans (storage calls) stay on.
DISABLED_INSTRUMENTATIONS = ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")

_DIMENSIONS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_dimensions", default=MappingProxyType({})
)
_lock = threading.Lock()
_factory_installed = False
_tracer: Any = None  # an OpenTelemetry tracer once Azure Monitor is configured


# -- dimensions ------------------------------------------------------------------------------
def dimensions() -> Mapping[str, str]:
    """The fields every log record and dependency carries here."""
    return _DIMENSIONS.get()


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add `fields` (None values are left out) to what is logged inside the block."""
    token = _DIMENSIONS.set({**_DIMENSIONS.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _DIMENSIONS.reset(token)


def bind(**fields: str | None) -> None:
    """Add fields learnt inside a `log_context` block (an ML task id, say) until it ends."""
    _DIMENSIONS.set({**_DIMENSIONS.get(), **{k: v for k, v in fields.items() if v is not None}})


def _install_record_factory() -> None:
    """Every LogRecord made while dimensions are set carries them as attributes (a Filter would
    miss records of child loggers, and handlers are the worker's and OpenTelemetry's)."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            for key, value in _DIMENSIONS.get().items():
                if not hasattr(record, key):
                    setattr(record, key, value)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


# -- configuration ---------------------------------------------------------------------------
def start(env: Mapping[str, str] | None = None) -> bool:
    """Make log records carry the dimensions and, when APPLICATIONINSIGHTS_CONNECTION_STRING is
    set, configure Azure Monitor (once per process). True when telemetry is being exported."""
    global _tracer
    _install_record_factory()
    if _tracer is not None:
        return True
    env = os.environ if env is None else env
    connection = (env.get(CONNECTION_SETTING) or "").strip()
    if not connection:
        return False
    with _lock:
        if _tracer is None:
            try:
                _tracer = _configure(connection, env)
            except Exception:  # telemetry must never stop the service
                log.exception("telemetry could not be configured; the service goes on without it")
                return False
    return True


def _configure(connection: str, env: Mapping[str, str]) -> Any:
    # Imported here, not at module level: about half a second that a cold start must not pay
    # before the host has indexed the functions.
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import trace

    sampling: dict[str, float] = {}
    if not env.get("OTEL_TRACES_SAMPLER"):
        # Every span by default (the distro's default keeps 5 traces a second, which would drop
        # most of an export's page requests); OTEL_TRACES_SAMPLER(_ARG) choose otherwise. Log
        # records, which the alerts read, are never sampled.
        sampling["sampling_ratio"] = 1.0
    configure_azure_monitor(
        connection_string=connection,
        credential=_credential(env.get(AUTHENTICATION_SETTING) or ""),
        instrumentation_options={name: {"enabled": False} for name in DISABLED_INSTRUMENTATIONS},
        enable_live_metrics=False,
        **sampling,
    )
    # The SDK logs every HTTP request and answer at INFO: noise next to our own events.
    logging.getLogger("azure").setLevel(logging.WARNING)
    log.info("telemetry configured")
    return trace.get_tracer(TRACER_NAME)


def _credential(authentication: str) -> Any:
    """Entra ID for the exporter when APPLICATIONINSIGHTS_AUTHENTICATION_STRING says
    `Authorization=AAD` (Application Insights has local auth disabled; infra/app/api.bicep)."""
    parts = dict(p.split("=", 1) for p in authentication.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId") or None
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


F = TypeVar("F", bound=Callable[..., Any])


def started(function: F) -> F:
    """Decorate a function entry point: telemetry starts on its first invocation."""

    @functools.wraps(function)
    def entry(*args: Any, **kwargs: Any) -> Any:
        start()
        return function(*args, **kwargs)

    return entry  # type: ignore[return-value]


# -- dependencies ----------------------------------------------------------------------------
def url_without_query(url: object) -> str:
    """scheme://host[:port]/path: no query string, fragment or user info (of a URL's text, or of
    a shared.urls.Url)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


class _Http(Protocol):
    def request(self, method: str, url: str | Url, **kwargs: Any) -> Any: ...

    def stream(self, url: str | Url, **kwargs: Any) -> Any: ...


class TracedHttp:
    """An outbound HTTP client whose calls are dependency spans once telemetry runs (and plain
    calls before that). `safe_params`: query parameters that may be recorded as attributes
    (`params.<name>`; e.g. Panoptes' page number), never the query string itself."""

    def __init__(self, http: Any, service: str, safe_params: tuple[str, ...] = ()):
        self._http: _Http = http
        self.service = service
        self.safe_params = safe_params

    def request(self, method: str, url: str | Url, **kwargs: Any) -> Any:
        if _tracer is None:
            return self._http.request(method, url, **kwargs)
        with self._span(method, url, kwargs.get("params")) as span:
            answer = self._http.request(method, url, **kwargs)
            _set_status(span, answer.status)
            return answer

    @contextlib.contextmanager
    def stream(self, url: str | Url, **kwargs: Any) -> Iterator[Any]:
        """A streamed GET: the span lasts until the caller has read the answer."""
        if _tracer is None:
            with self._http.stream(url, **kwargs) as answer:
                yield answer
            return
        with self._span("GET", url, None) as span, self._http.stream(url, **kwargs) as answer:
            _set_status(span, answer.status)
            yield answer

    @contextlib.contextmanager
    def _span(self, method: str, url: str | Url, params: Mapping[str, Any] | None) -> Iterator[Any]:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parts = urlsplit(str(url))
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": url_without_query(url),
            "server.address": parts.hostname or "",
            "service": self.service,
            **dimensions(),
        }
        if parts.port:
            attributes["server.port"] = parts.port
        for name in self.safe_params:
            if params and name in params:
                attributes[f"params.{name}"] = str(params[name])
        path = parts.path or "/"
        with _tracer.start_as_current_span(
            f"{method} {path}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
        ) as span:
            try:
                yield span
            except BaseException as exc:
                # The type only: an exception's text may quote what it was sent.
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


def _set_status(span: Any, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_status(Status(StatusCode.ERROR))


def traced(http: Any, service: str, safe_params: tuple[str, ...] = ()) -> TracedHttp:
    return http if isinstance(http, TracedHttp) else TracedHttp(http, service, safe_params)
