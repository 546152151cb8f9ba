"""The real server process and the command line, as a newcomer would use them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import clean_env, run_cli


def test_serves_health_and_docs_with_no_configuration(live_server: str) -> None:
    assert httpx.get(f"{live_server}/api/v1/healthz").json()["status"] == "ok"
    assert httpx.get(f"{live_server}/health").status_code == 200
    ready = httpx.get(f"{live_server}/api/v1/readyz")
    assert ready.status_code == 200, ready.text
    assert httpx.get(f"{live_server}/api/v1/docs").status_code == 200
    assert httpx.get(f"{live_server}/api/v1/openapi.json").json()["openapi"].startswith("3.")
    assert "orbsurv_http_requests_total" in httpx.get(f"{live_server}/metrics").text


def test_the_server_survives_bad_input(live_server: str) -> None:
    with httpx.Client(base_url=live_server) as client:
        assert (
            client.post(
                "/api/v1/users", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )
        assert (
            client.post(
                "/api/v1/users",
                content=b"x" * (3 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            ).status_code
            == 413
        )
        assert client.get("/api/v1/" + "a" * 5000).status_code == 404
        assert client.get("/api/v1/healthz").status_code == 200


def test_development_start_migrates_and_keeps_secrets(live_server: str) -> None:
    # The fixture's working directory holds ./var with the database and the generated secrets.
    response = httpx.post(
        f"{live_server}/api/v1/users",
        json={"email": "e2e@example.com", "password": "correct horse battery"},
    )
    assert response.status_code in {201, 409}


def test_help_documents_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0
    for command in ("serve", "migrate", "create-user", "openapi", "check", "worker"):
        assert command in result.stdout
    serve = run_cli("serve", "--help", cwd=tmp_path, env=clean_env())
    for flag in ("--host", "--port", "--workers", "--reload"):
        assert flag in serve.stdout


def test_openapi_command_prints_the_schema(tmp_path: Path) -> None:
    result = run_cli("openapi", cwd=tmp_path, env=clean_env(ENV="test"))
    assert result.returncode == 0, result.stderr
    assert '"/api/v1/healthz"' in result.stdout


def test_the_document_is_the_same_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Generated clients and reviews diff the document: the same code prints the same bytes."""
    printed = {
        run_cli("openapi", cwd=tmp_path, env=clean_env(ENV="test", PYTHONHASHSEED=seed)).stdout
        for seed in ("1", "2")
    }
    assert len(printed) == 1


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """``orbsurv openapi | head``: the pipe closes after a few bytes; the command ends quietly,
    with the status a shell gives a command its pipe reader left (128 + SIGPIPE)."""
    import subprocess

    from tests.e2e.conftest import CLI

    printing = subprocess.Popen(
        [*CLI, "openapi"],
        cwd=tmp_path,
        env=clean_env(ENV="test"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert printing.stdout is not None
    assert printing.stderr is not None
    assert printing.stdout.read(10).startswith(b"{")
    printing.stdout.close()
    assert printing.wait(timeout=60) == 141
    assert b"Traceback" not in printing.stderr.read()


def test_bad_configuration_names_the_variable(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path, env=clean_env(ACCESS_TOKEN_EXPIRE_MINUTES="later"))
    assert result.returncode == 2
    assert "ACCESS_TOKEN_EXPIRE_MINUTES" in result.stderr
    production = run_cli("check", cwd=tmp_path, env=clean_env(ENV="production"))
    assert production.returncode == 2
    assert "JWT_SECRET_KEY" in production.stderr


@pytest.fixture(params=["sqlite", "postgres"])
def cli_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_migrate_create_user_and_check(cli_database: str, tmp_path: Path) -> None:
    env = clean_env(ENV="test", DATABASE_URL=cli_database, UPLOAD_ROOT=str(tmp_path / "up"))
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0
    email = f"cli-{tmp_path.name[-8:]}@example.com".lower()
    created = run_cli(
        "create-user",
        "--email",
        email,
        "--password",
        "correct horse battery",
        "--role",
        "admin",
        "--name",
        "Ops",
        cwd=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert f"created admin {email}" in created.stdout
    again = run_cli(
        "create-user",
        "--email",
        email.upper(),
        cwd=tmp_path,
        env=env,
        stdin="another horse battery\n",
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    weak = run_cli("create-user", "--email", "w" + email, cwd=tmp_path, env=env, stdin="password\n")
    assert weak.returncode == 1
    assert "too common" in weak.stderr
    check = run_cli("check", cwd=tmp_path, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "database: ok" in check.stdout
    assert "storage: ok" in check.stdout


def test_check_fails_when_a_dependency_is_down(tmp_path: Path) -> None:
    from tests.services import free_port

    env = clean_env(
        ENV="test",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/c.db",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    check = run_cli("check", cwd=tmp_path, env=env)
    assert check.returncode == 1
    assert "cache: unavailable" in check.stdout


def test_worker_runs_until_told_to_stop(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.e2e.conftest import CLI

    env = clean_env(ENV="test", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/w.db")
    worker = subprocess.Popen(
        [*CLI, "worker"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    assert worker.stderr is not None
    deadline = time.monotonic() + 90
    started = ""
    while "worker started" not in started and time.monotonic() < deadline:
        started += worker.stderr.readline()
    assert "worker started" in started
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert "worker stopped" in worker.stderr.read()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the workers from /proc")
def test_a_worker_that_will_not_stop_is_killed(tmp_path: Path) -> None:
    """SIGINT to ``serve`` stops it even when a worker cannot stop (a stopped process here; a
    worker interrupted in its start-up, in life): it is killed after ``WORKER_STOP_SECONDS``."""
    import os
    import signal
    import subprocess
    import time

    from orbsurv.main.cli import WORKER_STOP_SECONDS
    from tests.e2e.conftest import CLI, wait_until_healthy
    from tests.services import free_port

    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(ENV="test"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) == 1, children
        worker = int(children[0])
        os.kill(worker, signal.SIGSTOP)
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=WORKER_STOP_SECONDS + 30) == 0
        assert time.monotonic() - started >= WORKER_STOP_SECONDS - 1  # it was waited for
        deadline = time.monotonic() + 10
        while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # reaped by the server, or by init once the server is gone
        assert not Path(f"/proc/{worker}").exists()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


async def test_concurrent_writes_on_the_embedded_database(live_server: str) -> None:
    """SQLite with concurrent writers (and the in-process mail loop): nobody gets "locked"."""
    import asyncio

    async with httpx.AsyncClient(base_url=live_server, timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/register",
                    json={"email": f"crowd{n}@example.com", "password": "correct horse battery"},
                )
                for n in range(30)
            )
        )
    assert [a.status_code for a in answers] == [201] * 30


def test_mail_list_shows_the_console_outbox(tmp_path: Path) -> None:
    env = clean_env(ENV="test", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/m.db")
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0
    assert "the outbox is empty" in run_cli("mail", "list", cwd=tmp_path, env=env).stdout
    import asyncio

    from orbsurv.adapters.clock import SystemClock
    from orbsurv.adapters.persistence.database import make_engine
    from orbsurv.adapters.persistence.outbox import SqlOutbox
    from orbsurv.application.ports import OutgoingEmail

    async def queue() -> None:
        engine = make_engine(env["DATABASE_URL"])
        async with engine.connect() as conn:
            await SqlOutbox(conn, SystemClock()).enqueue(
                OutgoingEmail(
                    to="dev@example.com", subject="Hello", text="Open http://x/?token=abc"
                )
            )
            await conn.commit()
        await engine.dispose()

    asyncio.run(queue())
    listed = run_cli("mail", "list", "--limit", "5", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "[pending] to dev@example.com" in listed.stdout
    assert "Subject: Hello" in listed.stdout
    assert "token=abc" in listed.stdout


def test_a_developers_first_account_on_a_special_use_domain(tmp_path: Path) -> None:
    """`orbsurv create-user --email admin@orbsurv.test` works out of the box in development."""
    env = clean_env(ENV="development", VAR_DIR=str(tmp_path / "var"))
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0
    created = run_cli(
        "create-user",
        "--email",
        "admin@orbsurv.test",
        "--role",
        "admin",
        cwd=tmp_path,
        env=env,
        stdin="correct horse battery\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created admin admin@orbsurv.test" in created.stdout
    strict = {**env, "ALLOW_SPECIAL_USE_EMAIL_DOMAINS": "false"}
    refused = run_cli(
        "create-user", "--email", "dev@localhost", cwd=tmp_path, env=strict, stdin="x\n"
    )
    assert refused.returncode == 1
    assert "email" in refused.stderr
