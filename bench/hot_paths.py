"""The hot paths in one run, on the embedded default and on PostgreSQL + Redis.

For each configuration: one ``orbsurv serve`` worker pinned to CPU 0 (``taskset``, when there
are two CPUs), ``wrk -t1 -c32 --latency`` pinned to CPU 1, then

- ``GET /api/v1/healthz`` and ``GET /api/v1/users/me``, interleaved in three rounds of half the
  measurement time each (the req/s ratio is the median of the rounds', the p99 ratio the worst);
  ``/users/me`` with the Bearer token of an account nobody has read yet, with no warm-up, as a
  new user measures it: the first requests miss the profile cache together and
  read the database under load (the embedded default once stalled there for up to seconds);
- a login storm (wrk, 32 connections) with an open-loop healthz probe paced at 100/s beside it:
  the probe's p99 shows whether hashing blocks the event loop; then a wait until the server's
  CPU is quiet again (it still hashes the logins wrk abandoned);
- ``POST /api/v1/waitlist``: mixed new, repeated, invalid and bot sign-ups
  (``bench/lua/waitlist.lua``), each from its own client address, then a count-level audit:
  no new address lost, none stored twice, no bot stored, one acknowledgement per address.
  (``bench/intake.py`` audits every single submission.)
- the first page of ``GET /api/v1/admin/logs`` as an admin.

Targets, as ratios measured in the same run:

- ``/users/me`` p99 <= 2x healthz p99 on both configurations (a stall on the read path shows
  here: the embedded default once waited up to seconds for SQLite's write lock);
- ``/users/me`` / healthz req/s >= 0.8 on PostgreSQL + Redis;
- ``POST /waitlist`` >= 1,000 accepted/s on PostgreSQL + Redis, 0 lost, 0 duplicated,
  acknowledgements at most one per address.

Needs wrk (Debian package ``wrk``); PostgreSQL and Redis on 127.0.0.1 for the second
configuration (skipped, with a note, when they cannot be reached).

    uv run python -m bench.hot_paths            # 10 s per measurement (~4 minutes)
    uv run python -m bench.hot_paths --quick    # 3 s per measurement, for a laptop
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher
from redis import Redis
from redis.exceptions import RedisError

from bench.http_overhead import ROOT, Result, free_port, parse_wrk, pinned, server
from bench.identity import drop_database, fresh_database, paced_probe, percentile
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.tables import outbox_messages, waitlist_entries
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.adapters.security.passwords import (
    OWASP_MEMORY_KIB,
    OWASP_PARALLELISM,
    OWASP_TIME_COST,
)
from orbsurv.adapters.security.tokens import JwtTokenCodec
from orbsurv.domain.identity import Role, Scope, User, new_id

LUA = Path(__file__).resolve().parent / "lua"
PASSWORD = "correct horse battery"
JWT_SECRET = "bench-" + "k" * 40
REDIS_DB = 11
STORM_ACCOUNTS = 32
ROUNDS = 3  # of healthz then /users/me
CONNECTIONS = 32


@dataclass
class Figures:
    name: str
    results: dict[str, Result] = field(default_factory=dict)
    storm_p99_ms: float = 0.0
    calm_p99_ms: float = 0.0
    storm_tail_seconds: float = 0.0
    logins_per_second: float = 0.0
    accepted_per_second: float = 0.0
    waitlist: dict[str, int] = field(default_factory=dict)
    audit: dict[str, int] = field(default_factory=dict)


def run_wrk(
    name: str,
    url: str,
    seconds: int,
    *,
    script: str | None = None,
    env: dict[str, str] | None = None,
    warm_up: bool = True,
) -> tuple[Result, str]:
    extra = ["-s", str(LUA / script)] if script else []
    environment = {**os.environ, **(env or {})}
    if warm_up:
        subprocess.run(
            pinned(1, ["wrk", "-t1", "-c16", "-d1s", *extra, url]),
            capture_output=True,
            check=True,
            env=environment,
        )
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", *extra, url]),
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout
    return parse_wrk(name, out), out


async def seed(database_url: str, workdir: Path) -> dict[str, Path | str]:
    """Accounts written straight to the database (one argon2 hash for all), tokens minted with
    the server's signing key: a reader for /users/me, storm accounts that log in, one admin."""
    password_hash = PasswordHasher(
        time_cost=OWASP_TIME_COST, memory_cost=OWASP_MEMORY_KIB, parallelism=OWASP_PARALLELISM
    ).hash(PASSWORD)
    codec = JwtTokenCodec(JWT_SECRET, 3600)
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]

    def account(kind: str, n: int, role: Role = Role.USER) -> User:
        email = f"{kind}-{n}-{tag}@example.com"
        return User(new_id(), email, password_hash, role, now, now)

    reader = account("reader", 0)
    stormers = [account("storm", n) for n in range(STORM_ACCOUNTS)]
    admin = account("admin", 0, Role.ADMIN)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            repository = SqlUserRepository(conn)
            for user in [reader, *stormers, admin]:
                await repository.add(user)
            await SqlUnitOfWork(conn).commit()
    finally:
        await engine.dispose()

    def token(user: User) -> str:
        issued, _ = codec.issue_access(
            user_id=user.id,
            session_id=new_id(),
            role=user.role,
            scope=Scope.USER,
            amr=["pwd"],
            now=now,
        )
        return issued

    tokens = write_lines(workdir / "tokens.txt", token(reader))
    emails = workdir / "emails.txt"
    emails.write_text("".join(f"{user.email}\n" for user in stormers))
    return {"tokens": tokens, "emails": emails, "admin": token(admin)}


