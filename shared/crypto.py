"""Encryption of a user's credential while it travels through the queue, bound to what it is for.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived by HKDF from a random
secret of at least 32 bytes (URL-safe base64, as `Fernet.generate_key()` prints): the derivation
separates this use from any other use of the same secret. The sealed payload is
`{"for": <binding>, "token": <token>}`, so a ciphertext copied into another message (another
export) is refused, and it is refused once older than its time-to-live. During a key rotation the
previous secret still opens what was sealed under it.
"""

from __future__ import annotations

import base64
import json
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"subject-assistant-export/panoptes-token/v2"


class TokenDecryptionError(Exception):
    """Not sealed under the current or previous key, tampered with, or sealed for another use."""


class TokenExpired(TokenDecryptionError):
    """Genuine, but older than the time-to-live."""


def derive_key(secret: bytes) -> bytes:
    """The Fernet key (URL-safe base64) that a secret stands for: what the secrets test looks for."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return base64.urlsafe_b64encode(key)


def _fernet(secret: bytes) -> Fernet:
    return Fernet(derive_key(secret))


class TokenCipher:
    def __init__(self, secret: bytes, previous_secret: bytes | None = None, ttl_seconds: int = 86_400):
        if len(secret) < 32 or (previous_secret is not None and len(previous_secret) < 32):
            raise ValueError("a token encryption key needs at least 32 random bytes")
        keys = [_fernet(secret)] + ([_fernet(previous_secret)] if previous_secret else [])
        self._fernet = MultiFernet(keys)
        self.ttl_seconds = ttl_seconds

    def encrypt(self, token: str, bound_to: str, now: float | None = None) -> str:
        """Seal `token` for `bound_to`; `now` (seconds since the epoch) only for tests."""
        payload = json.dumps({"for": bound_to, "token": token}).encode()
        return self._fernet.encrypt_at_time(payload, int(now or time.time())).decode("ascii")

    def decrypt(self, ciphertext: str, bound_to: str, now: float | None = None, expires: bool = True) -> str:
        """The token sealed for `bound_to`. TokenExpired past the time-to-live (unless `expires` is
        False: a callback's token is needed as long as its delivery lasts); otherwise
        TokenDecryptionError for anything not sealed by us for exactly this binding."""
        try:
            data = ciphertext.encode("ascii")
            if not expires:
                payload = self._fernet.decrypt(data)
            else:
                payload = self._fernet.decrypt_at_time(data, self.ttl_seconds, int(now or time.time()))
        except InvalidToken:
            try:  # genuine but too old, or not ours at all?
                self._fernet.decrypt(data)
            except (InvalidToken, ValueError):
                raise TokenDecryptionError("not sealed under the configured keys") from None
            raise TokenExpired("sealed longer ago than the time-to-live") from None
        except (UnicodeError, ValueError) as exc:
            raise TokenDecryptionError("not a sealed token") from exc
        try:
            sealed = json.loads(payload)
            token, binding = sealed["token"], sealed["for"]
        except (ValueError, KeyError, TypeError):
            raise TokenDecryptionError("the sealed payload is malformed") from None
        if binding != bound_to or not isinstance(token, str):
            raise TokenDecryptionError("sealed for another use")
        return token
