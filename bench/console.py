"""The operator console at scale, on PostgreSQL.

Seeds 1,000,000 audit events and 100,000 users (and 100,000 waitlist rows), then measures:
1. /admin/logs filtered by action: median latency of the first page and of the page reached
   after 500 cursor steps (target: they differ by less than 1.5x);
2. the CSV export of the 100,000 waitlist rows: growth of the server's memory while it streams
   (target: under 50 MB).

Needs PostgreSQL and Redis on 127.0.0.1. Run: uv run python -m bench.console
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.http_overhead import ROOT, free_port, server
from bench.identity import drop_database, fresh_database
from orbsurv.adapters.persistence.migrations import upgrade

PASSWORD = "correct horse battery"
ACTIONS = [
    "login.succeeded",
    "login.failed",
    "logout",
    "profile.updated",
    "user.registered",
    "email.verified",
    "password.changed",
    "session.revoked",
    "settings.notifications.updated",
    "access.denied",
]


async def seed(dsn: str, events: int, users: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        """
        INSERT INTO users (id, email, username, name, organization, password_hash, role, is_active,
                           email_verified, otp_enabled, created_at, updated_at)
        SELECT gen_random_uuid()::text, 'seed' || i || '@example.com', NULL, 'Seed ' || i, NULL,
               'x', 'user', true, false, false, now() - (i || ' seconds')::interval, now()
        FROM generate_series(1, $1) AS i
        """,
        users,
    )
    actions = "ARRAY[" + ",".join(f"'{a}'" for a in ACTIONS) + "]"
    await conn.execute(
        f"""
        INSERT INTO audit_events (id, occurred_at, action, actor_user_id, target_type, target_id,
                                  ip, user_agent, request_id, details)
        SELECT gen_random_uuid()::text, now() - (i || ' seconds')::interval,
               ({actions})[1 + i % {len(ACTIONS)}], NULL, 'user', 't' || i,
               '10.0.' || (i % 250) || '.' || (i % 200), 'bench', NULL, '{{}}'
        FROM generate_series(1, $1) AS i
        """,
        events,
    )
    await conn.execute(
        """
        INSERT INTO waitlist_entries
            (id, created_at, email, name, source, updated_at, ip, user_agent)
        SELECT gen_random_uuid()::text, now() - (i || ' seconds')::interval,
               'wait' || i || '@example.com', 'Waiting ' || i, 'bench', now(), '10.1.1.1', 'bench'
        FROM generate_series(1, $1) AS i
        """,
        users,
    )
    await conn.execute("ANALYZE")
    await conn.close()
    return time.perf_counter() - started


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def worker_pid(port: int) -> int:
    """The process that serves requests: the newest python process listening for this port."""
    import subprocess

    found = subprocess.run(
        ["pgrep", "-f", f"serve --port {port}$"], capture_output=True, text=True
    ).stdout.split()
    return max(int(pid) for pid in found)


def median_ms(client: httpx.Client, path: str, params: dict[str, str], samples: int) -> float:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        answer.raise_for_status()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()

    name, database_url = asyncio.run(fresh_database())
    dsn = database_url.replace("+asyncpg", "")
    workdir = Path(tempfile.mkdtemp(prefix="orbsurv-console-"))
    try:
        upgrade(database_url)
        seconds = asyncio.run(seed(dsn, args.events, args.users))
        print(f"seeded {args.events:,} audit events, {args.users:,} users", end=" ")
        print(f"and {args.users:,} waitlist rows in {seconds:.0f}s")
        env = {
            **os.environ,
            "ENV": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:6379/10",
            "UPLOAD_ROOT": str(workdir / "uploads"),
            "PYTHONPATH": str(ROOT),
        }
        port = free_port()
        command = [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)]
        with server(command, port, env, ROOT) as url:
            email = f"operator-{uuid.uuid4().hex[:6]}@example.com"
            httpx.post(
                f"{url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            ).raise_for_status()

            async def promote() -> None:
                conn = await asyncpg.connect(dsn)
                await conn.execute("UPDATE users SET role = 'admin' WHERE email = $1", email)
                await conn.close()

            asyncio.run(promote())
            token = httpx.post(
                f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            ).json()["access_token"]
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as client:
                first = {"action": "login.failed", "limit": "20"}
                first_ms = median_ms(client, "/api/v1/admin/logs", first, args.samples)
                cursor = None
                for _ in range(args.steps):
                    page = client.get(
                        "/api/v1/admin/logs",
                        params={**first, **({"cursor": cursor} if cursor else {})},
                    ).json()
                    cursor = page["next_cursor"]
                deep_ms = median_ms(
                    client, "/api/v1/admin/logs", {**first, "cursor": cursor}, args.samples
                )

                pid = worker_pid(port)
                before = rss_bytes(pid)
                peak = [before]
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        peak[0] = max(peak[0], rss_bytes(pid))
                        time.sleep(0.005)

                sampler = threading.Thread(target=sample)
                sampler.start()
                started = time.perf_counter()
                rows = 0
                with client.stream(
                    "GET", "/api/v1/admin/waitlist", params={"format": "csv"}
                ) as export:
                    for line in export.iter_lines():
                        rows += 1 if line else 0
                export_seconds = time.perf_counter() - started
                done.set()
                sampler.join()
    finally:
        asyncio.run(drop_database(name))

    ratio = deep_ms / first_ms
    growth = (peak[0] - before) / 2**20
    print(f"/admin/logs?action=login.failed: first page {first_ms:.2f} ms,", end=" ")
    print(f"after {args.steps} cursor steps {deep_ms:.2f} ms (median of {args.samples})")
    print(f"deep / first: {ratio:.2f} (target < 1.5)")
    print(f"CSV export: {rows - 1:,} rows in {export_seconds:.1f}s; server memory", end=" ")
    print(
        f"{before / 2**20:.0f} MB -> peak {peak[0] / 2**20:.0f} MB: +{growth:.1f} MB (target < 50)"
    )
    return 0 if ratio < 1.5 and growth < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
