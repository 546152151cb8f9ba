"""The real server process (``orbsurv serve``) and the CLI, started the way the README starts them,
on a free loopback port: shared by the e2e and the fault tiers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import free_port

CLI = [sys.executable, "-m", "orbsurv.main.cli"]


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any Orbsurv configuration, plus ``overrides``."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in {"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV"}
    }
    return {**keep, **overrides}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], deadline_seconds: float = 60
) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy")


@dataclass
class Server:
    """A running ``orbsurv serve``: its base URL, process (own process group) and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash: no shutdown runs) and reap it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)


@contextmanager
def serving(
    workdir: Path, env: dict[str, str], deadline_seconds: float = 60, *, workers: int = 1
) -> Iterator[Server]:
    """``orbsurv serve`` (``workers`` processes) in ``workdir`` with exactly ``env``, once it
    answers ``/healthz`` within ``deadline_seconds``; stopped (SIGTERM, then SIGKILL after 20 s)
    on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_healthy(server.url, process, deadline_seconds)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
        log.close()


@contextmanager
def running_server(
    workdir: Path, env: dict[str, str], deadline_seconds: float = 60, *, workers: int = 1
) -> Iterator[str]:
    """``serving``, yielding only the base URL."""
    with serving(workdir, env, deadline_seconds, workers=workers) as server:
        yield server.url
