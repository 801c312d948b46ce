"""``[appview]`` settings (``ATDATA_APPVIEW_<KEY>`` in the environment).

One section serves both sides of the plugin: the service (``atdata appview
serve``: where its index lives, what it listens on and follows) and the index
provider that queries a running AppView (``[index] default = "appview"``).

```toml
[appview]
url = "https://appview.example.com"            # the AppView the provider asks
store = "postgresql://appview@db.internal/appview"   # the service's index (default: a SQLite file)
subscribe = ["https://bsky.network"]            # relays or PDSes whose firehose the service follows
```
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

__all__ = ["AppViewSettings", "default_store_url"]


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ValueError(f"appview.{attribute.name} must be more than 0, not {value}")


def _non_negative(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"appview.{attribute.name} must be 0 or more, not {value}")


def _port(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"appview.{attribute.name} must be a TCP port (0-65535), not {value}")


def _http_url(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"appview.{attribute.name} must be an http(s) URL, not {value!r}")


def _store_url(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value:
        from atdata_index_appview.store import parse_store_url

        parse_store_url(value)  # raises ValueError naming what is accepted


@attrs.frozen
class AppViewSettings:
    """How the AppView service runs and how the ``appview`` index provider reaches one.

    Client side (the index provider, ``atdata search``):

    ``url``
        The AppView to query (``https://...``). Required to use the provider.
    ``fallback``
        When the AppView cannot be reached, answer from the accounts' own PDSes
        (the core's ``pds`` index: one account at a time, no search across
        the network) instead of failing.
    ``timeout``, ``retries``
        Seconds per request and retries after the first attempt, for requests
        to the AppView (kept short, so that falling back is quick).
    ``retry_after``
        Seconds during which an AppView that failed is not asked again (the
        fallback answers meanwhile).

    Service side (``atdata appview serve``, ``atdata appview backfill``):

    ``store``
        Where the index lives: ``sqlite:///relative/path.db``,
        ``sqlite:////absolute/path.db`` or a plain path (the embedded default:
        ``appview.db`` in the user data folder), or
        ``postgresql://user:password@host:port/database``.
    ``host``, ``port``
        The address the XRPC API listens on.
    ``did``
        The service's DID, as ``describeService`` reports it (default:
        ``did:web:`` of ``public_url``'s host, else of ``host``).
    ``public_url``
        The URL users reach the service at, when it sits behind a proxy.
    ``subscribe``
        Firehose hosts (relays or PDSes, ``https://`` or ``wss://``) to follow.
    ``replay``, ``max_frame_bytes``, ``max_repo_bytes``, ``identity_ttl``, ``resync_interval``, ``queue_size``,
    ``lookup_timeout``, ``check_frames_apart``
        How ingestion follows them: see
        :class:`~atdata_index_appview.ingest.IngestSettings`, which reads
        these fields (with the same defaults) and checks them.
    """

    url: str = attrs.field(default="", validator=_http_url)
    fallback: bool = True
    timeout: float = attrs.field(default=10.0, validator=_positive)
    retries: int = attrs.field(default=1, validator=_non_negative)
    retry_after: float = attrs.field(default=30.0, validator=_non_negative)

    store: str = attrs.field(default="", validator=_store_url)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=2590, validator=_port)
    did: str = ""
    public_url: str = attrs.field(default="", validator=_http_url)
    subscribe: list[str] = attrs.field(factory=list)
    replay: bool = False
    max_frame_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)
    max_repo_bytes: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    identity_ttl: float = attrs.field(default=3600.0, validator=_positive)
    resync_interval: float = attrs.field(default=60.0, validator=_non_negative)
    queue_size: int = attrs.field(default=4096, validator=_positive)
    lookup_timeout: float = attrs.field(default=10.0, validator=_positive)
    check_frames_apart: bool = False

    def store_url(self) -> str:
        """The store URL to open: ``store``, else the default SQLite file."""
        return self.store or default_store_url()

    def service_did(self) -> str:
        """The DID ``describeService`` reports."""
        if self.did:
            return self.did
        from urllib.parse import urlsplit

        host = urlsplit(self.public_url).netloc if self.public_url else f"{self.host}:{self.port}"
        return "did:web:" + host.replace(":", "%3A")


def default_store_url() -> str:
    """``appview.db`` in the user data folder (``$XDG_DATA_HOME/atdata``, else ``~/.local/share/atdata``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "atdata" / "appview.db")
