"""Support chat: latency the service adds around the assistant, and retrieval time per query.

1. ``orbsurv serve`` (one worker, SQLite) with 1,000 published resources and an OpenAI-compatible
   stub model on loopback that answers after a fixed delay. ``POST /support-chat/messages`` is
   sent one at a time (no queueing); the added latency of each call is its wall time minus the
   stub's delay. Printed: p50/p99 of the added latency.
2. In process: a BM25 index over 10,000 resources (built once), then the labelled questions
   searched repeatedly. Printed: build time, and retrieval time per query p50/p99.

Run: uv run python -m bench.support_chat [--requests 300] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from tests.ai_stub import Answer, stub_model
from tests.data.knowledge_base import QUESTIONS, RESOURCES

from bench.http_overhead import free_port, server
from orbsurv.adapters.ai.knowledge_base import build_index, search_index
from orbsurv.adapters.persistence.content import SqlResourceRepository
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.migrations import upgrade
from orbsurv.domain.content import Resource, ResourceType


def synthetic_resources(count: int, seed: int = 11) -> list[Resource]:
    """``count`` resources: the shipped knowledge base, then variants of it with filler text."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))
        for _ in range(5000)
    ]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for n in range(count):
        base = RESOURCES[n % len(RESOURCES)]
        original = n < len(RESOURCES)
        filler = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(40, 120)))
        made.append(
            Resource(
                slug=base["slug"] if original else f"{base['slug']}-{n}",
                title=base["title"] if original else f"{base['title']} ({rng.choice(vocabulary)})",
                type=ResourceType(base["type"]),
                description=base["description"],
                body=base["body"] if original else f"{filler}\n\n{base['body'][:200]}",
                published=True,
                created_at=start + timedelta(seconds=n),
                updated_at=start + timedelta(seconds=n),
            )
        )
    return made


async def seed(url: str, resources: list[Resource]) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            repository = SqlResourceRepository(conn)
            for resource in resources:
                await repository.add(resource)
            await conn.commit()
    finally:
        await engine.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def added_latency(requests: int, delay: float) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory() as workdir, stub_model() as model:
        model.default = Answer(delay=delay)
        url = f"sqlite+aiosqlite:///{Path(workdir) / 'chat.db'}"
        upgrade(url)
        asyncio.run(seed(url, synthetic_resources(1_000)))
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "ENV": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": url,
            "AI_BASE_URL": model.base_url,
            "AI_MODEL": "stub",
            "SUPPORT_MESSAGES_PER_MINUTE": "1000000",
            "SUPPORT_DAILY_TOKENS": "1000000000",
        }
        command = [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)]
        with server(command, port, env, Path(workdir)) as base, httpx.Client(timeout=30) as http:
            token = http.post(
                f"{base}/api/v1/auth/register",
                json={"email": "bench@example.com", "password": "correct horse battery"},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            baseline = []  # the same client and server on healthz, for the machine's pace
            for _ in range(requests):
                started = time.perf_counter()
                http.get(f"{base}/api/v1/healthz")
                baseline.append((time.perf_counter() - started) * 1000)
            samples = []
            for n in range(requests + 10):
                question = QUESTIONS[n % len(QUESTIONS)][0]
                started = time.perf_counter()
                response = http.post(
                    f"{base}/api/v1/support-chat/messages",
                    json={"message": question},
                    headers=headers,
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 201, response.text
                assert response.json()["status"] == "complete", response.text
                if n >= 10:  # the first calls build the index and warm the pools
                    samples.append((elapsed - delay) * 1000)
    return (
        statistics.median(samples),
        percentile(samples, 0.99),
        delay * 1000,
        statistics.median(baseline),
    )


def retrieval(count: int, rounds: int) -> tuple[float, float, float, int]:
    resources = synthetic_resources(count)
    started = time.process_time()
    index = build_index(1, resources)
    build = time.process_time() - started
    timings = []
    for _ in range(rounds):
        for question, _ in QUESTIONS:
            started = time.perf_counter()
            found = search_index(index, question, 4)
            timings.append((time.perf_counter() - started) * 1000)
            assert found, question
    return build, statistics.median(timings), percentile(timings, 0.99), len(index.passages)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.05, help="the stub model's delay, s")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    p50, p99, delay_ms, healthz = added_latency(args.requests, args.delay)
    print(
        f"POST /support-chat/messages, 1,000 resources, {args.requests} sequential calls, "
        f"stub model delay {delay_ms:.0f} ms: added latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(healthz round trip p50 {healthz:.1f} ms on the same run)"
    )
    build, q50, q99, passages = retrieval(10_000, args.rounds)
    print(
        f"retrieval at 10,000 resources ({passages} passages): index built in {build:.2f} s "
        "of CPU; "
        f"per query p50 {q50:.2f} ms, p99 {q99:.2f} ms"
    )


if __name__ == "__main__":
    main()
