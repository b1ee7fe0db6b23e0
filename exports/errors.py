"""The export API's errors: ApiError with the status the contract gives its code (exports/contract.py
ERRORS), so a code's status is declared once."""

from __future__ import annotations

from collections.abc import Mapping

from exports.contract import ERRORS, ErrorCode
from shared.errors import CommonError
from shared.responses import ApiError


def api_error(
    code: ErrorCode | CommonError, message: str, headers: Mapping[str, str] | None = None
) -> ApiError:
    return ApiError(ERRORS[code][0], code, message, headers)
