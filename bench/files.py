"""Project uploads and downloads through the real server (granian), against the disk and boto3.

1. Local storage: ``POST /projects`` of an N-byte file (default 1 GiB, multipart, streamed from
   disk by curl) vs ``dd bs=1M conv=fsync`` of the same file on the same disk (the storage
   fsyncs too); ``GET /projects/{id}/download`` written to a file vs ``cp`` of the stored file on
   the same disk. For each, the peak growth of the serving process's RSS while it ran.
2. S3 (moto's server, a process of its own): the same upload through the server with
   ``STORAGE_BACKEND=s3`` vs a plain boto3 ``upload_fileobj`` of the same bytes to the same
   server.

moto's server fails CompleteMultipartUpload (500) for 1 GiB objects, boto3's own upload
included, so the S3 part runs at a smaller size: ``--s3-size-mib`` (default 256).

Run: uv run python -m bench.files [--size-mib 1024] [--s3-size-mib 256] [--skip-s3|--skip-local]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.console import rss_bytes, worker_pid
from bench.http_overhead import ROOT, free_port, server
from orbsurv.adapters.storage.s3 import make_s3_client

PASSWORD = "correct horse battery"
MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as handle:
        for _ in range(size // MiB):
            handle.write(block)  # compressibility does not matter here; speed does
        handle.write(os.urandom(size % MiB))
        handle.flush()
        os.fsync(handle.fileno())


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """Yields ``[before, peak]`` of ``pid``'s RSS in bytes, sampled every 5 ms."""
    figures = [rss_bytes(pid), rss_bytes(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            figures[1] = max(figures[1], rss_bytes(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield figures
    finally:
        done.set()
        sampler.join()


def signed_in(url: str) -> dict[str, str]:
    email = f"bench-{os.urandom(4).hex()}@example.com"
    httpx.post(f"{url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    answer = httpx.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def upload(url: str, auth: dict[str, str], source: Path) -> dict[str, object]:
    """curl streams the multipart body from disk (httpx's client was the bottleneck)."""
    answer = subprocess.run(
        [
            "curl", "-sS", "--fail-with-body", "-H", f"Authorization: {auth['Authorization']}",
            "-F", "name=bench", "-F", "description=", "-F", "is_public=false",
            "-F", f"file=@{source};type=application/octet-stream",
            f"{url}/api/v1/projects",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    body: dict[str, object] = json.loads(answer.stdout)
    return body


def download(url: str, auth: dict[str, str], project_id: str, target: Path) -> None:
    subprocess.run(
        [
            "curl", "-sS", "--fail", "-H", f"Authorization: {auth['Authorization']}",
            "-o", str(target), f"{url}/api/v1/projects/{project_id}/download",
        ],
        check=True,
    )  # fmt: skip


def server_env(workdir: Path, size: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENV": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'orbsurv.db'}",
        "UPLOAD_ROOT": str(workdir / "uploads"),
        "MAX_UPLOAD_BYTES": str(size + MiB),
        "USER_QUOTA_BYTES": str(4 * size + MiB),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "orbsurv.main.cli", "serve", "--port", str(port)]


def local_figures(workdir: Path, source: Path, size: int) -> None:
    baseline_upload = timed(
        lambda: subprocess.run(
            ["dd", f"if={source}", f"of={workdir / 'dd.bin'}", "bs=1M", "conv=fsync"],
            check=True,
            capture_output=True,
        )
    )
    port = free_port()
    with server(serve_command(port), port, server_env(workdir, size), ROOT) as url:
        auth = signed_in(url)
        pid = worker_pid(port)
        with peak_rss(pid) as up_rss:
            up_seconds = timed(lambda: projects.append(upload(url, auth, source)))
        project = projects[-1]
        stored = next(p for p in (workdir / "uploads").rglob(str(project["id"])))
        baseline_download = timed(
            lambda: subprocess.run(["cp", str(stored), str(workdir / "cp.bin")], check=True)
        )
        target = workdir / "downloaded.bin"
        with peak_rss(pid) as down_rss:
            down_seconds = timed(lambda: download(url, auth, str(project["id"]), target))
        assert target.stat().st_size == size
    mib = size / MiB
    print(f"local upload of {mib:.0f} MiB: {mib / up_seconds:.0f} MiB/s; dd conv=fsync", end=" ")
    print(f"{mib / baseline_upload:.0f} MiB/s; ratio {baseline_upload / up_seconds:.2f};", end=" ")
    print(f"server RSS growth {(up_rss[1] - up_rss[0]) / MiB:.1f} MiB")
    print(f"local download: {mib / down_seconds:.0f} MiB/s;", end=" ")
    print(f"cp {mib / baseline_download:.0f} MiB/s;", end=" ")
    print(f"ratio {baseline_download / down_seconds:.2f};", end=" ")
    print(f"server RSS growth {(down_rss[1] - down_rss[0]) / MiB:.1f} MiB")


projects: list[dict[str, object]] = []


def s3_figures(workdir: Path, source: Path, size: int) -> None:
    moto_port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{moto_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client = make_s3_client(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id="bench",
            secret_access_key="bench",
        )
        client.create_bucket(Bucket="bench")
        with source.open("rb") as handle:
            plain = timed(lambda: client.upload_fileobj(handle, "bench", "plain.bin"))
        client.delete_object(Bucket="bench", Key="plain.bin")
        env = server_env(
            workdir,
            size,
            STORAGE_BACKEND="s3",
            S3_BUCKET="bench",
            S3_ENDPOINT_URL=endpoint,
            S3_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'orbsurv-s3.db'}",
        )
        port = free_port()
        with server(serve_command(port), port, env, ROOT) as url:
            auth = signed_in(url)
            pid = worker_pid(port)
            with peak_rss(pid) as rss:
                ours = timed(lambda: upload(url, auth, source))
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    mib = size / MiB
    print(f"S3 (moto) upload of {mib:.0f} MiB through the server: {mib / ours:.0f} MiB/s;", end=" ")
    print(f"boto3 upload_fileobj {mib / plain:.0f} MiB/s; ratio {plain / ours:.2f};", end=" ")
    print(f"server RSS growth {(rss[1] - rss[0]) / MiB:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--s3-size-mib", type=int, default=256)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="orbsurv-files-", dir=ROOT / "var"))
    try:
        size = args.size_mib * MiB
        source = workdir / "source.bin"
        make_file(source, size)
        if not args.skip_local:
            local_figures(workdir, source, size)
        if not args.skip_s3:
            s3_size = min(args.s3_size_mib, args.size_mib) * MiB
            if s3_size != size:
                source.unlink()
                make_file(source, s3_size)
            s3_figures(workdir, source, s3_size)
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
