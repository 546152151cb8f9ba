"""A newcomer's first hour: every mistake ends in one line naming the problem and the fix."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import clean_env, run_cli, running_server
from tests.live import serving
from tests.services import free_port


def one_line_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["mail", "list"], ["create-user", "--email", "a@b.co"]])
def test_commands_before_migrate_name_the_fix(command: list[str], tmp_path: Path) -> None:
    env = clean_env(ENV="test", VAR_DIR=str(tmp_path / "state"))
    line = one_line_failure(run_cli(*command, cwd=tmp_path, env=env, stdin="x\n"))
    assert "not migrated" in line
    assert "run `orbsurv migrate` first" in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "postgres://x", "use sqlite+aiosqlite:///"),
        ("ENV", "prod", "allowed values: 'development', 'production' or 'test'"),
    ],
)
def test_bad_values_say_what_works(
    variable: str, value: str, expected: str, tmp_path: Path
) -> None:
    env = clean_env(**{variable: value})
    line = one_line_failure(run_cli("check", cwd=tmp_path, env=env), code=2)
    assert variable in line
    assert expected in line


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://orbsurv:hunter2-secret@127.0.0.1:{free_port()}/orbsurv"
    env = clean_env(ENV="test", DATABASE_URL=url)
    line = one_line_failure(run_cli("migrate", cwd=tmp_path, env=env))
    assert "cannot use the database at postgresql+asyncpg://orbsurv:***@127.0.0.1" in line
    assert "check DATABASE_URL" in line
    assert "hunter2" not in line
    check = run_cli("check", cwd=tmp_path, env=env)
    assert check.returncode == 1
    assert "Traceback" not in check.stderr
    assert "database: unavailable" in check.stdout
    assert "hunter2" not in check.stdout + check.stderr


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    env = clean_env(ENV="test", VAR_DIR=str(tmp_path / "state"))
    first = run_cli("migrate", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "created the schema at revision" in first.stdout
    again = run_cli("migrate", cwd=tmp_path, env=env)
    assert "nothing to migrate" in again.stdout
    assert (tmp_path / "state" / "orbsurv.db").is_file()


def test_operator_made_accounts_count_as_verified(tmp_path: Path) -> None:
    env = clean_env(ENV="test", VAR_DIR=str(tmp_path), AUTH_REQUIRE_VERIFIED_EMAIL="true")
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0
    created = run_cli(
        "create-user", "--email", "ops@example.com", "--role", "admin",
        cwd=tmp_path, env=env, stdin="correct horse battery\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    with sqlite3.connect(tmp_path / "orbsurv.db") as db:
        (verified,) = db.execute(
            "SELECT email_verified FROM users WHERE email = 'ops@example.com'"
        ).fetchone()
    assert verified == 1
    assert "counts as verified" in run_cli("create-user", "--help", cwd=tmp_path, env=env).stdout


def test_serve_says_where_it_listens_and_what_it_uses(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = clean_env(ENV="test", VAR_DIR=str(state), AUTH_REQUIRE_VERIFIED_EMAIL="true")
    env.update(SUPERUSER_EMAIL="root@example.com", SUPERUSER_PASSWORD="correct horse battery")
    with serving(tmp_path, env) as server:
        url = server.url
        login = httpx.post(
            f"{url}/api/v1/auth/login",
            json={"email": "root@example.com", "password": "correct horse battery"},
        )
        assert httpx.get(f"{url}/api/v1/readyz").status_code == 200
    assert login.status_code == 200, login.text  # the seeded account counts as verified
    log = server.log_text()
    assert f"starting 1 worker(s) on {url}" in log
    assert f"database sqlite+aiosqlite:///{state}/orbsurv.db" in log
    assert f"storage local files under {state}/uploads" in log
    assert "mail console" in log
    assert "created the schema at revision" in log
    assert "Traceback" not in log


def test_mail_links_point_at_the_port_being_served(tmp_path: Path) -> None:
    # `orbsurv serve --port N` without BACKEND_URL: the links in development mail must open on
    # port N, not on the default 8000 where nothing (or another service) listens.
    env = clean_env()
    with running_server(tmp_path, env) as url:
        registered = httpx.post(
            f"{url}/api/v1/auth/register",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        assert registered.status_code == 201, registered.text
        listing = run_cli("mail", "list", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert f"{url}/api/v1/auth/verify-page?token=" in listing.stdout, listing.stdout
