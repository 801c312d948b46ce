"""Which endpoints a stranger's record may make us contact (DESIGN D8).

An endpoint *you* configured is yours and is used as it is. An endpoint a
record names is a URL chosen by whoever published the record: it must not
point the loader at your machine, your network or your cloud's metadata
service, and must not travel in clear text. The core's network policy
(``[network]``: ``allow_http``, ``allow_private``, ``allow_hosts``) decides,
by the endpoint's text (scheme, IP literal, ``localhost``) and by the
addresses its host name resolves to.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from atdata_core.plugins import NetworkPolicy, get_config

__all__ = ["check_record_endpoint"]


def check_record_endpoint(endpoint: str, *, record: str, policy: NetworkPolicy | None = None) -> None:
    """Refuse an endpoint (``scheme://host[:port]``) named by ``record`` unless the network policy allows it.

    ``policy`` defaults to the one ``[network]`` configures. Raises
    :class:`~atdata_core.errors.NetworkPolicyError` (a ``StorageError``)
    saying why and which setting would allow it.
    """
    policy = policy if policy is not None else NetworkPolicy.from_config(get_config())
    what = f"{record}: endpoint"
    policy.check_url(f"{endpoint}/", what=what, schemes=("https", "http"))
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in _addresses(host, port):
        policy.check_address(address, host=host, port=port, what=what)


def _addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to; none when it does not (the request then fails on its own).

    Judging them here narrows, but does not close, the window in which a name
    could be re-pointed before boto3 connects.
    """
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in found})
