"""Identity speed targets, measured in one run against the same server.

1. GET /users/me with a Bearer token reaches >= 60% of /api/v1/healthz req/s, with PostgreSQL and
   Redis configured (no SQL on the authenticated path).
2. During a storm of 32 concurrent logins, healthz p99 stays under 50 ms (hashing never blocks the
   event loop), and logins/s reach >= 80% of the argon2 bound: 1 / hash time x hashing threads
   the server can run (one worker pinned to one core: one thread).

Needs PostgreSQL and Redis on 127.0.0.1 and wrk. Run: uv run python -m bench.identity
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from argon2 import PasswordHasher

from bench.http_overhead import ROOT, free_port, server, wrk
from orbsurv.adapters.persistence.migrations import upgrade
from orbsurv.adapters.security.passwords import (
    OWASP_MEMORY_KIB,
    OWASP_PARALLELISM,
    OWASP_TIME_COST,
)

PASSWORD = "correct horse battery"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def fresh_database() -> tuple[str, str]:
    name = f"orbsurv_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def hash_seconds(samples: int = 20) -> float:
    """One argon2id hash at the service's parameters, on one core (a verify costs the same)."""
    argon2 = PasswordHasher(
        time_cost=OWASP_TIME_COST, memory_cost=OWASP_MEMORY_KIB, parallelism=OWASP_PARALLELISM
    )
    timings = []
    for n in range(samples):
        started = time.perf_counter()
        argon2.hash(f"password {n}")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def register_all(url: str, count: int) -> list[str]:
    emails = [f"storm-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(count)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for email in emails:
            answer = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            answer.raise_for_status()
    return emails


async def paced_probe(url: str, seconds: float, rate: float) -> list[float]:
    """Open-loop latency probe: GET healthz every 1/rate seconds on a fixed schedule, each on its
    own task, so a slow answer delays no later request (no coordinated omission) and the probe
    itself never saturates the server."""
    latencies: list[float] = []

    async def one(client: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        answer = await client.get("/api/v1/healthz")
        if answer.status_code == 200:
            latencies.append(time.perf_counter() - started)

    tasks = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = time.perf_counter()
        n = 0
        while (due := start + n / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client)))
            n += 1
        await asyncio.gather(*tasks)
    return latencies


async def storm_with_probe(
    url: str, emails: list[str], seconds: float, rate: float
) -> tuple[int, int, list[float]]:
    (ok, failed), latencies = await asyncio.gather(
        storm(url, emails, seconds), paced_probe(url, seconds, rate)
    )
    return ok, failed, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def storm(url: str, emails: list[str], seconds: float) -> tuple[int, int]:
    """Each email logs in again and again until the time is up; returns (ok, failed)."""
    deadline = time.monotonic() + seconds
    ok = failed = 0

    async def one(client: httpx.AsyncClient, email: str) -> None:
        nonlocal ok, failed
        while time.monotonic() < deadline:
            answer = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            if answer.status_code == 200:
                ok += 1
            else:
                failed += 1

    limits = httpx.Limits(max_connections=len(emails))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(one(client, email) for email in emails))
    return ok, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--logins", type=int, default=32, help="concurrent logins in the storm")
    parser.add_argument("--probe-rate", type=float, default=100.0, help="healthz probes per second")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # this process and its children load from CPU 1

    name, database_url = asyncio.run(fresh_database())
    workdir = Path(tempfile.mkdtemp(prefix="orbsurv-bench-"))
    try:
        upgrade(database_url)
        env = {
            **os.environ,
            "ENV": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:6379/13",
            "REGISTRATION_RATE_LIMIT": "1000000",  # every account is opened from loopback
            "UPLOAD_ROOT": str(workdir / "uploads"),
            "PYTHONPATH": str(ROOT),
        }
        port = free_port()
        command = [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)]
        with server(command, port, env, ROOT) as url:
            token = httpx.post(
                f"{url}/api/v1/auth/register",
                json={"email": f"bench-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD},
            ).json()["access_token"]
            health = wrk("healthz", f"{url}/api/v1/healthz", args.seconds, args.connections)
            me = wrk(
                "users/me",
                f"{url}/api/v1/users/me",
                args.seconds,
                args.connections,
                headers={"Authorization": f"Bearer {token}"},
            )

            emails = asyncio.run(register_all(url, args.logins))
            calm = asyncio.run(paced_probe(url, args.seconds, args.probe_rate))
            ok, failed, during = asyncio.run(
                storm_with_probe(url, emails, args.seconds, args.probe_rate)
            )
    finally:
        asyncio.run(drop_database(name))

    seconds_per_hash = hash_seconds()
    threads = 1  # one worker process pinned to one core
    bound = threads / seconds_per_hash
    logins_per_second = ok / args.seconds
    print(
        f"server: 1 worker on CPU 0 (PostgreSQL + Redis); load from CPU 1; {args.seconds}s per run"
    )
    print(f"{'':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in (health, me):
        figures = f"{r.requests_per_second:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f}"
        print(f"{r.name:28} {figures} {r.non_2xx:8d}")
    me_ratio = me.requests_per_second / health.requests_per_second
    login_ratio = logins_per_second / bound
    print(f"users/me / healthz req/s:        {me_ratio:.2f} (target >= 0.60)")
    print(f"argon2 hash (median):            {seconds_per_hash * 1000:.1f} ms", end=" ")
    print(f"-> bound {bound:.1f} logins/s")
    print(f"logins/s during the storm:       {logins_per_second:.1f} ({ok} ok, {failed} failed)")
    print(f"logins / argon2 bound:           {login_ratio:.2f} (target >= 0.80)")
    calm_p99, storm_p99 = percentile(calm, 0.99) * 1000, percentile(during, 0.99) * 1000
    print(f"healthz p99, paced {args.probe_rate:.0f}/s, calm:", end=" ")
    print(f"{calm_p99:.1f} ms ({len(calm)} probes)")
    print(
        f"healthz p99, paced, in the storm: {storm_p99:.1f} ms (target < 50; {len(during)} probes)"
    )
    met = me_ratio >= 0.60 and login_ratio >= 0.80 and storm_p99 < 50 and failed == 0
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
