"""Per-client budgets count the address the trusted-proxy rule resolves, on the real server."""

from __future__ import annotations

import httpx

EVENT = {"event_type": "page_view", "action": "view", "page": "/"}


def test_the_analytics_budget_is_per_forwarded_client(proxied_server: str) -> None:
    """Behind a trusted proxy every client arrives from the proxy's address: a budget keyed on
    the peer would throttle them all together. Each forwarded client has its own budget, and a
    spent one stays spent whatever else the client puts in its body."""
    url = f"{proxied_server}/api/v1/analytics/events"
    first = {"X-Forwarded-For": "203.0.113.1"}
    with httpx.Client(timeout=30) as client:
        spent = [client.post(url, json=EVENT, headers=first).status_code for _ in range(30)]
        refused = client.post(url, json={**EVENT, "client_id": "fresh"}, headers=first)
        other = client.post(url, json=EVENT, headers={"X-Forwarded-For": "203.0.113.2"})
    assert spent == [202] * 30
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert other.status_code == 202, other.text
