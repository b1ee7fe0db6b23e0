"""`make run`: serve function_app.py locally on port 7071.

With Azure Functions Core Tools on PATH this simply execs `func start --port 7071`. Otherwise it
starts Azurite and devtools.host.LocalHost with the app settings from local.settings.json
(or local.settings.sample.json), until Ctrl-C.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from typing import Any

from devtools.azurite import ROOT, start_azurite
from devtools.host import LocalHost, load_app, serve

PORT = 7071
AZURITE_DEFAULT_PORTS = (10000, 10001, 10002)


def load_local_settings() -> dict[str, Any]:
    """local.settings.json if present (it is git-ignored), else the committed sample."""
    for name in ("local.settings.json", "local.settings.sample.json"):
        path = ROOT / name
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    return {}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main() -> None:
    func = shutil.which("func")
    if func:
        os.chdir(ROOT)
        os.execv(func, [func, "start", "--port", str(PORT)])
    settings = load_local_settings()
    env = {k: str(v) for k, v in settings.get("Values", {}).items()}
    cors = settings.get("Host", {}).get("CORS") or env.get("ALLOWED_ORIGINS") \
        or os.environ.get("ALLOWED_ORIGINS", "")
    # Azurite's usual ports when free, so Storage Explorer & co. find it; any free ports otherwise.
    ports = AZURITE_DEFAULT_PORTS if all(map(_port_free, AZURITE_DEFAULT_PORTS)) else (None, None, None)
    azurite = start_azurite(*ports)
    try:
        for key, value in env.items():  # what `func` resolves to the emulator itself
            if value.replace(" ", "").lower() == "usedevelopmentstorage=true":
                env[key] = azurite.connection_string
        os.chdir(ROOT)
        host = LocalHost(load_app("function_app"), env=env, host_json=ROOT / "host.json", port=PORT,
                         cors_origins=[o.strip() for o in cors.split(",") if o.strip()])
        print(f"Azurite queues at {azurite.connection_string.split('QueueEndpoint=')[1].split(';')[0]}")
        serve(host)
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
