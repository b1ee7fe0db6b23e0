"""`make test` runs under coverage's tracer, which follows every Python subprocess
(pyproject.toml: patch = subprocess) and, on Python 3.11, makes each line it runs about twice as
slow. A subprocess that runs none of the measured code (exports/, page/, shared/) gets an
environment without coverage's settings: a fuzzer, a build, the command-line client, a child
that is killed before it could save what it measured. (Tests in this process that measure
scale, or test only our tools, are marked `no_cover` instead: tests/conftest.py.) In the test
processes, the libraries' calls that do the HTTP work run untraced (`untrace_library_calls`)."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def untraced_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (by default this process's environment) without coverage's settings."""
    return {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("COVERAGE_")}


# The tracer a thread had before it entered a library call (see `untraced`), while it is in one.
_paused = threading.local()


def untraced(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, run with this thread's tracer removed and put back after it."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        tracer = sys.gettrace()
        if tracer is None:
            return function(*args, **kwargs)
        sys.settrace(None)
        outer, _paused.tracer = getattr(_paused, "tracer", None), tracer  # outer: in a callback
        try:
            return function(*args, **kwargs)
        finally:
            _paused.tracer = outer
            sys.settrace(tracer)

    return call


def traced_again(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, called back from inside an untraced library call, run with the thread's
    tracer put back for its duration."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        tracer = getattr(_paused, "tracer", None)
        if tracer is None or sys.gettrace() is not None:
            return function(*args, **kwargs)
        sys.settrace(tracer)
        try:
            return function(*args, **kwargs)
        finally:
            sys.settrace(None)

    return call


# Under `make test`, the Python work of the stack tests is mostly in the Azure SDK, requests and
# urllib3, which the tracer slowed down as much as our code without measuring them: these calls
# run untraced (one thread at a time; the tracer comes back when the call returns). Calling them
# untraced took the test workers from 191 s to 167 s of CPU over the suite.
LIBRARY_CALLS = (
    ("azure.core.pipeline._base", "Pipeline", "run"),  # every storage call: policies, signing, HTTP
    ("requests.sessions", "Session", "request"),  # the tests' calls to the local host
    ("urllib3.connectionpool", "HTTPConnectionPool", "urlopen"),  # the app's to Panoptes and ML
)
# Our code they can call back: a log record emitted inside them goes through our filters
# (shared/log_redaction.py on urllib3's logger) and handlers, which are measured.
CALLBACKS = (("logging", "Logger", "handle"),)


def untrace_library_calls() -> None:
    """Patch LIBRARY_CALLS to run untraced and CALLBACKS to run traced again inside them."""
    for calls, wrap in ((LIBRARY_CALLS, untraced), (CALLBACKS, traced_again)):
        for module_name, class_name, method in calls:
            cls = getattr(importlib.import_module(module_name), class_name)
            setattr(cls, method, wrap(getattr(cls, method)))
