"""One test per row of the failure-mode table in ``docs/operations.md``, through the real server.

Each row breaks one dependency (down, hung, resetting, data lost, full), checks that a client gets
a clear answer within ``BOUND`` seconds (the status, problem+json, ``Retry-After``, a ``code``
naming the dependency and no driver text), that what must be kept is kept, and that once the
fault is repaired the next requests succeed without restarting anything, within ``HEAL`` seconds.
Both times are recorded per row (``fault_times``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_package_uploads import UPLOADS, patch
from tests.fault_proxy import Mode
from tests.faults.conftest import (
    API,
    BOUND,
    HEAL,
    PASSWORD,
    TIMEOUTS,
    FaultTimes,
    Stack,
    StalledClient,
    sign_up,
    until,
)
from tests.live import serving

pytestmark = [pytest.mark.slow]

# Words that would mean a driver's or client's error text reached the client.
LEAKS = ("Traceback", "asyncpg", "sqlalchemy", "botocore", "redis.exceptions", "Errno", "SECRET")
DOWN_MODES: list[Mode] = ["refuse", "blackhole", "reset"]


def timed(call: Any) -> tuple[httpx.Response, float]:
    """Run ``call`` (an httpx request); the response and the seconds it took. No answer within
    ``BOUND`` plus a margin fails the row."""
    started = time.monotonic()
    try:
        response = call()
    except httpx.TimeoutException:
        pytest.fail(f"no answer within {BOUND + 10:.0f} s", pytrace=False)
    return response, time.monotonic() - started


def assert_clear(response: httpx.Response, status: int, code: str) -> None:
    """``status`` problem+json with ``code``, ``Retry-After`` on 503, and no driver text."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json().get("code") == code, response.text[:500]
    if status == 503:
        assert "retry-after" in response.headers, ("no Retry-After", response.text[:300])
        assert int(response.headers["retry-after"]) >= 1
    for word in LEAKS:
        assert word not in response.text, (word, response.text[:500])


def login(url: str, email: str) -> httpx.Response:
    return httpx.post(
        f"{url}{API}/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=BOUND + 10,
    )


def upload(url: str, auth: dict[str, str], data: bytes, name: str = "Patrol map") -> httpx.Response:
    return httpx.post(
        f"{url}{API}/projects",
        headers=auth,
        data={"name": name, "description": "Night route", "is_public": "false"},
        files={"file": ("build.zip", data, "application/zip")},
        timeout=BOUND + 10,
    )


def project_names(url: str, auth: dict[str, str]) -> list[str]:
    response = httpx.get(f"{url}{API}/projects", headers=auth, timeout=BOUND + 10)
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    return [item["name"] for item in items]


