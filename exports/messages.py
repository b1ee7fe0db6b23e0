"""The export queue's message: one type that writes and reads it (the POST, the worker's
retries, the stuck-export sweep and the tests all go through it)."""

from __future__ import annotations

import dataclasses
import json

VERSION = 2  # v2: the token is sealed together with the export id (shared/crypto.py)


@dataclasses.dataclass(frozen=True)
class ExportMessage:
    export_id: str
    token: str | None  # the user's Panoptes token, sealed for this export id; None: public data only

    def encode(self) -> str:
        return json.dumps({"v": VERSION, "export_id": self.export_id, "token": self.token})

    @classmethod
    def parse(cls, body: str) -> ExportMessage | None:
        """The message, or None when the body is not one (a queue carries untrusted text)."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("export_id"), str):
            return None
        token = data.get("token")
        return cls(data["export_id"][:200], token if isinstance(token, str) else None)
