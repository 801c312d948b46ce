"""Ingestion settings: which hosts to follow and how much to trust and spend."""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

__all__ = ["IngestSettings", "host_url", "subscribe_url"]


def host_url(url: str) -> str:
    """A host as the cursor key: ``http(s)://host[:port]`` with no path (a ``ws(s)://`` URL is
    turned into its ``http(s)://`` twin). Raises ValueError for anything else."""
    if not isinstance(url, str):
        raise ValueError(f"a host URL is a string, not {type(url).__name__}")
    parts = urlsplit(url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not a host URL like https://pds.example.com or wss://relay.example.com")
    path = parts.path.rstrip("/")
    if path and path != "/xrpc/com.atproto.sync.subscribeRepos":
        raise ValueError(f"{url!r}: give the host alone (no path)")
    return f"{scheme}://{parts.netloc.lower()}"


def subscribe_url(host: str, cursor: int | None) -> str:
    """The websocket URL of ``com.atproto.sync.subscribeRepos`` on ``host``, from ``cursor`` on."""
    base = host_url(host)
    scheme, rest = base.split("://", 1)
    url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/xrpc/com.atproto.sync.subscribeRepos"
    return url if cursor is None else f"{url}?cursor={int(cursor)}"


def _hosts(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    return tuple(host_url(item) for item in value)


def _positive(instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be above 0, got {value}")


@attrs.frozen
class IngestSettings:
    """How the AppView follows the network.

    ``subscribe``: the PDSes and relays whose ``subscribeRepos`` it follows
    (``https://pds.example.com``, ``wss://relay.example.com``). ``replay``: a
    host with no saved cursor is read from the oldest event it keeps instead of
    from now. ``max_frame_bytes``: a larger firehose frame is skipped (counted
    as ``oversized``). ``max_repo_bytes``: the largest repository ``getRepo``
    may return for a resync or backfill. ``identity_ttl``: seconds a repository's
    signing key and handle are trusted without asking again (an ``#identity``
    event refreshes them at once). ``resync_interval``: the least number of
    seconds between two resyncs of one repository, so that a host cannot make
    the AppView fetch a repository over and over. ``queue_size``: decoded
    events waiting for the writer, per process. ``lookup_timeout``: seconds a
    DID document, handle or repository may keep the firehose waiting (no answer
    within it, and the repository waits for a resync instead), when
    :func:`~atdata_index_appview.ingest.run_ingest` makes its own client.
    ``check_frames_apart``: each host's frames are decoded and checked (blocks
    against CIDs, operations against the signed tree, records against the
    lexicons) in a process of their own beside the one writing the index (see
    ``_checking``). Off by default: on two cores shared with the store's
    server it did not ingest faster at 100,000 entries, and commits arriving
    alone on PostgreSQL were sometimes seen a second or more late.
    """

    subscribe: tuple[str, ...] = attrs.field(default=(), converter=_hosts)
    replay: bool = False
    max_frame_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)
    max_repo_bytes: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    identity_ttl: float = attrs.field(default=3600.0, validator=_positive)
    resync_interval: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    queue_size: int = attrs.field(default=4096, validator=_positive)
    lookup_timeout: float = attrs.field(default=10.0, validator=_positive)
    check_frames_apart: bool = False

    @classmethod
    def of(cls, settings: object) -> IngestSettings:
        """These settings from another settings object holding some of the same fields (the
        plugin's ``[appview]`` settings); the fields it lacks keep their defaults."""
        if isinstance(settings, cls):
            return settings
        names = [field.name for field in attrs.fields(cls)]
        return cls(**{name: getattr(settings, name) for name in names if hasattr(settings, name)})
