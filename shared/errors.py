"""The error codes any feature's answers can carry (the site's catch-all and every function's
guard, shared/fallback.py and shared/routing.py); a feature declares its own beside them
(exports/contract.py). A StrEnum: a string on the wire, a name mypy checks in the code."""

from __future__ import annotations

from enum import StrEnum


class CommonError(StrEnum):
    NOT_FOUND = "not_found"  # no route has this path (under /api/)
    METHOD_NOT_ALLOWED = "method_not_allowed"  # a route has this path, not this method
    INTERNAL_ERROR = "internal_error"  # a fault on our side
