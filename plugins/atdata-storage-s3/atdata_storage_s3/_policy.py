"""Which endpoints a stranger's record may make us contact (DESIGN D8).

An endpoint *you* configured is yours and is used as it is. An endpoint a
record names is a URL chosen by whoever published the record: it must not
point the loader at your machine, your network or your cloud's metadata
service, and must not travel in clear text.

The core's network policy (``[network]``: ``allow_http``, ``allow_private``,
``allow_hosts``) judges it when the core offers that policy to plugins as
``atdata_core.plugins.NetworkPolicy``; until then this module applies the
policy's defaults itself: https only, and no loopback, link-local or private
host, named or resolved.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import atdata_core.plugins as toolkit
from atdata_core.errors import StorageError

__all__ = ["check_record_endpoint"]


def _core_policy() -> Any:
    policy_class = getattr(toolkit, "NetworkPolicy", None)
    if policy_class is None:
        return None
    return policy_class.from_config(toolkit.get_config())


def check_record_endpoint(endpoint: str, *, record: str) -> None:
    """Refuse an endpoint (``scheme://host[:port]``) named by ``record`` unless the network policy allows it."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    policy = _core_policy()
    what = f"{record}: endpoint"
    if policy is not None:
        policy.check_url(f"{endpoint}/", what=what, schemes=("https", "http"))
        for address in _addresses(host, port):
            policy.check_address(address, host=host, port=port, what=what)
        return
    advice = (
        "Records may only name public https endpoints. If you trust it, configure that endpoint for the "
        f'bucket yourself ([s3.buckets.<bucket>] endpoint = "{endpoint}")'
    )
    if parts.scheme != "https":
        raise StorageError(f"{what} {endpoint} refused: it is not https. {advice}")
    if host == "localhost" or host.endswith(".localhost"):
        raise StorageError(f"{what} {endpoint} refused: it names this machine. {advice}")
    for address in _addresses(host, port):
        if not _public(address):
            shown = host if host == address else f"{host} resolves to {address},"
            raise StorageError(
                f"{what} {endpoint} refused: {shown} a loopback, link-local or private address. {advice}"
            )


def _addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` is (an IP literal) or resolves to; none when it does not resolve
    (the request will fail on its own then)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in found})


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
