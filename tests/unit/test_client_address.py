"""X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, Request

from orbsurv.adapters.http.client import ClientAddress
from orbsurv.domain.audit import budget_client


def request_from(peer: str, forwarded: str | None) -> Request[Any, Any, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": headers,
        "client": (peer, 1234),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "app": Litestar(),
        "state": {},
        "path_params": {},
    }
    return Request(scope)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "203.0.113.5", "198.51.100.1", "203.0.113.5"),  # nobody trusted: the peer
        (["10.0.0.0/8"], "203.0.113.5", "198.51.100.1", "203.0.113.5"),  # untrusted peer
        (["10.0.0.0/8"], "10.1.2.3", "198.51.100.1", "198.51.100.1"),
        (
            ["10.0.0.0/8"],
            "10.1.2.3",
            "6.6.6.6, 198.51.100.1, 10.9.9.9",
            "198.51.100.1",
        ),  # spoofed left part ignored
        (["10.0.0.0/8"], "10.1.2.3", "10.4.4.4", "10.1.2.3"),  # only proxies: the nearest one
        (["10.0.0.0/8"], "10.1.2.3", "not-an-ip", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", None, "10.1.2.3"),
        (["::1/128"], "::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_address(
    trusted: list[str], peer: str, forwarded: str | None, expected: str
) -> None:
    assert ClientAddress(trusted).of(request_from(peer, forwarded)) == expected


@pytest.mark.parametrize(
    ("ip", "client"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:5:6::1", "2001:db8:5:6::/64"),
        ("2001:db8:5:6:ffff:ffff:ffff:ffff", "2001:db8:5:6::/64"),
        ("2001:db8:5:7::1", "2001:db8:5:7::/64"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_a_per_ip_budget_counts_an_ipv6_host_by_its_64(ip: str | None, client: str) -> None:
    assert budget_client(ip) == client
