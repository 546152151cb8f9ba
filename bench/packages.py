"""Resumable package uploads: throughput, server memory and resume time.

For each storage backend (local files; S3 on moto's server):
1. a plain single streaming PUT of the file through the same storage adapter (the baseline);
2. our protocol: init, PATCH in ``--chunk`` pieces, complete (hash and scan included);
   throughput as a ratio of the baseline (goals: >= 0.8 local, >= 0.7 S3/moto);
3. the server's RSS growth during (2), sampled every 100 ms over its process group
   (goal: < 64 MB);
4. a kill: SIGKILL the server in the middle of a PATCH, start a fresh process, then time
   HEAD + the PATCH that continues (the stale lock of the killed process expires first);
5. the same upload driven by tus-js-client (Node), as a ratio of ours (local only).

Run: uv run python -m bench.packages                # 2 GiB, 8 MiB chunks
     uv run python -m bench.packages --size-mib 256 # a quicker run

S3 runs on moto's in-process server, whose CompleteMultipartUpload joins the parts in memory
and, past about 1 GiB, outlasts the client's 30 s read timeout (the retry then fails with a
500): the S3 payload is therefore capped at ``--s3-size-mib`` (default 512).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from bench.http_overhead import ROOT, free_port
from orbsurv.adapters.storage.local import LocalObjectStorage
from orbsurv.adapters.storage.s3 import S3ObjectStorage, make_s3_client

MiB = 1024 * 1024
UPLOADS = "/api/v1/software-packages/uploads"
SECRETS = {
    "JWT_SECRET_KEY": "bench-jwt-" + "k" * 40,
    "EMAIL_VERIFY_SECRET": "bench-verify-" + "v" * 40,
    "PASSWORD_RESET_SECRET": "bench-reset-" + "r" * 40,
}
JS = ROOT / "tests" / "e2e" / "js"


def make_file(path: Path, size: int) -> str:
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        written = 0
        while written < size:
            piece = block[: min(MiB, size - written)]
            # vary each block so no two parts are identical
            piece = hashlib.sha256(str(written).encode()).digest() + piece[32:]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in the process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


class RssSampler:
    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.baseline = group_rss(pgid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, group_rss(self.pgid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@contextmanager
def serve(env: dict[str, str], cwd: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def sign_up(url: str) -> str:
    answer = httpx.post(
        f"{url}/api/v1/auth/register",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery"},
        timeout=60,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def file_chunks(path: Path, start: int, length: int, piece: int = MiB) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(piece, left))
            if not data:
                return
            left -= len(data)
            yield data


def ours(url: str, token: str, path: Path, chunk: int, version: str) -> tuple[float, str]:
    size = path.stat().st_size
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers=auth, timeout=3600) as client:
        created = client.post(
            f"{UPLOADS}/init",
            json={"package_name": "bench", "version": version, "file_name": "b.bin", "size": size},
        )
        created.raise_for_status()
        upload_id = created.json()["upload_id"]
        offset = 0
        while offset < size:
            length = min(chunk, size - offset)
            answer = client.patch(
                f"{UPLOADS}/{upload_id}",
                content=file_chunks(path, offset, length),
                headers={
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Content-Length": str(length),
                },
            )
            answer.raise_for_status()
            offset = answer.json()["offset"]
        done = client.post(f"{UPLOADS}/{upload_id}/complete")
        done.raise_for_status()
    return time.perf_counter() - started, done.json()["sha256"]


async def _file_stream(path: Path) -> AsyncIterator[bytes]:
    for piece in file_chunks(path, 0, path.stat().st_size):
        yield piece


def baseline(storage: Any, path: Path) -> float:
    async def run() -> float:
        started = time.perf_counter()
        await storage.put(f"baseline/{uuid.uuid4().hex}", _file_stream(path))
        return time.perf_counter() - started

    return asyncio.run(run())


def resume_after_kill(
    env: dict[str, str], cwd: Path, path: Path, chunk: int
) -> tuple[float, float, float]:
    """Kill mid-PATCH; answer (restart to healthy, HEAD, HEAD + continuing PATCH) seconds."""
    size = path.stat().st_size
    with serve(env, cwd) as (url, process):
        token = sign_up(url)
        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{url}{UPLOADS}/init",
            headers=auth,
            json={"package_name": "kill", "version": "1.0.0", "file_name": "k", "size": size},
            timeout=60,
        ).json()
        upload_id = created["upload_id"]

        def slow_body() -> Iterator[bytes]:
            sent = 0
            for piece in file_chunks(path, 0, size):
                yield piece
                sent += len(piece)
                if sent >= 3 * chunk:
                    time.sleep(3600)  # hold the PATCH open; the server is killed meanwhile

        def send() -> None:
            with suppress(httpx.HTTPError):
                httpx.patch(
                    f"{url}{UPLOADS}/{upload_id}",
                    content=slow_body(),
                    headers={
                        **auth,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": "0",
                        "Content-Length": str(size),
                    },
                    timeout=3600,
                )

        threading.Thread(target=send, daemon=True).start()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            head = httpx.head(f"{url}{UPLOADS}/{upload_id}", headers=auth, timeout=30)
            if int(head.headers.get("upload-offset", "0")) >= 2 * chunk:
                break
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    restart = time.perf_counter()
    with serve(env, cwd) as (url, _):
        healthy = time.perf_counter() - restart
        started = time.perf_counter()
        head = httpx.head(f"{url}{UPLOADS}/{upload_id}", headers=auth, timeout=30)
        offset = int(head.headers["upload-offset"])
        head_seconds = time.perf_counter() - started
        while True:
            answer = httpx.patch(
                f"{url}{UPLOADS}/{upload_id}",
                content=file_chunks(path, offset, min(chunk, size - offset)),
                headers={
                    **auth,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                },
                timeout=3600,
            )
            if answer.status_code != 423:
                answer.raise_for_status()
                break
            time.sleep(0.1)
        continued = time.perf_counter() - started
    return healthy, head_seconds, continued


def tus_js(url: str, token: str, path: Path, chunk: int) -> float:
    if not (JS / "node_modules" / "tus-js-client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
    meta = json.dumps({"package_name": "bench-js", "version": "1.0.0", "filename": "b.bin"})
    started = time.perf_counter()
    done = subprocess.run(
        ["node", str(JS / "upload.mjs"), f"{url}{UPLOADS}", token, str(path), str(chunk), meta],
        capture_output=True,
        text=True,
        check=True,
    )
    del done
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--s3-size-mib", type=int, default=512, help="cap for the S3 payload")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-js", action="store_true")
    args = parser.parse_args()
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="orbsurv-bench-packages-"))
    try:
        path = work / "payload.bin"
        expected = make_file(path, size)
        print(f"payload: {args.size_mib} MiB, chunks of {args.chunk_mib} MiB")
        for backend in args.backends.split(","):
            if backend == "s3" and args.s3_size_mib < args.size_mib:
                path = work / "payload-s3.bin"
                expected = make_file(path, args.s3_size_mib * MiB)
                print(f"S3 payload: {args.s3_size_mib} MiB (moto; see --s3-size-mib)")
            run_backend(backend, work, path, expected, chunk, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_backend(
    backend: str, work: Path, path: Path, expected: str, chunk: int, args: argparse.Namespace
) -> None:
    size = path.stat().st_size
    home = work / backend
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        **SECRETS,
        "ENV": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'orbsurv.db'}",
        "UPLOAD_ROOT": str(home / "uploads"),
        "VAR_DIR": str(home / "var"),
        "MAX_UPLOAD_BYTES": str(max(size, 1)),
    }
    moto = None
    if backend == "s3":
        from moto.server import ThreadedMotoServer

        port = free_port()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        endpoint = f"http://127.0.0.1:{port}"
        client = make_s3_client(
            endpoint_url=endpoint, region="us-east-1", access_key_id="x", secret_access_key="x"
        )
        client.create_bucket(Bucket="bench")
        env.update(
            STORAGE_BACKEND="s3",
            S3_BUCKET="bench",
            S3_ENDPOINT_URL=endpoint,
            S3_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="x",
            AWS_SECRET_ACCESS_KEY="x",
        )
        storage: Any = S3ObjectStorage(client, "bench")
    else:
        storage = LocalObjectStorage(home / "uploads")
    try:
        plain = baseline(storage, path)
        with serve(env, home) as (url, process):
            token = sign_up(url)
            with RssSampler(process.pid) as rss:
                seconds, sha256 = ours(url, token, path, chunk, "1.0.0")
            assert sha256 == expected, "the stored bytes differ"
            js = None if args.skip_js or backend != "local" else tus_js(url, token, path, chunk)
        mib = size / MiB
        print(f"[{backend}] plain PUT: {plain:.1f} s ({mib / plain:.0f} MiB/s)")
        print(
            f"[{backend}] ours (init+PATCH+complete): {seconds:.1f} s ({mib / seconds:.0f} MiB/s)"
            f", ratio {plain / seconds:.2f}; server RSS growth {rss.growth / MiB:.1f} MiB"
        )
        if js is not None:
            print(
                f"[{backend}] tus-js-client: {js:.1f} s; ours/tus-js time ratio "
                f"{seconds / js:.2f} (tus-js throughput as a ratio of ours {seconds / js:.2f})"
            )
        if not args.skip_kill:
            healthy, head, continued = resume_after_kill(env, home, path, chunk)
            print(
                f"[{backend}] after SIGKILL: fresh server healthy in {healthy:.1f} s; HEAD "
                f"{head * 1000:.0f} ms; HEAD + continuing PATCH accepted in {continued:.1f} s"
            )
    finally:
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    main()
