"""A thin, fast ATProto client: sessions, repository records, blobs, identity.

::

    from atdata_core import atproto

    client = atproto.login("alice.bsky.social", "app-password")   # saved for next time
    uri, cid = client.create_record("science.alt.dataset.label", label)
    client = atproto.Client.from_saved()                          # later: no password
    for item in client.list_records("did:plc:...", "science.alt.dataset.entry"):
        ...
    ident = atproto.resolve_identity("alice.bsky.social")       # Identity(did, handle, pds_url)

Everything talks XRPC over ``requests`` (imported on the first request). Reads
of an account go to that account's own PDS, found from its DID document.
Writes are validated, size-checked and JSON-encoded before anything is sent;
failures are retried by the core's one retry policy (:class:`RetryPolicy`, the
``[http]`` settings, shared with HTTP storage) and reported as the errors in
:mod:`atdata_core.errors`. Handles resolve through DNS, the handle's
well-known file and resolver servers (:class:`IdentityResolver`).

The modules, one idea each: ``_xrpc`` (transport), ``_session`` (saved
logins), ``_identity`` (DIDs and handles), ``_encoding`` (records on the
wire), ``_writes`` (batches), ``_blobs`` (blob uploads and downloads),
``_client`` (the :class:`Client` that uses them).

Configuration (TOML or ``ATDATA_*`` variables), read into
:class:`~atdata_core.config.AtprotoSettings` and
:class:`~atdata_core.config.HttpSettings`::

    [plc]
    url = "https://plc.directory"      # ATDATA_PLC_URL
    [atproto]
    resolver = "https://bsky.social"   # servers asked to resolve handles (optional)
    nameservers = ["10.0.0.53"]        # DNS servers for handles (default: the system's)
    blob_limit = 5242880               # when a PDS advertises no blobUploadLimit
    identity_ttl = 60                  # seconds DID documents and handles are cached
    [http]
    retries = 5                        # retries after the first attempt
    backoff = 0.5                      # first backoff sleep, doubling
    timeout = 30                       # seconds per request
    max_rate_wait = 60                 # longest wait for a 429's reset time
    deadline = 120                     # no retry or wait may end later than this after the first attempt
    [network]
    allow_hosts = ["pds.lan:2583"]     # private hosts a DID document may name (did:web, PDS endpoints)
    allow_private = false              # true: any loopback/private/link-local address
    allow_http = false                 # true: plain http PDS endpoints and did:web hosts

While ``atdata sandbox up`` runs, the configuration points ``[plc] url`` at the
sandbox, resolves ``.test`` handles on its PDS and allows its two loopback
hosts, with no flags.
"""

from __future__ import annotations

from typing import Any

from atdata_core._retry import RetryPolicy
from atdata_core.atproto._blobs import BlobStream
from atdata_core.atproto._client import Client
from atdata_core.atproto._encoding import MAX_RECORD_BYTES, encode_record
from atdata_core.atproto._identity import (
    DidDocument,
    Identity,
    IdentityResolver,
    clear_identity_cache,
    is_did,
    normalize_handle,
)
from atdata_core.atproto._session import Session, SessionStore
from atdata_core.atproto._writes import MAX_APPLY_WRITES, Create, Delete, Update, WriteResult

__all__ = [
    "BlobStream",
    "Client",
    "Create",
    "Delete",
    "DidDocument",
    "Identity",
    "IdentityResolver",
    "MAX_APPLY_WRITES",
    "MAX_RECORD_BYTES",
    "RetryPolicy",
    "Session",
    "SessionStore",
    "Update",
    "WriteResult",
    "clear_identity_cache",
    "encode_record",
    "is_did",
    "login",
    "logout",
    "normalize_handle",
    "resolve_did",
    "resolve_handle",
    "resolve_identity",
]


def login(identifier: str, password: str, *, pds_url: str | None = None, **options: Any) -> Client:
    """Log in with a handle or DID and a password; the session is saved. See :meth:`Client.login`."""
    return Client.login(identifier, password, pds_url=pds_url, **options)


def logout(handle_or_did: str | None = None, *, store: SessionStore | None = None, **options: Any) -> bool:
    """End a saved session (the default account's when none is named); True if there was one."""
    from atdata_core.errors import AuthError

    store = store or SessionStore()
    try:
        client = Client.from_saved(handle_or_did, store=store, **options)
    except AuthError:
        return False
    client.logout()
    return True


def resolve_did(did: str, **options: Any) -> DidDocument:
    """The DID document of a ``did:plc`` or ``did:web`` DID (options: ``plc_url``, ``ttl``...)."""
    return IdentityResolver(**options).resolve_did(did)


def resolve_handle(handle: str, *, pds_url: str | None = None, **options: Any) -> str:
    """The DID of a handle, verified against the DID document (options: ``resolvers``, ``plc_url``...)."""
    return IdentityResolver(**options).resolve_handle(handle, pds_url=pds_url)


def resolve_identity(handle_or_did: str, *, pds_url: str | None = None, **options: Any) -> Identity:
    """``Identity(did, handle, pds_url)`` for a handle or a DID."""
    return IdentityResolver(**options).resolve_identity(handle_or_did, pds_url=pds_url)
