"""The ATProto client: an account's session on its PDS, repository records and blobs.

Writes go to the logged-in account's PDS. Reads of another account go to
*that* account's PDS, found from its DID document, never to a fixed host, and
carry no credentials (a token is only ever sent to the PDS that issued it).
That PDS endpoint is the account owner's choice, so it is held to the network
policy (``[network]``, :mod:`atdata_core._netpolicy`): a public ``https``
host unless the configuration allows it. Listings stop at ``[atproto]
max_pages`` pages and when a PDS hands back a cursor it already gave.
Records are checked before they are sent (:mod:`atdata_core.atproto._encoding`);
batches are cut to the PDS's limits (:mod:`atdata_core.atproto._writes`);
blobs are measured and typed first (:mod:`atdata_core.atproto._blobs`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import attrs

from atdata_core._aturi import AtUri
from atdata_core._netpolicy import NetworkPolicy
from atdata_core._retry import RetryPolicy
from atdata_core.atproto._blobs import BlobStream, BlobUpload, blob_cid
from atdata_core.atproto._encoding import dumps, encode_record
from atdata_core.atproto._identity import Identity, IdentityResolver, is_did
from atdata_core.atproto._session import Session, SessionStore, create_session, refresh_session
from atdata_core.atproto._writes import MAX_REQUEST_BYTES, Create, Delete, Update, WriteResult, split_batches, write_op
from atdata_core.atproto._xrpc import Transport, host_of
from atdata_core.config import AtprotoSettings, Config, HttpSettings, NetworkSettings
from atdata_core.errors import (
    AuthError,
    NetworkError,
    RecordError,
    RecordNotFound,
    ServiceUnavailable,
    StorageError,
    StorageNotFound,
    XrpcError,
)

__all__ = ["Client", "MAX_PAGE_SIZE"]

#: ``listRecords`` answers at most this many records per page.
MAX_PAGE_SIZE = 100

log = logging.getLogger("atdata_core.atproto")

_TOKEN_ERRORS = {"ExpiredToken", "InvalidToken"}
_NOT_FOUND_ERRORS = {"RecordNotFound", "RepoNotFound", "NotFound"}


class Client:
    """An ATProto client: an account's session on its PDS, or anonymous reads.

    Make one with :meth:`login`, :meth:`from_saved` or :meth:`anonymous`::

        client = Client.login("alice.bsky.social", "app-password")
        uri, cid = client.create_record("science.alt.dataset.label", label)
        for item in Client.anonymous().list_records("did:plc:...", "science.alt.dataset.entry"):
            print(item["uri"], item["value"]["name"])

    Settings: ``config`` (default: :func:`~atdata_core.config.load_config`) is
    read into :class:`~atdata_core.config.HttpSettings`,
    :class:`~atdata_core.config.AtprotoSettings` and
    :class:`~atdata_core.config.NetworkSettings`, or give those as ``http=``,
    ``atproto=`` and ``network=``. Keyword options override single values: ``plc_url``,
    ``resolvers``, ``blob_limit`` (used when the PDS advertises none),
    ``retries``, ``backoff``, ``timeout``, ``max_rate_wait``, ``deadline``.
    """

    def __init__(
        self,
        pds_url: str | None = None,
        *,
        session: Session | None = None,
        store: SessionStore | None = None,
        config: Config | None = None,
        http: HttpSettings | None = None,
        atproto: AtprotoSettings | None = None,
        network: NetworkSettings | None = None,
        plc_url: str | None = None,
        resolvers: list[str] | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        max_rate_wait: float | None = None,
        deadline: float | None = None,
        blob_limit: int | None = None,
    ):
        if config is None and (http is None or atproto is None or network is None):
            from atdata_core.config import load_config

            config = load_config()
        tuning = _given(retries=retries, backoff=backoff, timeout=timeout, max_rate_wait=max_rate_wait, deadline=deadline)
        if http is None:
            policy = RetryPolicy.from_config(config, **tuning)
        else:
            policy = attrs.evolve(RetryPolicy.of(http), **tuning)
        overrides = _given(plc_url=plc_url, resolvers=resolvers, blob_limit=blob_limit)
        if atproto is None:
            atproto = AtprotoSettings.from_config(config, **overrides)
        elif overrides:
            atproto = attrs.evolve(atproto, **overrides)
        self.settings = atproto
        self.network = NetworkPolicy.of(network if network is not None else NetworkSettings.from_config(config))
        self.transport = Transport(policy)
        self.identity = IdentityResolver(settings=atproto, transport=self.transport, network=self.network)
        self._session = session
        self._store = store
        self.pds_url = (session.pds_url if session else pds_url or "").rstrip("/") or None
        self._server_descriptions: dict[str, dict] = {}

    # ------------------------------------------------------------------ making clients

    @classmethod
    def login(
        cls,
        identifier: str,
        password: str,
        *,
        pds_url: str | None = None,
        save: bool = True,
        store: SessionStore | None = None,
        **options: Any,
    ) -> Client:
        """Log in with a handle or DID and a password (or app password).

        The PDS is found from the account's DID document unless ``pds_url`` is
        given. With ``save`` the session is written to the user's config folder
        (see :mod:`atdata_core.atproto._session`) and becomes the default account.
        """
        client = cls(pds_url, **options)
        identifier = identifier.strip()
        expected_did = None
        if not identifier.startswith("did:"):
            identifier = identifier.lstrip("@").lower()
        if pds_url is None:
            ident = client.identity.resolve_identity(identifier)
            if not ident.pds_url:
                raise AuthError(f"the DID document of {ident.did} names no PDS to log in to; pass pds_url=")
            # Your password goes there: only to a PDS the network policy allows (or one you name).
            pds_url = client.identity.checked_pds(ident.did, ident.pds_url)
            expected_did = ident.did
        session = create_session(client.transport, pds_url, identifier, password)
        if expected_did and session.did != expected_did:
            raise AuthError(
                f"{host_of(pds_url)} logged in {session.did}, but {identifier} resolves to {expected_did}; refusing"
            )
        if save:
            store = store or SessionStore()
            store.save(session)
        client._session = session
        client._store = store if save else None
        client.pds_url = session.pds_url
        return client

    @classmethod
    def from_saved(
        cls, handle_or_did: str | None = None, *, store: SessionStore | None = None, **options: Any
    ) -> Client:
        """A client for a saved session (the default account when none is named); no password needed."""
        store = store or SessionStore()
        return cls(session=store.load(handle_or_did), store=store, **options)

    @classmethod
    def anonymous(cls, pds_url: str | None = None, **options: Any) -> Client:
        """A read-only client without an account (public records and blobs, describeServer)."""
        return cls(pds_url, **options)

    # ------------------------------------------------------------------ who

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def did(self) -> str | None:
        return self._session.did if self._session else None

    @property
    def handle(self) -> str | None:
        return self._session.handle if self._session else None

    @property
    def logged_in(self) -> bool:
        return self._session is not None

    def __repr__(self) -> str:
        who = f"{self.handle or self.did}" if self._session else "anonymous"
        return f"<Client {who} on {self.pds_url or 'no PDS'}>"

    def logout(self) -> None:
        """End the session on the PDS (best effort) and delete its saved file."""
        if self._session is None:
            return
        session = self._session
        try:
            self.transport.xrpc(
                session.pds_url, "com.atproto.server.deleteSession", procedure=True, token=session.refresh_jwt
            )
        except NetworkError:
            pass  # a PDS that is down must not keep the tokens on disk
        (self._store or SessionStore()).delete(session.did)
        self._session = None

    def resolve(self, handle_or_did: str) -> Identity:
        """Resolve an account; a handle is also asked of this client's PDS."""
        return self.identity.resolve_identity(handle_or_did, pds_url=self.pds_url)

    # ------------------------------------------------------------------ transport

    def call(
        self,
        nsid: str,
        *,
        procedure: bool = False,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        content_type: str | None = None,
        auth: bool = False,
        pds_url: str | None = None,
        stream: bool = False,
        network: NetworkPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        """Call an XRPC method on a PDS (this client's by default); the response.

        With ``auth`` the access token is sent, and an ``ExpiredToken`` /
        ``InvalidToken`` answer refreshes the session (saving it again) and
        retries once. ``network``: ``pds_url`` came from someone else's DID
        document; it, its redirects and its connections must pass this policy.
        ``headers`` are sent as well.
        """
        base = pds_url or self.pds_url
        if not base:
            raise AuthError(f"{nsid}: this client has no PDS; log in or pass pds_url=")
        token = None
        if auth:
            token = self._require_session(nsid).access_jwt
        start = data.tell() if auth and hasattr(data, "seek") and hasattr(data, "tell") else None
        kwargs = dict(
            procedure=procedure, params=params, json_body=json_body, data=data,
            content_type=content_type, stream=stream, network=network, headers=headers,
        )
        try:
            return self.transport.xrpc(base, nsid, token=token, **kwargs)
        except XrpcError as err:
            if not (auth and err.status in (400, 401) and err.error in _TOKEN_ERRORS):
                raise
        self._refresh()
        if start is not None:
            data.seek(start)
        return self.transport.xrpc(base, nsid, token=self._session.access_jwt, **kwargs)

    def _require_session(self, what: str) -> Session:
        if self._session is None:
            raise AuthError(f"{what} needs a logged-in account; this client is anonymous (log in first)")
        return self._session

    def _refresh(self) -> None:
        session = refresh_session(self.transport, self._require_session("refreshSession"))
        self._session = session
        if self._store is not None:
            self._store.save(session, make_default=self._store.default_did() in (None, session.did))

    def _pds_for(self, repo: str) -> tuple[str, NetworkPolicy | None]:
        """The PDS holding ``repo`` (a DID or handle), and the policy its connections answer to.

        Your own session's PDS is yours; another account's comes from its DID
        document, checked by the network policy (:meth:`IdentityResolver.pds_of`).
        """
        if self._session is not None and repo in (self._session.did, self._session.handle):
            return self._session.pds_url, None
        return self.identity.pds_of(repo, pds_url=self.pds_url), self.network

    def _repo_did(self, repo: str) -> str:
        if is_did(repo):
            return repo
        return self.identity.resolve_handle(repo, pds_url=self.pds_url)

    # ------------------------------------------------------------------ server

    def describe_server(self, pds_url: str | None = None) -> dict[str, Any]:
        """``com.atproto.server.describeServer`` of a PDS (this client's by default)."""
        base = (pds_url or self.pds_url or "").rstrip("/")
        if base not in self._server_descriptions:
            self._server_descriptions[base] = self.call("com.atproto.server.describeServer", pds_url=base).json()
        return self._server_descriptions[base]

    def blob_limit(self) -> int:
        """The largest blob this client's PDS takes: its advertised ``blobUploadLimit``, else the configured default."""
        advertised = self.describe_server().get("blobUploadLimit")
        if isinstance(advertised, int) and not isinstance(advertised, bool) and advertised > 0:
            return advertised
        return self.settings.blob_limit

    # ------------------------------------------------------------------ records

    def create_record(
        self, collection: str, record: Any, rkey: str | None = None, *, validate: bool = True
    ) -> tuple[str, str]:
        """Create a record in this account's repository; ``(uri, cid)``."""
        wire = encode_record(record, collection, validate=validate)
        session = self._require_session("createRecord")
        body = {"repo": session.did, "collection": collection, "record": wire}
        if rkey is not None:
            body["rkey"] = rkey
        out = self._write("com.atproto.repo.createRecord", body)
        return out["uri"], out["cid"]

    def put_record(
        self, collection: str, rkey: str, record: Any, swap_record: str | None = None, *, validate: bool = True
    ) -> tuple[str, str]:
        """Create or replace the record at ``collection/rkey``; ``(uri, cid)``.

        ``swap_record`` (a CID) makes the write conditional on the current version.
        """
        wire = encode_record(record, collection, validate=validate)
        session = self._require_session("putRecord")
        body = {"repo": session.did, "collection": collection, "rkey": rkey, "record": wire}
        if swap_record is not None:
            body["swapRecord"] = swap_record
        out = self._write("com.atproto.repo.putRecord", body)
        return out["uri"], out["cid"]

    def delete_record(self, collection: str, rkey: str, swap_record: str | None = None) -> None:
        """Delete the record at ``collection/rkey`` of this account's repository."""
        session = self._require_session("deleteRecord")
        body = {"repo": session.did, "collection": collection, "rkey": rkey}
        if swap_record is not None:
            body["swapRecord"] = swap_record
        self._write("com.atproto.repo.deleteRecord", body)

    def _write(self, nsid: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = dumps(body)
        if len(payload) > MAX_REQUEST_BYTES:
            raise RecordError(
                f"{nsid}: the request is {len(payload):,} bytes of JSON; a PDS accepts at most "
                f"{MAX_REQUEST_BYTES:,} bytes per request"
            )
        response = self.call(nsid, procedure=True, data=payload, content_type="application/json", auth=True)
        try:
            return response.json()
        except ValueError:
            return {}

    def get_record(self, repo: str, collection: str, rkey: str, cid: str | None = None) -> dict[str, Any]:
        """``{"uri", "cid", "value"}`` of a record, read from the repository's own PDS.

        Raises :class:`~atdata_core.errors.RecordNotFound` when there is none.
        """
        pds_url, network = self._pds_for(repo)
        try:
            response = self.call(
                "com.atproto.repo.getRecord",
                params={"repo": repo, "collection": collection, "rkey": rkey, "cid": cid},
                pds_url=pds_url,
                network=network,
            )
        except XrpcError as err:
            if err.error in _NOT_FOUND_ERRORS or (err.status == 400 and "not found" in err.message.lower()):
                raise RecordNotFound(
                    f"no record at at://{repo}/{collection}/{rkey} ({err.error}: {err.message or 'no message'})"
                ) from err
            raise
        return response.json()

    def get_record_at(self, uri: str) -> dict[str, Any]:
        """:meth:`get_record` for an ``at://`` URI."""
        parsed = AtUri.parse(uri)
        return self.get_record(parsed.authority, parsed.collection, parsed.rkey)

    def list_records(
        self,
        repo: str,
        collection: str,
        *,
        limit: int | None = None,
        reverse: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every record of a collection (``{"uri", "cid", "value"}``), page after page.

        ``limit`` caps how many are yielded (all when None); ``reverse`` lists
        oldest first. Pages are fetched lazily, as the iteration needs them.

        A PDS decides where a listing ends, and a broken or hostile one may
        never say so: the listing stops, with a warning through the
        ``atdata_core.atproto`` logger, when it hands back a cursor it already
        gave, and after ``[atproto] max_pages`` pages. An answer that is not a
        listing raises :class:`~atdata_core.errors.ServiceUnavailable`.
        """
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        pds_url, network = self._pds_for(repo)
        max_pages = self.settings.max_pages
        cursor = None
        seen: set[str] = set()
        given = 0
        pages = 0
        while limit is None or given < limit:
            if pages >= max_pages:
                log.warning(
                    "listing %s of %s stopped after %d pages ([atproto] max_pages); %s may hold more, or may "
                    "never end", collection, repo, pages, host_of(pds_url),
                )
                return
            want = page_size if limit is None else min(page_size, limit - given)
            response = self.call(
                "com.atproto.repo.listRecords",
                params={"repo": repo, "collection": collection, "limit": want, "cursor": cursor, "reverse": reverse or None},
                pds_url=pds_url,
                network=network,
            )
            pages += 1
            try:
                body = response.json()
            except ValueError:
                body = None
            records = body.get("records") if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise ServiceUnavailable(
                    f"{host_of(pds_url)} answered com.atproto.repo.listRecords for {repo} {collection} with "
                    "something that is not a listing (no records list)"
                )
            for item in records:
                if not isinstance(item, dict):
                    log.warning("listing %s of %s: skipped an entry that is not a record: %.100r", collection, repo, item)
                    continue
                yield item
                given += 1
                if limit is not None and given >= limit:
                    return
            cursor = body.get("cursor")
            if not isinstance(cursor, str) or not cursor or not records:
                return
            if cursor in seen:
                log.warning(
                    "listing %s of %s stopped: %s handed back the cursor %.80r a second time, so the listing "
                    "would never end", collection, repo, host_of(pds_url), cursor,
                )
                return
            seen.add(cursor)

    def apply_writes(self, writes: Iterable[Create | Update | Delete | Mapping[str, Any]], *, validate: bool = True) -> list[WriteResult]:
        """Apply many writes, at most 200 (and 1,000,000 bytes) per ``applyWrites`` call.

        Every record is checked before the first call is made. Each call is atomic
        on the PDS; if a later call fails, the error carries ``applied`` (the
        results of the calls that succeeded) and a note saying how many writes landed.
        """
        session = self._require_session("applyWrites")
        ops = [write_op(write, i, validate) for i, write in enumerate(writes)]
        batches = split_batches(ops, session.did)

        results: list[WriteResult] = []
        for batch in batches:
            body = {"repo": session.did, "writes": batch}
            try:
                answer = self._write("com.atproto.repo.applyWrites", body)
            except Exception as err:
                if results:
                    err.add_note(
                        f"{len(results)} of {len(ops)} writes were applied before this call failed; "
                        f"the error's .applied lists them"
                    )
                err.applied = list(results)  # type: ignore[attr-defined]
                raise
            returned = answer.get("results") or []
            for i, op in enumerate(batch):
                action = op["$type"].rsplit("#", 1)[1]
                got = returned[i] if i < len(returned) and isinstance(returned[i], dict) else {}
                if action == "delete":
                    results.append(WriteResult("delete"))
                else:
                    results.append(WriteResult(action, got.get("uri"), got.get("cid")))
        return results

    # ------------------------------------------------------------------ blobs

    def upload_blob(self, data_or_path: bytes | str | os.PathLike[str] | BinaryIO, mime_type: str | None = None) -> dict[str, Any]:
        """Upload a blob to this account's PDS; the blob ref to put in a record.

        ``mime_type`` is sent as the Content-Type and recorded with the blob; it
        is guessed from a path's extension when not given, else
        ``application/octet-stream``. A blob over the PDS's upload limit is refused
        before it is sent.
        """
        self._require_session("uploadBlob")
        upload = BlobUpload.prepare(data_or_path, mime_type)
        limit = self.blob_limit()
        if upload.size > limit:
            what = upload.path or "the blob"
            raise StorageError(
                f"{what} is {upload.size:,} bytes; the PDS at {host_of(self.pds_url or '')} accepts blobs of at most "
                f"{limit:,} bytes. Split it, or store it elsewhere (HTTP or S3 storage)"
            )
        opened = open(upload.path, "rb") if upload.path is not None else None
        try:
            response = self.call(
                "com.atproto.repo.uploadBlob", procedure=True, data=opened or upload.body,
                content_type=upload.mime_type, auth=True,
            )
        finally:
            if opened is not None:
                opened.close()
        blob = response.json().get("blob")
        if not isinstance(blob, dict):
            raise StorageError(f"uploadBlob on {host_of(self.pds_url or '')} answered without a blob ref")
        return blob

    def get_blob(self, did: str, cid: str) -> BlobStream:
        """Stream a blob from the PDS of the account ``did`` (``com.atproto.sync.getBlob``)."""
        cid = blob_cid(cid)  # a CID, or a blob ref
        did = self._repo_did(did)
        pds_url, network = self._pds_for(did)
        try:
            # identity: the blob's own bytes with their length. A PDS otherwise gzips tar shards
            # (random bytes, mostly), which costs ten times the transfer on loopback.
            response = self.call(
                "com.atproto.sync.getBlob", params={"did": did, "cid": cid}, pds_url=pds_url, stream=True,
                network=network, headers={"Accept-Encoding": "identity"},
            )
        except XrpcError as err:
            # The reference PDS answers a missing (or not yet referenced) blob with 400 "Blob not found".
            missing = err.status == 400 and "not found" in (err.message or "").lower()
            if err.error in ("BlobNotFound", "RepoNotFound") or err.status == 404 or missing:
                raise StorageNotFound(f"no blob {cid} in the repository of {did} ({err.error}: {err.message})") from err
            raise
        return BlobStream(response, did=did, cid=cid)


def _given(**options: Any) -> dict[str, Any]:
    """The options that were given (not None)."""
    return {key: value for key, value in options.items() if value is not None}
