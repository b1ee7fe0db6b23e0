"""Waiting for an export to end: read it every few seconds, ride out a service that is briefly
unreachable, and show the reading of subjects and then the ML status on the terminal (a rich
progress bar on stderr; nothing at all when the output is not a terminal)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sa_export.outcome import CommandError, Unreachable
from sa_export.render import FINAL, one_line
from sa_export.service import Service

READ_INTERVAL = 2.0  # seconds between reads while subjects are read: the bar moves
ML_INTERVAL = 15.0  # at the ML service, whose status the export service reads every 10 minutes in Azure
PATIENCE = 600.0  # seconds the service may stay unreachable (or busy) before the wait gives up

# Set by Ctrl-C while a wait runs (`interruptible`). Python drops an exception raised inside a
# finalizer ("Exception ignored in ..."), so a Ctrl-C that lands while one runs was lost and the
# wait went on (seen once in a busy `make test`); the flag ends it at the wait's next step.
INTERRUPTED = threading.Event()


def _on_ctrl_c(signum: int, frame: Any) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While a wait runs in the main thread: Ctrl-C is noted as well as raised."""
    INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Display(Protocol):
    def show(self, export: dict[str, Any]) -> None: ...

    def trouble(self, message: str) -> None: ...


class Quiet:
    """For scripts and logs: nothing while waiting."""

    def __enter__(self) -> Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def show(self, export: dict[str, Any]) -> None:
        pass

    def trouble(self, message: str) -> None:
        pass


class Bar:
    """Subjects read as a bar, then the ML status with a spinner, on stderr. Use as a context
    manager: the bar stays on screen, as it ended, when the context exits."""

    def __init__(self, console: Console | None = None):
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[count]}", markup=False),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
        )
        self._reading: TaskID | None = None
        self._ml: TaskID | None = None
        self._link_shown = False

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, export: dict[str, Any]) -> None:
        status = export.get("status")
        progress = export.get("progress") or {}
        done, total = progress.get("subjects_done") or 0, progress.get("subjects_total")
        at_ml = status in ("submitted", "running") or (status in FINAL and export.get("ml_task_id"))
        if self._reading is None:
            self._reading = self.progress.add_task("Queued", total=total, completed=done, count="")
        if not at_ml:
            words = {"queued": "Queued", "building": "Reading subjects"}.get(
                str(status), f"Reading subjects: {status}"
            )
            count = f"{done}/{total}" if total is not None else str(done)
            self.progress.update(self._reading, description=words, total=total, completed=done, count=count)
        else:
            if self._ml is None:
                read = total if total is not None else done
                self.progress.update(
                    self._reading,
                    description="Subjects read",
                    total=read,
                    completed=read,
                    count=f"{read}/{read}",
                )
                self._ml = self.progress.add_task("ML service", total=None, count="")
            self.progress.update(self._ml, description=_ml_words(export))
            if status in FINAL:  # the spinner's bar stops pulsing, full
                self.progress.update(self._ml, total=1, completed=1)
        if export.get("subject_assistant_url") and not self._link_shown:
            self._link_shown = True
            self.progress.console.print(
                f"Subject Assistant: {export['subject_assistant_url']}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def trouble(self, message: str) -> None:
        task = self._ml if self._ml is not None else self._reading
        if task is not None:
            self.progress.update(task, description=f"Retrying: {one_line(message, 60)}")


def _ml_words(export: dict[str, Any]) -> str:
    ml = export.get("ml_status") or "waiting"
    message = export.get("ml_message")
    return f"ML service: {ml}" + (f" ({one_line(message, 50)})" if message else "")


def wait_for_end(
    service: Service,
    export: dict[str, Any],
    display: Display,
    interval: float | None = None,
    seen: Callable[[dict[str, Any]], None] = lambda export: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Read the export until it is completed, failed or cancelled, and return it. A service
    that is unreachable, answers 5xx or 429 is read again for up to PATIENCE seconds (a long
    wait outlives a redeploy); anything else it refuses ends the wait at once."""
    trouble_since: float | None = None
    display.show(export)
    while export.get("status") not in FINAL:
        sleep(interval or (READ_INTERVAL if export.get("status") in ("queued", "building") else ML_INTERVAL))
        if INTERRUPTED.is_set():  # a Ctrl-C whose exception was dropped (see INTERRUPTED)
            raise KeyboardInterrupt
        try:
            export = service.export(str(export["id"]))
        except CommandError as error:
            if not (isinstance(error, Unreachable) or error.status == 429):
                raise
            now = clock()
            trouble_since = now if trouble_since is None else trouble_since
            if now - trouble_since >= PATIENCE:
                raise
            display.trouble(error.message)
            continue
        trouble_since = None
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt
        seen(export)
        display.show(export)
    return export
