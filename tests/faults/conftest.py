"""The fault tier's world: the real server process with every dependency behind a fault proxy.

Two stacks, each started once per run and shared by the rows (every row puts its proxy back to
``pass`` and waits for the stack to heal before the next one starts):

- ``postgres``: PostgreSQL (a fresh migrated database), a ``redis-server`` of the run's own that a
  row may stop or restart empty, S3 (moto's server), clamd, SMTP (aiosmtpd) and the AI model
  (``tests/ai_stub.py``), each behind its own ``FaultProxy``.
- ``embedded``: the defaults (SQLite, local disk, the in-process cache) with SMTP, clamd and the
  AI model behind proxies, and the upload root on a 2 MiB tmpfs so a row can fill it (mounted when
  the run may mount; otherwise the disk rows skip and say so).

Every row records two times through ``fault_times``: from the fault to the first clear answer,
and from the repair to the first success. They are written to ``var/fault-times.json`` (or
``$ORBSURV_FAULT_TIMES``) at the end of the run; ``bench/faults.py`` prints them as a table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiosmtpd.controller import Controller

from orbsurv.adapters.persistence.migrations import upgrade
from tests.conftest import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    S3Server,
    SmtpServer,
    create_postgres_database,
    drop_postgres_database,
    moto_s3,
)
from tests.fault_proxy import FaultProxy
from tests.live import CLI, Server, clean_env, serving
from tests.services import (
    RedisProcess,
    clamd_missing_reason,
    free_port,
    require,
    start_clamd,
)

API = "/api/v1"
PASSWORD = "correct horse battery"
BOUND = 10.0  # seconds to a clear answer, with the timeouts below a few seconds each
HEAL = 30.0  # seconds from the repair to the first success
TIMES_PATH = Path(
    os.environ.get(
        "ORBSURV_FAULT_TIMES", Path(__file__).resolve().parents[2] / "var" / "fault-times.json"
    )
)
# Short timeouts, so a hung dependency turns into a clear answer well within BOUND.
TIMEOUTS = {
    "DB_POOL_SIZE": "4",
    "DB_POOL_TIMEOUT_SECONDS": "2",
    "DB_CONNECT_TIMEOUT_SECONDS": "2",
    "DB_STATEMENT_TIMEOUT_SECONDS": "3",
    "REDIS_TIMEOUT_SECONDS": "2",
    "S3_CONNECT_TIMEOUT_SECONDS": "2",
    "S3_READ_TIMEOUT_SECONDS": "2",
    "S3_MAX_ATTEMPTS": "2",
    "CLAMD_TIMEOUT_SECONDS": "2",
    "SMTP_TIMEOUT_SECONDS": "2",
    "AI_CONNECT_TIMEOUT_SECONDS": "1",
    "AI_TIMEOUT_SECONDS": "2",
    "AI_MAX_RETRIES": "0",
    "UPLOAD_IDLE_TIMEOUT_SECONDS": "3",
}
SECRETS = {
    "JWT_SECRET_KEY": "faults-jwt-" + "k" * 40,
    "EMAIL_VERIFY_SECRET": "faults-verify-" + "v" * 40,
    "PASSWORD_RESET_SECRET": "faults-reset-" + "r" * 40,
}

T = TypeVar("T")


def run_async(factory: Callable[[], Any]) -> Any:
    """Run a coroutine from synchronous fixture code, on a loop of its own in another thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# --- times -------------------------------------------------------------------------------


@dataclass
class FaultTimes:
    """Row name → ``{"answer": seconds, "healed": seconds}``, written at the end of the run."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: set[str] = field(default_factory=set)  # rows the running test has recorded

    def record(self, row: str, *, answer: float | None = None, healed: float | None = None) -> None:
        self.current.add(row)
        entry = self.rows.setdefault(row, {})
        entry["passed"] = False  # until the test has passed
        if answer is not None:
            entry["answer"] = round(answer, 2)
        if healed is not None:
            entry["healed"] = round(healed, 2)

    def write(self) -> None:
        if not self.rows:
            return
        TIMES_PATH.parent.mkdir(parents=True, exist_ok=True)
        existing: dict[str, Any] = {}
        if TIMES_PATH.exists():
            try:
                existing = json.loads(TIMES_PATH.read_text())
            except ValueError:
                existing = {}
        existing.update(self.rows)
        TIMES_PATH.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def fault_times_session() -> Iterator[FaultTimes]:
    times = FaultTimes()
    yield times
    times.write()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


PASSED = pytest.StashKey[bool]()


@pytest.fixture
def fault_times(
    fault_times_session: FaultTimes, request: pytest.FixtureRequest
) -> Iterator[FaultTimes]:
    """The run's recorder; the rows this test records are marked passed when it passes."""
    fault_times_session.current.clear()
    yield fault_times_session
    passed = request.node.stash.get(PASSED, False)
    for row in fault_times_session.current:
        fault_times_session.rows[row]["passed"] = passed


