"""The client's address, as lockouts and rate limits count it.

REMOTE_ADDR is the peer that opened the connection. Behind an ingress that peer is the proxy,
and the client is in X-Forwarded-For, which anyone can also send: it is believed only when the
peer is a proxy named in TRUSTED_PROXIES, and then read from the right, skipping further
trusted proxies, so an address the client wrote itself (on the left) is never taken.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    # The settings module has checked every entry at start-up.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(request) -> str:
    """The address of the client behind any trusted proxies (REMOTE_ADDR when none)."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = trusted_networks()
    peer = _parse(remote)
    if peer is None or not trusted:
        return remote
    client = peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [h for h in forwarded.split(",") if h.strip()]
    while any(client in net for net in trusted) and hops:
        hop = _parse(hops.pop())
        if hop is None:  # garbage from the client side: stop at the last proxy we trust
            break
        client = hop
    return str(client)
