"""The client's address: the socket peer, or, behind trusted proxies, from X-Forwarded-For.

Only proxies named in ``SSE_TRUSTED_PROXIES`` (addresses or networks) may speak for a client:
the address taken is the rightmost one in ``X-Forwarded-For`` that is not itself a trusted
proxy, so a client cannot forge its address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """Networks from strings such as ``10.0.0.0/8`` or ``127.0.0.1``."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(request: HTTPConnection, proxies: tuple[Network, ...]) -> str:
    """The address limits and bans apply to."""
    peer = request.client.host if request.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if _trusted(hop, proxies):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # garbage in the header: fall back to the proxy itself
    return peer