# --- dependencies of the run's own ----------------------------------------------------------


class Tmpfs:
    """A small tmpfs mounted at ``path`` (needs the right to mount: root, as in CI)."""

    def __init__(self, path: Path, size: str = "2m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        self.mounted = result.returncode == 0
        self.reason = "" if self.mounted else f"cannot mount a tmpfs: {result.stderr.strip()}"

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
            self.mounted = False


# --- the stacks -----------------------------------------------------------------------------


@dataclass
class Stack:
    """One running server and the proxies in front of its dependencies."""

    kind: str
    server: Server
    workdir: Path
    env: dict[str, str]
    proxies: dict[str, FaultProxy]
    smtp: SmtpServer
    model: Any
    redis: RedisProcess | None = None
    s3: S3Server | None = None
    disk: Tmpfs | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def heal_all(self) -> None:
        """Every proxy back to ``pass``, Redis running; then wait (up to ``HEAL`` seconds) for
        readiness, so a row that failed half-way does not spill into the next one."""
        for proxy in self.proxies.values():
            proxy.set_mode("pass")
        if self.redis is not None and self.redis.process is None:
            self.redis.start()
        deadline = time.monotonic() + HEAL
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{API}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def worker(self) -> subprocess.Popen[bytes]:
        """``orbsurv worker`` with the server's configuration; the caller stops it."""
        log = (self.workdir / f"worker-{uuid.uuid4().hex[:6]}.log").open("wb")
        return subprocess.Popen(
            [*CLI, "worker"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Common:
    """What both stacks share: SMTP, clamd (when installed) and the AI model; each stack puts
    proxies of its own in front of them."""

    smtp: SmtpServer
    model: Any
    clamd_port: int | None
    clamd_reason: str | None


def _new_proxies(common: Common) -> dict[str, FaultProxy]:
    """Proxies of this stack's own in front of the shared SMTP, clamd and AI servers, so a row
    on one stack never disturbs the other."""
    proxies = {
        "smtp": FaultProxy("127.0.0.1", common.smtp.port),
        "ai": FaultProxy("127.0.0.1", int(common.model.url.rsplit(":", 1)[1])),
    }
    if common.clamd_port is not None:
        proxies["clamd"] = FaultProxy("127.0.0.1", common.clamd_port)
    return proxies


def _env_for(proxies: dict[str, FaultProxy]) -> dict[str, str]:
    env = {
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(proxies["smtp"].port),
        "SMTP_TLS": "plain",
        "AI_BASE_URL": f"http://127.0.0.1:{proxies['ai'].port}/v1",
        "AI_API_KEY": "faults-test-key",
        "AI_MODEL": "stub-model",
    }
    if "clamd" in proxies:
        env["MALWARE_SCANNER"] = "clamd"
        env["CLAMD_ADDRESS"] = f"tcp://127.0.0.1:{proxies['clamd'].port}"
    return env


@pytest.fixture(scope="session")
def common(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Common]:
    from tests.ai_stub import stub_model

    smtp = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(smtp, hostname=smtp.host, port=smtp.port)
    controller.start()
    clamd_reason = clamd_missing_reason()
    clamd_process = None
    clamd_port = None
    if clamd_reason is None:
        clamd_process, clamd_port, _ = start_clamd(tmp_path_factory.mktemp("clamd"))
    with stub_model() as model:
        try:
            yield Common(smtp, model, clamd_port, clamd_reason)
        finally:
            controller.stop()
            if clamd_process is not None:
                clamd_process.terminate()
                try:
                    clamd_process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    clamd_process.kill()


def _base_env(workdir: Path) -> dict[str, str]:
    return clean_env(
        ENV="test",
        LOG_LEVEL="WARNING",
        INPROCESS_WORKER="false",
        VAR_DIR=str(workdir / "var"),
        REGISTRATION_RATE_LIMIT="100000",  # every test signs up from loopback
        **SECRETS,
        **TIMEOUTS,
    )


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, common: Common) -> Iterator[Stack]:
    """The production shape: PostgreSQL, Redis, S3, clamd, SMTP and the AI model, all proxied."""
    require("postgres")
    workdir = tmp_path_factory.mktemp("faults-pg")
    name, direct_url = run_async(create_postgres_database)
    upgrade(direct_url)
    redis = RedisProcess(workdir)
    redis.start()
    with moto_s3("orbsurv-faults") as s3:
        proxies = _new_proxies(common)
        proxies["postgres"] = FaultProxy(POSTGRES_HOST, POSTGRES_PORT)
        proxies["redis"] = FaultProxy("127.0.0.1", redis.port)
        proxies["s3"] = FaultProxy("127.0.0.1", int(s3.endpoint_url.rsplit(":", 1)[1]))
        env = {
            **_base_env(workdir),
            **_env_for(proxies),
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{proxies['postgres'].port}/{name}",
            "REDIS_URL": f"redis://127.0.0.1:{proxies['redis'].port}/0",
            **s3.env(f"http://127.0.0.1:{proxies['s3'].port}"),
        }
        try:
            with serving(workdir, env, deadline_seconds=120) as server:
                yield Stack(
                    "postgres",
                    server,
                    workdir,
                    env,
                    proxies,
                    common.smtp,
                    common.model,
                    redis=redis,
                    s3=s3,
                )
        finally:
            for proxy in proxies.values():
                proxy.close()
            redis.stop()
            run_async(lambda: drop_postgres_database(name))


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory, common: Common) -> Iterator[Stack]:
    """The embedded default: SQLite, local disk (on a 2 MiB tmpfs when mountable), the
    in-process cache; SMTP, clamd and the AI model proxied."""
    workdir = tmp_path_factory.mktemp("faults-embedded")
    disk = Tmpfs(workdir / "uploads")
    proxies = _new_proxies(common)
    env = {**_base_env(workdir), **_env_for(proxies), "UPLOAD_ROOT": str(disk.path)}
    try:
        with serving(workdir, env, deadline_seconds=120) as server:
            yield Stack(
                "embedded", server, workdir, env, proxies, common.smtp, common.model, disk=disk
            )
    finally:
        for proxy in proxies.values():
            proxy.close()
        disk.unmount()


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
        "embedded",
    ]
)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A row that applies to both stacks runs once on each."""
    name = "pg_stack" if request.param == "postgres" else "embedded_stack"
    chosen: Stack = request.getfixturevalue(name)
    chosen.model.reset()
    yield chosen
    chosen.heal_all()


@pytest.fixture
def pg(pg_stack: Stack) -> Iterator[Stack]:
    """The PostgreSQL stack for a row that only it has (database, Redis, S3)."""
    pg_stack.model.reset()
    yield pg_stack
    pg_stack.heal_all()


# --- clients ----------------------------------------------------------------------------------


def sign_up(url: str) -> tuple[str, dict[str, str]]:
    """A new account; returns its email and a bearer header."""
    email = f"f{uuid.uuid4().hex[:10]}@example.com"
    response = httpx.post(
        f"{url}{API}/auth/register", json={"email": email, "password": PASSWORD}, timeout=60
    )
    assert response.status_code == 201, response.text
    return email, {"Authorization": f"Bearer {response.json()['access_token']}"}


class StalledClient:
    """A raw socket to the server that sends ``head`` (and nothing more) and then waits: a client
    that stalls mid-request."""

    def __init__(self, url: str, head: bytes) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.sock.sendall(head)

    def answer(self, timeout: float) -> bytes | None:
        """The server's first bytes within ``timeout`` seconds: ``b""`` when it closed without a
        word, ``None`` when it said nothing at all."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return b""

    def close(self) -> None:
        self.sock.close()


def until(
    check: Callable[[], T | None], deadline: float, what: str, interval: float = 0.1
) -> tuple[T, float]:
    """Poll ``check`` until it returns something other than ``None``; return it and the seconds
    it took. Fails the test after ``deadline`` seconds."""
    started = time.monotonic()
    while True:
        value = check()
        if value is not None:
            return value, time.monotonic() - started
        if time.monotonic() - started > deadline:
            pytest.fail(f"{what}: not within {deadline:.0f} s", pytrace=False)
        time.sleep(interval)
