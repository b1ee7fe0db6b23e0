"""`make test` runs under coverage's tracer, which follows every Python subprocess
(pyproject.toml: patch = subprocess) and, on Python 3.11, makes each line it runs about twice as
slow. A subprocess that runs none of the measured code (exports/, page/, shared/) gets an
environment without coverage's settings: a fuzzer, a build, the command-line client, a child
that is killed before it could save what it measured. (Tests in this process that measure
scale, or test only our tools, are marked `no_cover` instead: tests/conftest.py.)"""

from __future__ import annotations

import os
from collections.abc import Mapping


def untraced_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (by default this process's environment) without coverage's settings."""
    return {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("COVERAGE_")}
