"""Throughput and latency of /api/v1/healthz: Orbsurv's full stack vs a bare Litestar app.

Target (issue "walking skeleton"): the full stack reaches at least 70% of the bare app's req/s,
and its p99 at 64 connections stays within 2x of the bare app's p99.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/v1/healthz"


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


@contextmanager
def server(command: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[str]:
    process = subprocess.Popen(
        pinned(0, command),
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urlopen(f"{url}{PATH}", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {command}") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    name: str, url: str, seconds: int, connections: int, headers: dict[str, str] | None = None
) -> Result:
    extra = [arg for key, value in (headers or {}).items() for arg in ("-H", f"{key}: {value}")]
    subprocess.run(
        pinned(1, ["wrk", "-t1", "-c16", "-d2s", *extra, url]), capture_output=True, check=True
    )
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(name, out)


def parse_wrk(name: str, out: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _duration_ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _duration_ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(name, rps, p50, p99, int(bad.group(1)) if bad else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="orbsurv-bench-"))
    env = {
        **os.environ,
        "ENV": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
        "UPLOAD_ROOT": str(workdir / "uploads"),
        "PYTHONPATH": str(ROOT),
    }
    granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", "1"]
    variants = [
        ("bare litestar", [*granian, "bench.bare_app:app"]),
        ("orbsurv full stack", [sys.executable, "-m", "orbsurv.main.cli", "serve"]),
        (
            "orbsurv + stock dishka middleware",
            [*granian, "--factory", "bench.stock_dishka_app:create_app"],
        ),
    ]
    results = []
    for name, command in variants:
        port = free_port()
        full = [*command, "--port", str(port)]
        with server(full, port, env, ROOT) as url:
            results.append(wrk(name, f"{url}{PATH}", args.seconds, args.connections))
    shutil.rmtree(workdir, ignore_errors=True)

    print(f"GET {PATH}: 1 server worker on CPU 0, wrk on CPU 1,", end=" ")
    print(f"{args.connections} connections, {args.seconds}s per run")
    print(f"{'variant':36} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in results:
        figures = f"{r.requests_per_second:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f}"
        print(f"{r.name:36} {figures} {r.non_2xx:8d}")
    bare, full, stock = results
    throughput = full.requests_per_second / bare.requests_per_second
    latency = full.p99_ms / bare.p99_ms
    print(f"full/bare req/s: {throughput:.2f} (target >= 0.70)")
    print(f"full/bare p99:   {latency:.2f} (target <= 2.00)")
    print(
        f"stock-middleware/full req/s: {stock.requests_per_second / full.requests_per_second:.2f}, "
        f"p99 {stock.p99_ms / full.p99_ms:.2f}x"
    )
    return 0 if throughput >= 0.70 and latency <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