async def audit_waitlist(database_url: str, prefix: str) -> dict[str, int]:
    """One statement, so one snapshot even if a request still in flight commits meanwhile."""
    email, recipient = waitlist_entries.c.email, outbox_messages.c.recipient
    per_recipient = (
        sa.select(sa.func.count().label("n"))
        .where(recipient.like(f"w-{prefix}-%"))
        .group_by(recipient)
        .subquery()
    )
    query = sa.select(
        sa.select(sa.func.count()).where(email.like(f"w-{prefix}-%")).scalar_subquery(),
        sa.select(sa.func.count(sa.distinct(email)))
        .where(email.like(f"w-{prefix}-%"))
        .scalar_subquery(),
        sa.select(sa.func.count()).where(email.like(f"bot-{prefix}-%")).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.sum(per_recipient.c.n), 0)).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.max(per_recipient.c.n), 0)).scalar_subquery(),
    )
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored, distinct, bots, acks, most = (await conn.execute(query)).one()
    finally:
        await engine.dispose()
    return {
        "stored": int(stored),
        "duplicates": int(stored) - int(distinct),
        "bots_stored": int(bots),
        "acknowledgements": int(acks),
        "most_acks_per_address": int(most),
    }


def measure(name: str, env: dict[str, str], database_url: str, seconds: int) -> Figures:
    figures = Figures(name)
    workdir = Path(tempfile.mkdtemp(prefix="orbsurv-hot-"))
    env = {**env, "VAR_DIR": str(workdir / "var"), "UPLOAD_ROOT": str(workdir / "uploads")}
    port = free_port()
    command = [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)]
    try:
        with server(command, port, env, ROOT) as url:
            seeded = asyncio.run(seed(database_url, workdir))
            api = f"{url}/api/v1"
            results = figures.results
            # Interleaved rounds: the machine's speed drifts (other tenants, clock), and a ratio
            # of two runs side by side drifts far less than either run alone.
            each = max(3, seconds // 2)
            for n in range(1, ROUNDS + 1):
                results[f"healthz #{n}"], _ = run_wrk("healthz", f"{api}/healthz", each)
                results[f"users/me #{n}"], _ = run_wrk(
                    "users/me",
                    f"{api}/users/me",
                    each,
                    script="bearer.lua",
                    env={"TOKENS_FILE": str(seeded["tokens"])},
                    warm_up=False,  # the first round meets the cold profile cache
                )
            figures.calm_p99_ms = percentile(asyncio.run(paced_probe(url, seconds, 100)), 0.99)
            storm = subprocess.Popen(
                pinned(
                    1,
                    [
                        "wrk",
                        "-t1",
                        f"-c{CONNECTIONS}",
                        f"-d{seconds}s",
                        "--latency",
                        "-s",
                        str(LUA / "login.lua"),
                        url,
                    ],
                ),
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "EMAILS_FILE": str(seeded["emails"]), "PASSWORD": PASSWORD},
            )
            during = asyncio.run(paced_probe(url, seconds, 100))
            storm_out, _ = storm.communicate()
            results["login storm"] = parse_wrk("login storm", storm_out)
            figures.storm_p99_ms = percentile(during, 0.99)
            figures.calm_p99_ms *= 1000
            figures.storm_p99_ms *= 1000
            figures.storm_tail_seconds = wait_for_quiet_server()

            prefix = uuid.uuid4().hex[:8]
            run_wrk(  # its own addresses; the audit counts the measured run's only
                "warm-up",
                f"{url}/api/v1/waitlist",
                1,
                script="waitlist.lua",
                env={"WAITLIST_PREFIX": f"warm{prefix}"},
                warm_up=False,
            )
            results["POST waitlist"], out = run_wrk(
                "POST waitlist",
                f"{url}/api/v1/waitlist",
                seconds,
                script="waitlist.lua",
                env={"WAITLIST_PREFIX": prefix},
                warm_up=False,
            )
            line = re.search(r"^WAITLIST (.*)$", out, re.MULTILINE)
            assert line is not None, out
            figures.waitlist = {
                key: int(value)
                for key, value in (part.split("=") for part in line.group(1).split())
            }
            figures.accepted_per_second = figures.waitlist["s201"] / seconds
            figures.audit = asyncio.run(audit_waitlist(database_url, prefix))

            results["admin/logs"], _ = run_wrk(
                "admin/logs page 1",
                f"{api}/admin/logs",
                seconds,
                script="bearer.lua",
                env={"TOKENS_FILE": str(write_lines(workdir / "admin.txt", seeded["admin"]))},
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def wait_for_quiet_server(*, busy_below: float = 0.25, deadline_seconds: float = 60) -> float:
    """Seconds until the server's CPU falls quiet after the login storm. When wrk stops it
    abandons the logins in flight (one per connection), and the server still hashes each of
    them; its hashing threads run at a lower priority, so under the next load they drain at a
    tenth of the core for tens of seconds and would be counted against the waitlist. The
    server's CPU is CPU 0 when the run is pinned, the whole machine otherwise."""
    if not Path("/proc/stat").exists():
        return 0.0  # not Linux: nothing to read the CPU from
    row = "cpu0 " if (os.cpu_count() or 1) > 1 and shutil.which("taskset") else "cpu "

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            line = next(line for line in stat if line.startswith(row))
        values = [int(value) for value in line.split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    start = time.monotonic()
    while time.monotonic() - start < deadline_seconds:
        total, idle = ticks()
        time.sleep(0.5)
        total_after, idle_after = ticks()
        elapsed = total_after - total
        if elapsed and 1 - (idle_after - idle) / elapsed < busy_below:
            break
    return time.monotonic() - start


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def waitlist_problems(figures: Figures) -> list[str]:
    w, a = figures.waitlist, figures.audit
    problems = []
    if w["s5xx"] or w["s429"] or w["other"]:
        problems.append(f"{w['s5xx']} 5xx, {w['s429']} 429, {w['other']} other answers")
    # Every new address answered 201 is stored (a bot is answered 201 too, and stores nothing);
    # requests in flight when wrk stopped may be stored without an answer.
    lost = max(0, w["s201"] - w["sent_bot"] - a["stored"])
    if lost:
        problems.append(f"{lost} accepted addresses missing")
    if a["stored"] > w["sent_new"]:
        problems.append(f"{a['stored'] - w['sent_new']} more rows than new addresses")
    if a["duplicates"]:
        problems.append(f"{a['duplicates']} duplicated rows")
    if a["bots_stored"]:
        problems.append(f"{a['bots_stored']} bot submissions stored")
    if a["most_acks_per_address"] > 1 or a["acknowledgements"] != a["stored"]:
        problems.append(
            f"{a['acknowledgements']} acknowledgements for {a['stored']} addresses "
            f"(at most {a['most_acks_per_address']} to one)"
        )
    return problems


def report(all_figures: list[Figures], seconds: int) -> bool:
    print(
        f"one server worker on CPU 0, wrk -t1 -c{CONNECTIONS} on CPU 1, {seconds}s per measurement"
    )
    met = True
    for figures in all_figures:
        r = figures.results
        print(f"\n== {figures.name}")
        print(f"{'':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, result in r.items():
            figures_line = (
                f"{result.requests_per_second:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f}"
            )
            print(f"{name:22} {figures_line} {result.non_2xx:8d}")
        rounds = [(r[f"healthz #{n}"], r[f"users/me #{n}"]) for n in range(1, ROUNDS + 1)]
        rps_ratios = [me.requests_per_second / h.requests_per_second for h, me in rounds]
        p99_ratios = [me.p99_ms / h.p99_ms for h, me in rounds]
        me_rps, me_p99 = statistics.median(rps_ratios), max(p99_ratios)
        health_rps = statistics.median(h.requests_per_second for h, _ in rounds)
        accepted = figures.accepted_per_second
        logs_rps = r["admin/logs"].requests_per_second / health_rps
        w = figures.waitlist
        problems = waitlist_problems(figures)
        postgres = figures.name.startswith("PostgreSQL")
        each = " ".join(f"{ratio:.2f}" for ratio in rps_ratios)
        print(
            f"users/me / healthz req/s:        {me_rps:.2f}, the median of {each}"
            + (" (target >= 0.80)" * postgres)
        )
        each = " ".join(f"{ratio:.2f}" for ratio in p99_ratios)
        print(f"users/me p99 / healthz p99:      {me_p99:.2f}, the worst of {each} (target <= 2)")
        print(
            f"healthz p99, paced 100/s:        calm {figures.calm_p99_ms:.1f} ms, "
            f"login storm {figures.storm_p99_ms:.1f} ms "
            f"({r['login storm'].requests_per_second:.1f} logins/s); the logins wrk abandoned "
            f"were hashed {figures.storm_tail_seconds:.1f} s after it stopped"
        )
        print(
            f"POST waitlist accepted:          {accepted:.0f}/s "
            f"= {accepted / health_rps:.3f} of healthz's median req/s"
            + (" (target >= 1000/s)" * postgres)
        )
        print(
            f"  sent {w['sent_new']} new, {w['sent_repeat']} repeats, {w['sent_invalid']} "
            f"invalid, {w['sent_bot']} bots; answered 201: {w['s201']}, 200: {w['s200']}, "
            f"422: {w['s422']}; stored {figures.audit['stored']}, "
            f"acknowledged {figures.audit['acknowledgements']}"
        )
        print(f"  guarantees: {'; '.join(problems) if problems else 'ok (0 lost, 0 duplicated)'}")
        print(f"admin/logs / healthz req/s:      {logs_rps:.2f}")
        met = met and me_p99 <= 2.0 and not problems
        if postgres:
            met = met and me_rps >= 0.8 and accepted >= 1000
    return met


def reachable_services() -> bool:
    try:
        Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=2).ping()
        asyncio.run(drop_database("orbsurv_bench_probe_absent"))
    except (OSError, RedisError) as exc:
        print(f"skipping PostgreSQL + Redis: {exc}", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument(
        "--only", choices=["embedded", "postgres"], help="measure one configuration"
    )
    args = parser.parse_args()
    seconds = 3 if args.quick else args.seconds
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # this process (the probe) loads from CPU 1 too

    base = {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        "JWT_SECRET_KEY": JWT_SECRET,
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "PYTHONPATH": str(ROOT),
    }
    all_figures = []
    if args.only in (None, "embedded"):
        workdir = Path(tempfile.mkdtemp(prefix="orbsurv-hot-db-"))
        url = f"sqlite+aiosqlite:///{workdir}/orbsurv.db"
        # As a new user runs it: development, SQLite, no Redis, the in-process mail worker.
        env = {**base, "ENV": "development", "DATABASE_URL": url}
        try:
            all_figures.append(measure("embedded default (SQLite, no Redis)", env, url, seconds))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.only in (None, "postgres") and reachable_services():
        Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
        name, url = asyncio.run(fresh_database())
        env = {
            **base,
            "ENV": "test",
            "DATABASE_URL": url,
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        }
        try:
            all_figures.append(measure("PostgreSQL + Redis", env, url, seconds))
        finally:
            asyncio.run(drop_database(name))
    return 0 if report(all_figures, seconds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
