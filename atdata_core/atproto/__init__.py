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
Writes are validated, size-checked and JSON-encoded before anything is sent
(see :mod:`atdata_core.atproto._repo`); failures are retried and reported as
the errors in :mod:`atdata_core.errors` (see :mod:`atdata_core.atproto._xrpc`).

Configuration (TOML or ``ATDATA_*`` variables)::

    [plc]
    url = "https://plc.directory"      # ATDATA_PLC_URL
    [atproto]
    resolver = "https://bsky.social"   # servers asked to resolve handles (optional)
    blob_limit = 5242880               # when a PDS advertises no blobUploadLimit
    identity_ttl = 60                  # seconds DID documents and handles are cached
    [http]
    retries = 5                        # retries after the first attempt
    backoff = 0.5                      # first backoff sleep, doubling
    timeout = 30                       # seconds per request
    max_rate_wait = 60                 # longest wait for a 429's reset time
"""

from __future__ import annotations

from typing import Any

from atdata_core.atproto._identity import (
    DidDocument,
    Identity,
    IdentityResolver,
    clear_identity_cache,
    is_did,
    normalize_handle,
)
from atdata_core.atproto._repo import (
    MAX_APPLY_WRITES,
    MAX_RECORD_BYTES,
    BlobStream,
    Client,
    Create,
    Delete,
    Update,
    WriteResult,
    encode_record,
    parse_at_uri,
)
from atdata_core.atproto._session import Session, SessionStore
from atdata_core.atproto._xrpc import RetryPolicy

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
    "parse_at_uri",
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
