"""How a command ends: the exit codes a script can branch on, and the errors that lead to them.
Each error carries the message a person reads and the `{"error": {"code", "message"}}` object
that `--json` prints, so no error ever reaches the user as a traceback."""

from __future__ import annotations

import enum
from typing import Any


class Exit(enum.IntEnum):
    OK = 0  # the export completed, or the command did what it was asked
    FAILED = 1  # the export ended `failed`
    USAGE = 2  # bad arguments, no service URL, no token (argparse's own code for bad arguments)
    CANCELLED = 3  # the export ended `cancelled`
    REFUSED = 4  # the service (or Zooniverse's sign-in) refused the request: a 4xx answer
    UNREACHABLE = 5  # network trouble, or the service answered 5xx or something that is not its JSON
    NO_CSV = 6  # the export completed, but its results CSV could not be saved
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); the export goes on


EXIT_BY_FINAL_STATUS = {"completed": Exit.OK, "failed": Exit.FAILED, "cancelled": Exit.CANCELLED}


class CommandError(Exception):
    """An error the command reports in words and ends with; `code` is the service's error code
    when the service answered, else one of this client's own (`network_error`, ...)."""

    exit_code = Exit.USAGE

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.export: dict[str, Any] | None = None  # the export as last read, when there is one

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.status is not None:
            error["status"] = self.status
        document: dict[str, Any] = {"error": error}
        if self.export is not None:
            document["export"] = self.export
        return document


class UsageError(CommandError):
    exit_code = Exit.USAGE


class Refused(CommandError):
    """A 4xx answer: the request was understood and refused (wrong token, no role, unknown id,
    nothing to re-run, ...)."""

    exit_code = Exit.REFUSED


class Unreachable(CommandError):
    """The service could not be reached, or answered 5xx or something that is not its JSON."""

    exit_code = Exit.UNREACHABLE


class NoCsv(CommandError):
    exit_code = Exit.NO_CSV
