"""Running `sa-export` as a user's shell or script does: a separate process, the token in the
environment, its exit code, stdout and stderr."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.tracing import untraced_env

COMMAND = [sys.executable, "-m", "sa_export"]
# The console script pip installed beside this interpreter (`make setup`: -e ./client[signin]).
CONSOLE_SCRIPT = pathlib.Path(sys.executable).with_name("sa-export")


def cli_env(url: str | None, token: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any sa-export or Panoptes setting of the machine's,
    plus the service URL, the token and `extra`."""
    env = {
        k: v
        for k, v in untraced_env().items()  # the client is not what `make test` measures
        if not k.startswith(("PANOPTES_", "SA_EXPORT_")) and k != "COLUMNS"
    }
    if url is not None:
        env["SA_EXPORT_URL"] = url
    if token is not None:
        env["PANOPTES_TOKEN"] = token
    return {**env, **extra}


def sa_export(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def start(*args: str, env: dict[str, str], command: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*(command or COMMAND), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
