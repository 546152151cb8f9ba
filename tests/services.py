"""The real servers the tests talk to, and how the test run finds, starts or skips them.

PostgreSQL and Redis run on 127.0.0.1. When one is down the run tries to start it; when it still
cannot be reached, its tests skip with the reason, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


# --- a redis-server of the test's own (one it may stop, pause and restart) -----------------


class RedisProcess:
    """A ``redis-server`` on a free loopback port, nothing persisted (no RDB, no AOF), that a test
    can stop, pause (SIGSTOP: connections stay open, nothing answers), resume and restart empty
    on the same port. ``start`` skips the test when ``redis-server`` is not installed."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        assert self.process is None, "already running"
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no"]
        if self.directory is not None:
            command += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start within 20 seconds")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it: everything it held is gone."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGCONT)  # a paused one dies as well
                self.process.kill()
            self.process.wait(timeout=20)
            self.process = None

    def pause(self) -> None:
        """Black-hole it: connections stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart_empty(self) -> None:
        self.stop()
        self.start()


@contextmanager
def own_redis(directory: Path | None = None) -> Iterator[RedisProcess]:
    """A started ``RedisProcess``, stopped on exit."""
    server = RedisProcess(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- clamd (started by the fixture with a signature database it writes itself) ---------------

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"  # of the 68-byte EICAR test file
TEST_MARKER = b"ORBSURV-TEST-MALWARE-MARKER"  # a body signature, matched anywhere in a stream


def clamd_missing_reason() -> str | None:
    """``None`` when a clamd binary is installed, else why its tests cannot run."""
    for candidate in ("clamd", "/usr/sbin/clamd"):
        if shutil.which(candidate):
            return None
    return "clamd is not installed (Debian: apt-get install clamav-daemon)"


def start_clamd(directory: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start clamd offline (no freshclam, no network) with two test signatures: EICAR's MD5 and
    size (``.hdb``) and ``TEST_MARKER`` anywhere in a stream (``.ndb``). Return the process,
    its TCP port on 127.0.0.1 and its Unix socket, once it answers PING."""
    binary = shutil.which("clamd") or "/usr/sbin/clamd"
    database = directory / "db"
    database.mkdir(parents=True, exist_ok=True)
    (database / "orbsurv-test.hdb").write_text(f"{EICAR_MD5}:68:Eicar-Test-Signature\n")
    (database / "orbsurv-test.ndb").write_text(f"Orbsurv.Test.Marker:0:*:{TEST_MARKER.hex()}\n")
    port = free_port()
    sock = directory / "clamd.sock"
    config = directory / "clamd.conf"
    config.write_text(
        "\n".join(
            [
                "Foreground yes",
                f"LocalSocket {sock}",
                f"TCPSocket {port}",
                "TCPAddr 127.0.0.1",
                f"DatabaseDirectory {database}",
                f"LogFile {directory / 'clamd.log'}",
                "StreamMaxLength 64M",
                "MaxFileSize 64M",
                "MaxScanSize 64M",
                "ReadTimeout 60",
                "MaxThreads 4",
                "SelfCheck 0",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (
                (directory / "clamd.log").read_text() if (directory / "clamd.log").exists() else ""
            )
            raise RuntimeError(f"clamd exited with {process.returncode}: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"zPING\0")
                if conn.recv(16).startswith(b"PONG"):
                    return process, port, sock
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("clamd did not answer PING within 60 seconds")
