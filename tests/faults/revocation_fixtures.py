"""For the revocation fault tests: a redis-server of the test's own, on a free loopback port,
that a test may stop, pause and start again empty (no RDB, no AOF); and the real API server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, port_open


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            assert self._process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it: everything it held is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def pause(self) -> None:
        """Black-hole it: connections stay open, nothing answers."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    def restart_empty(self) -> None:
        self.stop()
        self.start()


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        if server._process is not None:
            server.resume()
        server.stop()


CLI = [sys.executable, "-m", "orbsurv.main.cli"]
SECRETS = {
    "JWT_SECRET_KEY": "j" * 40,
    "EMAIL_VERIFY_SECRET": "e" * 40,
    "PASSWORD_RESET_SECRET": "p" * 40,
}


def server_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any Orbsurv configuration, fixed secrets (a
    restarted process must accept the tokens of the one before) and ``overrides``."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in {"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV"}
    }
    return {**keep, "ENV": "test", **SECRETS, **overrides}


@contextmanager
def api_server(workdir: Path, env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """``orbsurv serve`` on a free loopback port, until it answers ``/healthz``; stopped after."""
    port = free_port()
    log = (workdir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"server exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{url} did not become healthy"
            try:
                if httpx.get(f"{url}/api/v1/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
