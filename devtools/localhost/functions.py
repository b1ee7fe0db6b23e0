"""The app's functions as the host sees them, and how they are called.

`index()` reads `app.get_functions()` (the binding metadata the real host indexes) into
`Function` records; `Invoker` calls them as the Python worker does: only the trigger argument
(plus `context` when declared), async functions on one event loop shared by all invocations,
every call counted and every failure logged with its traceback and recorded. The HTTP server,
the queue poller and the timers all invoke through one `Invoker`, so `LocalHost.invocations`,
`.errors` and `wait_idle()` see every trigger.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import os
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func

log = logging.getLogger("devtools.host")


class Context(func.Context):
    """The `context` argument, as the worker passes it to functions that declare one."""

    def __init__(self, function_name: str):
        self._invocation_id, self._function_name = str(uuid.uuid4()), function_name
        self._local = threading.local()

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: os.getcwd())
    thread_local_storage = property(lambda self: self._local)
    trace_context = property(lambda self: None)
    retry_context = property(lambda self: None)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one record per function
class Function:
    """One indexed function: its trigger binding and how to call it."""

    name: str
    user_function: Callable[..., Any]
    trigger: dict[str, Any]  # the trigger binding from the function's JSON metadata
    arg: str  # the parameter the trigger value is passed as
    wants_context: bool
    is_async: bool

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    @classmethod
    def from_indexed(cls, fn: Any) -> Function:
        name, user_function = fn.get_function_name(), fn.get_user_function()
        bindings = json.loads(fn.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        others = [b for b in bindings if b is not trigger and b.get("name") != "$return"]
        if others:
            log.warning(
                "%s: bindings %s are not emulated by the local host", name, [b["type"] for b in others]
            )
        params = inspect.signature(user_function).parameters
        return cls(
            name=name,
            user_function=user_function,
            trigger=trigger,
            arg=trigger["name"],
            wants_context="context" in params and trigger["name"] != "context",
            is_async=inspect.iscoroutinefunction(user_function),
        )


def index(app: Any) -> list[Function]:
    """The app's functions; callable more than once (by each host, and by the app's own tests)."""
    # get_functions() records the names it builds and rejects any it has seen before, so a second
    # call fails on every name; forgetting them first keeps its check for genuine duplicates.
    if hasattr(app, "functions_bindings"):
        app.functions_bindings = None
    return [Function.from_indexed(fn) for fn in app.get_functions()]


class Invoker:
    """Calls functions for every trigger, keeping the counts the host reports."""

    def __init__(self) -> None:
        self.invocations: collections.Counter[str] = collections.Counter()
        self.errors: list[tuple[str, str]] = []  # (function name, exception repr)
        self.running = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def start(self) -> None:
        # One event loop for async functions, as the worker has.
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="functions-loop", daemon=True
        )
        self._loop_thread.start()

    def stop(self) -> None:
        if self._loop and self._loop_thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=10)
            self._loop.close()
        self._loop, self._loop_thread = None, None

    def __call__(self, function: Function, trigger_value: Any) -> Any:
        """Run `function` with its trigger value; its exception propagates after being recorded."""
        kwargs = {function.arg: trigger_value}
        if function.wants_context:
            kwargs["context"] = Context(function.name)
        with self._lock:
            self.running += 1
        try:
            result = function.user_function(**kwargs)
            if function.is_async:
                if not self._loop:
                    result.close()  # never awaited: close it rather than leak a warning
                    raise RuntimeError("the host is not started")
                result = asyncio.run_coroutine_threadsafe(result, self._loop).result()
            return result
        except Exception as exc:
            log.error("Executed '%s' (Failed)\n%s", function.name, traceback.format_exc())
            self.errors.append((function.name, repr(exc)))
            raise
        finally:
            with self._lock:
                self.running -= 1
                self.invocations[function.name] += 1
