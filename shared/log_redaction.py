"""Keep SAS signatures out of third-party log lines.

urllib3 logs every request line at DEBUG, query string included; the detections file URL the
ML service returns (and any SAS URL we fetch) carries `sig=`. The contract allows no SAS
signature in logs at any level, so the signature is redacted on the loggers that print URLs.
"""

from __future__ import annotations

import logging
import re

_SIG = re.compile(r"(?i)(sig=)[^&\s\"']+")
REDACTED = "REDACTED"
URL_LOGGERS = ("urllib3.connectionpool",)


class RedactSasSignature(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if "sig=" in message.lower():
            record.msg, record.args = _SIG.sub(r"\1" + REDACTED, message), None
        return True


def install() -> None:
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSasSignature) for f in logger.filters):
            logger.addFilter(RedactSasSignature())
