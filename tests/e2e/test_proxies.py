"""Client IPs through a trusted proxy: rate limits follow the real client, not the proxy."""

from __future__ import annotations

import httpx


def test_limits_follow_the_forwarded_client(proxied_server: str) -> None:
    with httpx.Client(base_url=proxied_server) as client:

        def submit(n: int, ip: str) -> int:
            answer = client.post(
                "/api/v1/waitlist",
                json={"email": f"p{n}-{ip}@example.com"},
                headers={"X-Forwarded-For": f"6.6.6.6, {ip}"},  # the left part is a spoof
            )
            return answer.status_code

        assert [submit(n, "203.0.113.1") for n in range(10)] == [201] * 10
        assert submit(10, "203.0.113.1") == 429
        assert submit(0, "203.0.113.2") == 201  # another client behind the same proxy
