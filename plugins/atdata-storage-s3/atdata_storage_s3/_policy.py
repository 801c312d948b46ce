"""Which endpoints a stranger's record may make us contact (DESIGN D8).

An endpoint *you* configured is yours and is used as it is. An endpoint a
record names is a URL chosen by whoever published the record: it must not
point the loader at your machine, your network or your cloud's metadata
service, and must not travel in clear text.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from atdata_core.errors import StorageError

__all__ = ["check_record_endpoint"]


def check_record_endpoint(endpoint: str, *, record: str) -> None:
    """Refuse an endpoint named by a record unless it is https and not a loopback, link-local or private host.

    ``endpoint`` is normalized (``scheme://host[:port]``); ``record`` says
    which record named it, for the message.
    """
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    advice = (
        f"To read it anyway, configure that endpoint for the bucket yourself "
        f"([s3.buckets.<bucket>] endpoint = \"{endpoint}\")"
    )
    if parts.scheme != "https":
        raise StorageError(f"{record} names the S3 endpoint {endpoint}, which is not https: refused. {advice}")
    if host == "localhost" or host.endswith(".localhost"):
        raise StorageError(f"{record} names the S3 endpoint {endpoint} on this machine: refused. {advice}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise StorageError(
            f"{record} names the S3 endpoint {endpoint}, a loopback, link-local or private address: refused. {advice}"
        )
