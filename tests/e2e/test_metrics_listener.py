"""``METRICS_PORT``: the real ``orbsurv serve`` serves the metrics on a listener of its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.live import clean_env, serving
from tests.services import free_port

TOKEN = "Xq3vT9pL2sR7wK4nB6yD1fH8jZ5cV0aEm8u"


def test_metrics_on_their_own_port_with_a_token(tmp_path: Path) -> None:
    """/metrics answered anyone on the API's port. With ``METRICS_PORT`` and ``METRICS_TOKEN``
    the API's /metrics is 404, and the listener answers the token holder with every worker's
    counts (the request made to the API shows there)."""
    port = free_port()
    env = clean_env(ENV="test", METRICS_PORT=str(port), METRICS_TOKEN=TOKEN)
    with serving(tmp_path, env) as server:
        assert httpx.get(f"{server.url}/api/v1/healthz", timeout=10).status_code == 200
        on_api = httpx.get(f"{server.url}/metrics", timeout=10)
        listener = f"http://127.0.0.1:{port}/metrics"
        anonymous = httpx.get(listener, timeout=10)
        deadline = time.monotonic() + 30
        while True:  # the worker's sample files are written as it answers
            answer = httpx.get(listener, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            if "/api/v1/healthz" in answer.text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert f"metrics on http://127.0.0.1:{port}/metrics" in server.log_text()
    assert on_api.status_code == 404
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "orbsurv_http" not in anonymous.text
    assert answer.status_code == 200
    assert "orbsurv_http_requests" in answer.text
    assert "/api/v1/healthz" in answer.text