def payload(size: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def ok(response: httpx.Response, status: int = 200) -> httpx.Response | None:
    return response if response.status_code == status else None


def attempt(call: Any) -> httpx.Response | None:
    try:
        response: httpx.Response = call()
    except httpx.TransportError:
        return None
    return response


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("mode", DOWN_MODES)
def test_postgres(pg: Stack, mode: Mode, fault_times: FaultTimes) -> None:
    """PostgreSQL refusing, hung or resetting: 503 ``dependency_unavailable`` within the bound;
    once it is back the same process serves again (its pool drops the dead connections)."""
    row = f"postgres/database/{mode}"
    email, _ = sign_up(pg.url)
    pg.proxies["postgres"].set_mode(mode)
    response, answer = timed(lambda: login(pg.url, email))
    fault_times.record(row, answer=answer)
    assert_clear(response, 503, "dependency_unavailable")
    assert answer < BOUND
    ready, took = timed(lambda: httpx.get(f"{pg.url}{API}/readyz", timeout=BOUND + 10))
    assert ready.status_code == 503  # a load balancer keeps traffic away meanwhile
    assert took < BOUND
    pg.proxies["postgres"].set_mode("pass")
    _, healed = until(lambda: ok(login(pg.url, email)), HEAL, "login after PostgreSQL is back")
    fault_times.record(row, healed=healed)


# --- Redis ---------------------------------------------------------------------------------------


def me(url: str, auth: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{url}{API}/users/me", headers=auth, timeout=BOUND + 10)


def revoked_session(url: str) -> tuple[str, dict[str, str]]:
    """A signed-out session: its access token must never work again."""
    email, auth = sign_up(url)
    response = httpx.post(f"{url}{API}/auth/logout", headers=auth, json={}, timeout=BOUND + 10)
    assert response.status_code in {200, 204}, response.text
    assert me(url, auth).status_code == 401
    return email, auth


def assert_answer_or_clear(response: httpx.Response, success: int) -> None:
    """Either the work was done or a clear 503 naming the dependency; never a 500."""
    if response.status_code != success:
        assert_clear(response, 503, "dependency_unavailable")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("fault", ["down", "blackhole"])
def test_redis_down_or_hung(pg: Stack, fault: str, fault_times: FaultTimes) -> None:
    """Redis down (its process killed) or hung: requests answer within the bound (done, or 503
    ``dependency_unavailable``), a revoked token stays revoked, and Redis coming back heals."""
    assert pg.redis is not None
    row = f"postgres/redis/{fault}"
    email, _ = sign_up(pg.url)
    _, revoked = revoked_session(pg.url)
    if fault == "down":
        pg.redis.stop()
    else:
        pg.proxies["redis"].set_mode("blackhole")
    response, answer = timed(lambda: login(pg.url, email))
    fault_times.record(row, answer=answer)
    assert answer < BOUND
    assert_answer_or_clear(response, 200)
    still, _ = timed(lambda: me(pg.url, revoked))
    assert still.status_code in {401, 503}, still.text  # never 200: a revocation is durable
    if fault == "down":
        pg.redis.start()
    else:
        pg.proxies["redis"].set_mode("pass")
    _, healed = until(lambda: ok(login(pg.url, email)), HEAL, "login after Redis is back")
    fault_times.record(row, healed=healed)
    assert me(pg.url, revoked).status_code == 401


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_restarted_empty_keeps_revocations(
    pg: Stack, fault_times: FaultTimes, tmp_path: Path
) -> None:
    """Redis restarted empty (its data lost): no revoked token comes back, neither on the running
    process nor on one started afterwards (a deploy, another host), and sign-in works."""
    assert pg.redis is not None
    row = "postgres/redis/restarted empty"
    email, _ = sign_up(pg.url)
    _, revoked = revoked_session(pg.url)
    started = time.monotonic()
    pg.redis.restart_empty()
    response, _ = timed(lambda: me(pg.url, revoked))
    fault_times.record(row, answer=time.monotonic() - started)
    assert response.status_code in {401, 503}, response.text
    _, healed = until(lambda: ok(login(pg.url, email)), HEAL, "login after the restart")
    fault_times.record(row, healed=healed)
    # well after the resync too: the mirror was rebuilt from the database
    for _ in range(3):
        assert me(pg.url, revoked).status_code == 401
        time.sleep(0.5)
    with serving(tmp_path / "second", pg.env, deadline_seconds=120) as second:
        assert me(second.url, revoked).status_code == 401


# --- object storage (S3) -----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("mode", DOWN_MODES)
def test_s3(pg: Stack, mode: Mode, fault_times: FaultTimes) -> None:
    """S3 refusing, hung or resetting: an upload is 503 ``storage_unavailable`` within the bound
    and leaves no project behind; files stored earlier are there once S3 is back."""
    row = f"postgres/s3/{mode}"
    _, auth = sign_up(pg.url)
    before = upload(pg.url, auth, payload(64 * 1024, "before"), name="Kept")
    assert before.status_code == 201, before.text
    pg.proxies["s3"].set_mode(mode)
    response, answer = timed(lambda: upload(pg.url, auth, payload(64 * 1024, row), "Lost"))
    fault_times.record(row, answer=answer)
    assert_clear(response, 503, "storage_unavailable")
    assert answer < BOUND
    pg.proxies["s3"].set_mode("pass")
    _, healed = until(
        lambda: ok(upload(pg.url, auth, payload(1024, row + "2"), "After"), 201),
        HEAL,
        "an upload after S3 is back",
    )
    fault_times.record(row, healed=healed)
    assert sorted(project_names(pg.url, auth)) == ["After", "Kept"]
    download = httpx.get(
        f"{pg.url}{API}/projects/{before.json()['id']}/download", headers=auth, timeout=60
    )
    assert download.status_code == 200
    assert download.content == payload(64 * 1024, "before")


@pytest.mark.postgres
@pytest.mark.redis
def test_s3_lost_object(pg: Stack, fault_times: FaultTimes) -> None:
    """An object lost from the bucket: its download is a problem+json answer (not a 500 or a cut
    stream), every time; a project's object is its own (no deduplication), so the owner's new
    upload of the same bytes is a new project that downloads, and the lost one says so. (Package
    versions share content-addressed blobs: publishing the same bytes again restores the shared
    object: ``test_reuploading_lost_bytes_heals_the_blob`` in tests/api/test_upload_publication.)
    """
    assert pg.s3 is not None
    from orbsurv.adapters.storage.s3 import make_s3_client

    row = "postgres/s3/object lost"
    client = make_s3_client(
        endpoint_url=pg.s3.endpoint_url,
        region=pg.s3.region,
        access_key_id=pg.s3.access_key_id,
        secret_access_key=pg.s3.secret_access_key,
    )

    def keys() -> set[str]:
        listing = client.list_objects_v2(Bucket=pg.s3.bucket)
        return {item["Key"] for item in listing.get("Contents", [])}

    _, auth = sign_up(pg.url)
    data = payload(32 * 1024, "lost-" + os.urandom(4).hex())
    existing = keys()
    created = upload(pg.url, auth, data, name="Lost blob")
    assert created.status_code == 201, created.text
    for key in keys() - existing:
        client.delete_object(Bucket=pg.s3.bucket, Key=key)
    link = f"{pg.url}{API}/projects/{created.json()['id']}/download"
    started = time.monotonic()
    response, _ = timed(lambda: httpx.get(link, headers=auth, timeout=BOUND + 10))
    fault_times.record(row, answer=time.monotonic() - started)
    assert response.status_code == 404, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "object_missing"
    assert "x-request-id" in response.headers
    head = httpx.head(link, headers=auth, timeout=BOUND + 10)
    assert head.status_code == 404  # HEAD says what GET would
    started = time.monotonic()
    again = upload(pg.url, auth, data, name="Same bytes")
    assert again.status_code == 201, again.text
    fresh = f"{pg.url}{API}/projects/{again.json()['id']}/download"
    healed, _ = until(
        lambda: ok(httpx.get(fresh, headers=auth, timeout=BOUND + 10)), HEAL, "the new download"
    )
    fault_times.record(row, healed=time.monotonic() - started)
    assert healed.content == data
    assert httpx.get(link, headers=auth, timeout=BOUND + 10).status_code == 404


def patch_chunk(url: str, auth: dict[str, str], upload_id: str, offset: int, body: bytes) -> Any:
    return patch(url, auth, upload_id, offset, body, timeout=BOUND + 10)


@pytest.mark.postgres
@pytest.mark.redis
def test_s3_down_mid_upload_keeps_the_bytes(pg: Stack, fault_times: FaultTimes) -> None:
    """S3 down in the middle of a resumable upload and again at its completion: each request is
    503 ``storage_unavailable``, the bytes already acknowledged are kept (HEAD), the upload is
    never reported done while unpublished, and the client finishes it once S3 is back."""
    row = "postgres/s3/down mid-upload"
    _, auth = sign_up(pg.url)
    data = payload(256 * 1024, "resumable-" + os.urandom(4).hex())
    half = len(data) // 2
    created = httpx.post(
        f"{pg.url}{UPLOADS}/init",
        json={
            "package_name": f"faults-{os.urandom(3).hex()}",
            "version": "1.0.0",
            "file_name": "p.bin",
            "size": len(data),
        },
        headers=auth,
        timeout=BOUND + 10,
    )
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    first = patch_chunk(pg.url, auth, upload_id, 0, data[:half])
    assert first.status_code in {200, 204}, first.text
    pg.proxies["s3"].set_mode("refuse")
    response, answer = timed(lambda: patch_chunk(pg.url, auth, upload_id, half, data[half:]))
    if response.status_code not in {200, 204}:  # an adapter that buffers may take it in
        assert_clear(response, 503, "storage_unavailable")
    assert answer < BOUND
    pg.proxies["s3"].set_mode("pass")
    started = time.monotonic()

    def offset() -> int | None:
        head = httpx.head(f"{pg.url}{UPLOADS}/{upload_id}", headers=auth, timeout=BOUND + 10)
        return int(head.headers["upload-offset"]) if head.status_code == 200 else None

    kept, _ = until(offset, HEAL, "HEAD after S3 is back")
    assert kept >= half  # what was acknowledged is kept
    if kept < len(data):
        rest = patch_chunk(pg.url, auth, upload_id, kept, data[kept:])
        assert rest.status_code in {200, 204}, rest.text
    pg.proxies["s3"].set_mode("refuse")
    complete_url = f"{pg.url}{UPLOADS}/{upload_id}/complete"
    refused, took = timed(lambda: httpx.post(complete_url, headers=auth, timeout=BOUND + 10))
    assert_clear(refused, 503, "storage_unavailable")
    assert took < BOUND
    fault_times.record(row, answer=max(answer, took))
    pg.proxies["s3"].set_mode("pass")
    started = time.monotonic()
    done, _ = until(
        lambda: ok(httpx.post(complete_url, headers=auth, timeout=BOUND + 10)),
        HEAL,
        "the completion once S3 is back",
    )
    fault_times.record(row, healed=time.monotonic() - started)
    body = done.json()
    download = httpx.get(
        f"{pg.url}{API}/software-packages/{body['package_id']}/versions/"
        f"{body['version_id']}/download",
        headers=auth,
        timeout=60,
    )
    assert download.status_code == 200, download.text[:300]
    assert download.content == data


# --- local disk full (embedded) --------------------------------------------------------------


def test_local_disk_full(embedded_stack: Stack, fault_times: FaultTimes) -> None:
    """The upload root full: 507 ``insufficient_storage``, no partial bytes left behind, and an
    upload succeeds as soon as there is room again."""
    stack = embedded_stack
    disk = stack.disk
    assert disk is not None
    if not disk.mounted:
        pytest.skip(disk.reason)  # the ENOSPC wrapper alternative is not built; see the docs
    row = "embedded/local disk/full"
    _, auth = sign_up(stack.url)
    filler = Path(disk.path) / "filler"
    room = disk.free_bytes() - 256 * 1024  # leave 256 KiB
    with filler.open("wb") as handle:
        handle.write(b"\0" * room)
    free_before = disk.free_bytes()
    try:
        response, answer = timed(lambda: upload(stack.url, auth, payload(1024 * 1024, row)))
        fault_times.record(row, answer=answer)
        assert_clear(response, 507, "insufficient_storage")
        assert answer < BOUND
        assert disk.free_bytes() >= free_before - 16 * 1024  # nothing partial kept
        assert project_names(stack.url, auth) == []
    finally:
        filler.unlink()
    _, healed = until(
        lambda: ok(upload(stack.url, auth, payload(1024 * 1024, row)), 201),
        HEAL,
        "an upload once there is room",
    )
    fault_times.record(row, healed=healed)


# --- SMTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_smtp(stack: Stack, mode: Mode, fault_times: FaultTimes) -> None:
    """SMTP down or hung: sign-up still answers at once (the mail waits in the outbox), and
    ``orbsurv worker`` delivers it once SMTP is back."""
    row = f"{stack.kind}/smtp/{mode}"
    stack.proxies["smtp"].set_mode(mode)
    started = time.monotonic()
    email, _ = sign_up(stack.url)
    answer = time.monotonic() - started
    fault_times.record(row, answer=answer)
    assert answer < BOUND
    stack.proxies["smtp"].set_mode("pass")
    worker = stack.worker()  # started after the repair: a failed attempt waits 30 s to retry
    try:
        _, healed = until(
            lambda: (
                True
                if any(email in str(message.get("To", "")) for message in stack.smtp.messages)
                else None
            ),
            HEAL + 30,  # includes the worker's start
            "the queued mail delivered",
        )
        fault_times.record(row, healed=healed)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


# --- clamd ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "blackhole", "reset"])
def test_clamd(stack: Stack, mode: Mode, fault_times: FaultTimes) -> None:
    """clamd down, hung or resetting: an upload is 503 ``scanner_unavailable`` within the bound,
    nothing is published, and uploads pass once clamd is back."""
    if "clamd" not in stack.proxies:
        pytest.skip("clamd is not installed")
    row = f"{stack.kind}/clamd/{mode}"
    _, auth = sign_up(stack.url)
    stack.proxies["clamd"].set_mode(mode)
    response, answer = timed(lambda: upload(stack.url, auth, payload(8 * 1024, row), "Unscanned"))
    fault_times.record(row, answer=answer)
    assert_clear(response, 503, "scanner_unavailable")
    assert answer < BOUND
    assert project_names(stack.url, auth) == []
    stack.proxies["clamd"].set_mode("pass")
    _, healed = until(
        lambda: ok(upload(stack.url, auth, payload(8 * 1024, row), "Scanned"), 201),
        HEAL,
        "an upload once clamd is back",
    )
    fault_times.record(row, healed=healed)


# --- the AI model ----------------------------------------------------------------------------


def chat(url: str, auth: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}{API}/support-chat/messages",
        headers=auth,
        json={"message": "How do I reset my password?"},
        timeout=BOUND + 10,
    )


@pytest.mark.parametrize("mode", ["refuse", "blackhole", "reset"])
def test_ai_model(stack: Stack, mode: Mode, fault_times: FaultTimes) -> None:
    """The AI model down, hung or resetting: the chat answers within the bound with the stored
    fallback reply (never the upstream's text); the model's own replies resume once it is back."""
    row = f"{stack.kind}/ai model/{mode}"
    _, auth = sign_up(stack.url)
    stack.proxies["ai"].set_mode(mode)
    response, answer = timed(lambda: chat(stack.url, auth))
    fault_times.record(row, answer=answer)
    assert answer < BOUND
    assert response.status_code == 201, response.text[:300]
    reply = response.json()["assistant_reply"]
    assert reply
    assert "Orbsurv answer" not in reply
    for word in LEAKS:
        assert word not in response.text
    stack.proxies["ai"].set_mode("pass")

    def model_answers() -> bool | None:
        answered = chat(stack.url, auth)
        if answered.status_code == 201 and "Orbsurv answer" in answered.json()["assistant_reply"]:
            return True
        return None

    _, healed = until(model_answers, HEAL, "a reply from the model once it is back", 0.5)
    fault_times.record(row, healed=healed)


# --- clients that stall ------------------------------------------------------------------------


def test_stalled_clients(stack: Stack, fault_times: FaultTimes) -> None:
    """More clients than the database pool has connections each start an upload and stall
    mid-body: the others are still served within the bound, and each stalled one gets 408 (or
    a close) once the idle timeout has passed, so nothing waits for ever."""
    row = f"{stack.kind}/client/stalled upload"
    _, auth = sign_up(stack.url)
    boundary = "faultsboundary"
    body_start = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="name"\r\n\r\nStalled\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="description"\r\n\r\nx\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="s.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode() + b"\0" * 1024
    host = stack.url.removeprefix("http://")

    def head(bearer: dict[str, str]) -> bytes:
        return (
            f"POST {API}/projects HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"Authorization: {bearer['Authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body_start) + 4 * 1024 * 1024}\r\n\r\n"
        ).encode()

    # one user each, so a per-user limit on concurrent uploads is not what answers them
    heads = [head(sign_up(stack.url)[1]) for _ in range(6)]
    started = time.monotonic()
    stalled = [StalledClient(stack.url, one + body_start) for one in heads]
    try:
        other, took = timed(lambda: me(stack.url, auth))
        assert other.status_code == 200, other.text
        assert took < BOUND
        other_upload, took = timed(lambda: upload(stack.url, auth, payload(1024, row), "Other"))
        assert other_upload.status_code == 201, other_upload.text
        assert took < BOUND
        deadline = started + float(TIMEOUTS["UPLOAD_IDLE_TIMEOUT_SECONDS"]) + BOUND
        answers = [
            client.answer(timeout=max(0.1, deadline - time.monotonic())) for client in stalled
        ]
        fault_times.record(row, answer=time.monotonic() - started)  # nothing to heal
        for answer in answers:
            assert answer is not None, "a stalled upload was never answered or closed"
            if answer:
                assert answer.split(b" ", 2)[1] == b"408", answer[:200]
    finally:
        for client in stalled:
            client.close()


def test_stalled_headers(stack: Stack, fault_times: FaultTimes) -> None:
    """Many clients that send half a request head and stall do not stop the server from
    answering everyone else within the bound."""
    row = f"{stack.kind}/client/stalled headers"
    _, auth = sign_up(stack.url)
    host = stack.url.removeprefix("http://")
    started = time.monotonic()
    stalled = [
        StalledClient(stack.url, f"GET {API}/users/me HTTP/1.1\r\nHost: {host}\r\n".encode())
        for _ in range(32)
    ]
    try:
        other, took = timed(lambda: me(stack.url, auth))
        assert other.status_code == 200, other.text
        assert took < BOUND
        fault_times.record(row, answer=time.monotonic() - started)
    finally:
        for client in stalled:
            client.close()
