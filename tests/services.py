"""The real servers the tests talk to, and how the test run finds, starts or skips them.

PostgreSQL and Redis run on 127.0.0.1. When one is down the run tries to start it; when it still
cannot be reached, its tests skip with the reason, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, deadline_seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.1)
    return False


def _start_postgres() -> None:
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") and clusters.is_dir():
        for version in sorted(p.name for p in clusters.iterdir()):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
                capture_output=True,
            )


def _start_redis() -> None:
    if shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
            capture_output=True,
        )


_STATE: dict[str, str | None] = {}


def _ensure(name: str, host: str, port: int, start: object) -> str | None:
    """``None`` when the server answers, else why it does not."""
    if name not in _STATE:
        if not port_open(host, port):
            start()  # type: ignore[operator]
            wait_for_port(host, port)
        _STATE[name] = (
            None if port_open(host, port) else f"{name} is not reachable on {host}:{port}"
        )
    return _STATE[name]


def require(name: str) -> None:
    """Skip (or, in CI, fail) the calling test when the named server is missing."""
    if name == "postgres":
        reason = _ensure(name, POSTGRES_HOST, POSTGRES_PORT, _start_postgres)
    elif name == "redis":
        reason = _ensure(name, REDIS_HOST, REDIS_PORT, _start_redis)
    else:  # pragma: no cover
        raise ValueError(name)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason}; CI=true demands it", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
