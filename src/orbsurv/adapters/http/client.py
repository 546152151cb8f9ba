"""Who is on the other end: the client IP (through trusted proxies only) and the request context."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection

from orbsurv.domain.audit import RequestContext

USER_AGENT_MAX = 512
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """``X-Forwarded-For`` is believed only when the peer is one of ``trusted`` networks; then
    the first address from the right that is not itself a trusted proxy is the client. Several
    header lines are one list in their order (RFC 9110 section 5.3): a proxy that appends a
    line of its own leaves the client's line first, and only the last hops are the proxies'."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted
        )
        # Peers are few (the proxies, or the clients themselves): each is judged once.
        self._peer_is_trusted = functools.lru_cache(maxsize=1024)(self._is_trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            return self._within(ipaddress.ip_address(address.strip()))
        except ValueError:
            return False

    def _within(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in network for network in self._trusted)

    def of(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
        peer = connection.client.host if connection.client else None
        if peer is None or not self._trusted or not self._peer_is_trusted(peer):
            return peer
        hops = ",".join(connection.headers.getall("x-forwarded-for", ())).split(",")
        for hop in reversed(hops):
            if not (hop := hop.strip()):
                continue
            try:
                ip = ipaddress.ip_address(hop)
            except ValueError:
                return peer  # garbage in the header: believe the proxy itself
            if not self._within(ip):
                return str(ip)
        return peer


def request_context(connection: ASGIConnection[Any, Any, Any, Any]) -> RequestContext:
    addresses: ClientAddress = connection.app.state.client_address
    agent = connection.headers.get("user-agent")
    return RequestContext(
        ip=addresses.of(connection),
        user_agent=agent[:USER_AGENT_MAX] if agent else None,
        request_id=connection.scope.get("state", {}).get("request_id"),
    )
