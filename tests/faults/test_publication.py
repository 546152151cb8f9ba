"""clamd down when the last tus byte arrives, through the real server: the stock tus clients
(tuspy, tus-js-client) never report success for an upload that is not published, and once
clamd answers again their retry publishes it. And a stored file lost from disk: a
problem+json from us, not the server's plain answer.

clamd sits behind a fault proxy that refuses connections, as a clamd that is down does, until
the test lets it through.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from tests.conftest import ClamdServer
from tests.e2e.test_package_uploads import (
    DEADLINE,
    UPLOADS,
    MiB,
    data_of,
    default_env,
    poll,
    sign_up,
    tus_js_client,
)
from tests.fault_proxy import FaultProxy
from tests.live import serving

pytestmark = pytest.mark.slow


@pytest.fixture
def gate(clamd_server: ClamdServer) -> Iterator[FaultProxy]:
    """clamd behind a proxy that starts refusing connections, as a clamd that is down does;
    ``set_mode("pass")`` brings it back."""
    with FaultProxy("127.0.0.1", clamd_server.port, mode="refuse") as gate:
        yield gate


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return default_env(tmp_path)


@pytest.fixture
def env(base_env: dict[str, str], gate: FaultProxy) -> dict[str, str]:
    return {
        **base_env,
        "MALWARE_SCANNER": "clamd",
        "CLAMD_ADDRESS": f"tcp://127.0.0.1:{gate.port}",
        "CLAMD_TIMEOUT_SECONDS": "10",
    }


def sessions(database: Path) -> list[tuple[str, int, int]]:
    """(state, offset, length) of every upload session."""
    with sqlite3.connect(database) as conn:
        return list(conn.execute('SELECT state, "offset", length FROM upload_sessions'))


def versions(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM package_versions")]


def test_tuspy_reports_no_success_until_published(
    tmp_path: Path, env: dict[str, str], gate: FaultProxy
) -> None:
    data = data_of(3 * MiB + 7, "tuspy-clamd-down")
    database = tmp_path / "orbsurv.db"
    meta = {"package_name": "gated-pkg", "version": "1.0.0", "filename": "g.bin"}
    with serving(tmp_path / "srv", env, DEADLINE) as server:
        auth = sign_up(server.url)
        client = tus.TusClient(f"{server.url}{UPLOADS}", headers=auth)
        uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=2 * MiB, metadata=meta)
        with pytest.raises(TusCommunicationError) as failed:  # clamd is down
            uploader.upload()
        assert failed.value.status_code == 503
        assert sessions(database) == [("finalizing", len(data), len(data))]
        assert versions(database) == []
        url = uploader.url
        assert url is not None
        head = httpx.head(url, headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=60)
        assert int(head.headers["upload-offset"]) == len(data) - 1

        # A resumed upload while clamd is still down: still no success.
        resumed = client.uploader(file_stream=io.BytesIO(data), chunk_size=2 * MiB, url=url)
        with pytest.raises(TusCommunicationError):
            resumed.upload()
        assert versions(database) == []

        gate.set_mode("pass")
        again = client.uploader(file_stream=io.BytesIO(data), chunk_size=2 * MiB, url=url)
        again.upload()  # sends the last byte again: published
        assert again.offset == len(data)
        status = httpx.get(url, headers=auth, timeout=60).json()
        assert status["status"] == "completed"
        assert status["sha256"] == hashlib.sha256(data).hexdigest()
        assert versions(database) == ["1.0.0"]
        got = httpx.get(
            f"{server.url}/api/v1/software-packages/{status['package_id']}/versions/"
            f"{status['version_id']}/download",
            headers=auth,
            timeout=60,
        )
        assert got.content == data


def test_tus_js_client_reports_no_success_until_published(
    tmp_path: Path, env: dict[str, str], gate: FaultProxy
) -> None:
    script = tus_js_client()
    data = data_of(2 * MiB + 11, "tus-js-clamd-down")
    source = tmp_path / "pkg.bin"
    source.write_bytes(data)
    database = tmp_path / "orbsurv.db"
    with serving(tmp_path / "srv", env, DEADLINE) as server:
        token = sign_up(server.url)["Authorization"].split(" ", 1)[1]

        def upload(version: str) -> subprocess.Popen[str]:
            meta = {"package_name": "js-gated", "version": version, "filename": "pkg.bin"}
            endpoint = f"{server.url}{UPLOADS}"
            return subprocess.Popen(
                ["node", str(script), endpoint, token, str(source), str(MiB), json.dumps(meta)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        # clamd down for the whole upload and every retry (retryDelays 0, 0.5, 1, 2 s): an
        # error, never success.
        down = upload("1.0.0")
        out, err = down.communicate(timeout=DEADLINE)
        assert down.returncode == 1, out
        assert '"url"' not in out
        assert "503" in err
        assert versions(database) == []
        assert sessions(database) == [("finalizing", len(data), len(data))]

        # clamd comes back while the client retries: its retry (HEAD one byte short, PATCH of
        # the last byte) publishes, and only then does it report success.
        back = upload("2.0.0")
        poll(
            lambda: ("finalizing", len(data), len(data)) in sessions(database)[1:],
            "the second upload failed to publish",
        )
        gate.set_mode("pass")
        out, err = back.communicate(timeout=DEADLINE)
        assert back.returncode == 0, err
        answer = json.loads(out.strip().splitlines()[-1])
        status = httpx.get(
            answer["url"], headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).json()
        assert status["status"] == "completed"
        assert status["sha256"] == hashlib.sha256(data).hexdigest()
        assert versions(database) == ["2.0.0"]


def test_a_lost_local_file_is_a_problem_not_the_servers_404(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    """Local storage handed whole files to the server (pathsend): a file gone from disk was the
    server's own plain-text 404 after a 200 had begun; it is our problem+json now."""
    with serving(tmp_path / "srv", base_env, DEADLINE) as server:
        auth = sign_up(server.url)
        created = httpx.post(
            f"{server.url}/api/v1/projects",
            headers=auth,
            data={"name": "Lost", "description": "x", "is_public": "false"},
            files={"file": ("lost.zip", b"lost bytes" * 100, "application/zip")},
            timeout=60,
        )
        assert created.status_code == 201, created.text
        path = f"{server.url}/api/v1/projects/{created.json()['id']}/download"
        assert httpx.get(path, headers=auth, timeout=60).content == b"lost bytes" * 100
        with sqlite3.connect(tmp_path / "orbsurv.db") as conn:
            [(key,)] = conn.execute("SELECT object_key FROM projects")
        (tmp_path / "uploads" / key).unlink()
        for method in ("GET", "HEAD"):
            got = httpx.request(method, path, headers=auth, timeout=60)
            assert got.status_code == 404
            assert got.headers["content-type"].startswith("application/problem+json")
            assert got.headers["x-request-id"]
            if method == "GET":
                assert got.json()["code"] == "object_missing"
                assert got.json()["request_id"] == got.headers["x-request-id"]
        assert "the stored object is missing" in server.log.read_text()
