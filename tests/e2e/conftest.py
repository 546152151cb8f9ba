"""The real server process, started the way the README starts it, on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

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
    *args: str, cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
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


@contextmanager
def running_server(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``orbsurv serve`` with no configuration at all, in an empty working directory."""
    with running_server(tmp_path_factory.mktemp("live"), clean_env()) as url:
        yield url


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that believes X-Forwarded-For from loopback, as behind a local proxy."""
    env = clean_env(ENV="test", TRUSTED_PROXIES="127.0.0.1/32")
    with running_server(tmp_path_factory.mktemp("proxied"), env) as url:
        yield url
