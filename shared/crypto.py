"""Encryption of the user's Panoptes token while it travels through the queue.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from
TOKEN_ENCRYPTION_KEY by HKDF, so the setting can be any long random string. During a key
rotation TOKEN_ENCRYPTION_KEY_PREVIOUS still decrypts messages queued under the old key.
"""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"subject-assistant-export/panoptes-token/v1"


class TokenDecryptionError(Exception):
    """The ciphertext was not made with the current or previous key (or was tampered with)."""


def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class TokenCipher:
    def __init__(self, secret: str, previous_secret: str | None = None):
        keys = [_fernet(secret)] + ([_fernet(previous_secret)] if previous_secret else [])
        self._fernet = MultiFernet(keys)

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise TokenDecryptionError("token ciphertext is not valid under the configured keys") from exc
