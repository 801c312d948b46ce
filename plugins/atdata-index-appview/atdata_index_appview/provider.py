"""The ``appview`` index provider: the core's lookups answered by a running AppView.

With ``[index] default = "appview"`` and ``[appview] url`` set, ``load()``,
discovery and ``atdata search`` ask the AppView, which knows every account it
follows, instead of one account's PDS at a time::

    [index]
    default = "appview"

    [appview]
    url = "https://appview.example.com"

When the AppView cannot be reached (refused, timing out, failing with a 5xx
after ``[appview] retries``), each call is answered by the core's ``pds``
index instead (``[appview] fallback``, on by default), and the AppView is not
asked again for ``[appview] retry_after`` seconds. An AppView that lacks a
method this provider uses (another federation's, answering 404 or 501 without
one of the lexicons' errors) stays in use; the calls it cannot answer go to
the PDS index. The PDS answers questions
about one account at a time: a search across the network then needs a
``repo``, and says so.

It follows the rules every index provider shares (they are the core's
:func:`~atdata_core.plugins.search_records`, :func:`select_schema` and
:func:`select_label`, applied by the AppView and checked again here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from atdata_core.errors import ConfigError, IdentityError, NetworkError, RecordNotFound, ValidationError, XrpcError
from atdata_core.plugins import (
    ENTRY_NSID,
    LABEL_NSID,
    AtUri,
    IndexedRecord,
    newest_first,
    search_records,
    select_label,
)

from atdata_index_appview.settings import AppViewSettings

__all__ = ["AppViewIndex"]

log = logging.getLogger("atdata_index_appview.provider")

T = TypeVar("T")

_NOT_FOUND = {"RecordNotFound", "EntryNotFound", "SchemaNotFound", "LabelNotFound", "HandleNotFound"}
_PAGE = 100
#: A query longer than the AppView's lexicon allows is filtered here instead.
_MAX_QUERY_BYTES = 1000


class AppViewIndex:
    """An :class:`~atdata_core.plugins.IndexProvider` over an AppView's XRPC API.

    ``settings`` are the ``[appview]`` settings (``url`` is required);
    ``client`` the toolkit ``Client`` that talks to it (default: an anonymous
    one with the core's ``[http]`` settings, ``[appview] retries`` and
    ``timeout``); ``fallback`` the provider asked when the AppView is down
    (default: the core's ``pds`` index).
    """

    def __init__(self, settings: AppViewSettings | None = None, *, client: Any = None, fallback: Any = None):
        self.settings = settings or AppViewSettings()
        if not self.settings.url:
            raise ConfigError(
                "the appview index needs the URL of an AppView: set [appview] url = \"https://...\" "
                "(or ATDATA_APPVIEW_URL)"
            )
        self.url = self.settings.url.rstrip("/")
        self._client = client
        self._fallback = fallback
        self._down_until = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AppViewIndex({self.url!r})"

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> Any:
        if self._client is None:
            from atdata_core.plugins import Client, get_config

            self._client = Client.anonymous(
                self.url, config=get_config(), retries=self.settings.retries, timeout=self.settings.timeout
            )
        return self._client

    @property
    def fallback(self) -> Any:
        if self._fallback is None:
            from atdata_core.plugins import index_provider

            self._fallback = index_provider("pds")
        return self._fallback

    def query(self, nsid: str, **params: Any) -> dict[str, Any]:
        """Call a query method of the AppView; its JSON answer. XRPC errors raise :class:`XrpcError`."""
        sent = {key: value for key, value in params.items() if value is not None and value != []}
        response = self.client.call(nsid, params=sent, pds_url=self.url)
        try:
            body = response.json()
        except ValueError:
            raise NetworkError(f"{nsid}: the AppView at {self.url} answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise NetworkError(f"{nsid}: the AppView at {self.url} answered {type(body).__name__}, not an object")
        return body

    def _ask(self, ask: Callable[[], T], fallback: Callable[[Any], T], what: str) -> T:
        """``ask()`` the AppView; when it cannot be reached, ``fallback(pds_index)`` if allowed."""
        if self.settings.fallback and time.monotonic() < self._down_until:
            return fallback(self.fallback)
        try:
            return ask()
        except XrpcError as err:
            if err.status in (404, 501) and not self._not_found(err) and self.settings.fallback:
                # An AppView without this method (another implementation, an older version): not an
                # outage, so it stays in use for what it does answer.
                log.info("the AppView at %s cannot answer %s (%s); %s from the accounts' PDSes",
                         self.url, err.method, err.error, what)
                return fallback(self.fallback)
            if err.status < 500:
                raise
            failure: NetworkError = err
        except NetworkError as err:
            failure = err
        if not self.settings.fallback:
            raise failure
        with self._lock:
            self._down_until = time.monotonic() + self.settings.retry_after
        log.warning("the AppView at %s cannot be reached (%s); %s from the accounts' PDSes", self.url, failure, what)
        return fallback(self.fallback)

    @staticmethod
    def _not_found(err: XrpcError) -> bool:
        return err.error in _NOT_FOUND

    @staticmethod
    def _record(item: Any) -> IndexedRecord:
        if not isinstance(item, dict) or not isinstance(item.get("uri"), str) or not isinstance(item.get("value"), dict):
            raise NetworkError("the AppView answered a record without a uri and a value")
        cid = item.get("cid")
        return IndexedRecord(uri=item["uri"], value=item["value"], cid=cid if isinstance(cid, str) and cid else None)

    # ------------------------------------------------------------------ the IndexProvider contract

    def get_record(self, uri: str) -> IndexedRecord:
        parsed = AtUri.parse(uri)
        if not parsed.collection or not parsed.rkey:
            raise ValidationError(f"{uri} names no record (at://did/collection/rkey)")

        def ask() -> IndexedRecord:
            try:
                return self._record(self.query("science.alt.dataset.getRecord", uri=str(uri)))
            except XrpcError as err:
                if self._not_found(err):
                    raise RecordNotFound(f"no record at {uri} ({err.message or err.error})") from err
                raise

        return self._ask(ask, lambda pds: pds.get_record(uri), f"reading {uri}")

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        query: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[IndexedRecord]:
        def ask() -> list[IndexedRecord]:
            sent_query = query if query and len(query.encode("utf-8")) <= _MAX_QUERY_BYTES else None
            found: list[IndexedRecord] = []
            cursor = None
            while limit is None or len(found) < limit:
                page = self.query(
                    "science.alt.dataset.listRecords",
                    collection=collection,
                    repo=_identifier(repo),
                    q=sent_query,
                    tags=list(dict.fromkeys(tags)) or None,
                    limit=_PAGE if limit is None else max(1, min(_PAGE, limit - len(found))),
                    cursor=cursor,
                )
                records = page.get("records")
                if not isinstance(records, list):
                    raise NetworkError("the AppView answered listRecords without records")
                found.extend(search_records([self._record(item) for item in records], query=query, tags=tags))
                cursor = page.get("cursor")
                if not cursor or not records:
                    break
            found = newest_first(found)
            return found[:limit] if limit is not None else found

        def pds(index: Any) -> list[IndexedRecord]:
            return index.list_records(collection, repo=repo, query=query, tags=tags, limit=limit)

        return self._ask(ask, pds, f"listing {collection}")

    def resolve_schema(self, repo: str, schema_id: str, version: str | None = None) -> IndexedRecord:
        def ask() -> IndexedRecord:
            try:
                body = self.query(
                    "science.alt.dataset.resolveSchema", handle=_identifier(repo), schemaId=schema_id, version=version
                )
            except XrpcError as err:
                if self._not_found(err):
                    raise RecordNotFound(err.message or f"{repo} has no schema {schema_id}") from err
                raise
            return self._record({"uri": body.get("uri"), "cid": body.get("cid"), "value": body.get("record")})

        return self._ask(ask, lambda pds: pds.resolve_schema(repo, schema_id, version), f"resolving {schema_id}")

    def resolve_label(self, repo: str, name: str, version: str | None = None) -> IndexedRecord:
        def ask() -> IndexedRecord:
            labels = self.list_records_of(LABEL_NSID, repo, name)
            return select_label(labels, repo, name, version)

        return self._ask(ask, lambda pds: pds.resolve_label(repo, name, version), f"resolving the label {name}")

    def list_records_of(self, collection: str, repo: str, query: str) -> list[IndexedRecord]:
        """Every record of ``collection`` in ``repo`` whose name or description contains ``query``, from the AppView."""
        found: list[IndexedRecord] = []
        cursor = None
        sent_query = query if len(query.encode("utf-8")) <= _MAX_QUERY_BYTES else None
        while True:
            page = self.query(
                "science.alt.dataset.listRecords", collection=collection, repo=_identifier(repo), q=sent_query,
                limit=_PAGE, cursor=cursor,
            )
            records = page.get("records")
            if not isinstance(records, list):
                raise NetworkError("the AppView answered listRecords without records")
            found.extend(self._record(item) for item in records)
            cursor = page.get("cursor")
            if not cursor or not records:
                return found

    def resolve_repo(self, handle_or_did: str) -> str:
        text = _identifier(handle_or_did) or ""
        if text.startswith("did:"):
            return text
        if not text:
            raise IdentityError("an empty handle names no account")

        def ask() -> str:
            try:
                did = self.query("com.atproto.identity.resolveHandle", handle=text).get("did")
            except XrpcError as err:
                if self._not_found(err) or err.status == 400:
                    # The AppView has indexed nothing of that handle: ask the network.
                    return self.fallback.resolve_repo(text)
                raise
            if not isinstance(did, str) or not did.startswith("did:"):
                raise NetworkError(f"the AppView resolved {text} to something that is not a DID")
            return did

        return self._ask(ask, lambda pds: pds.resolve_repo(text), f"resolving {text}")

    # ------------------------------------------------------------------ beyond the contract

    def search(
        self,
        text: str = "",
        *,
        tags: Sequence[str] = (),
        repo: str | None = None,
        schema_ref: str | None = None,
        limit: int = 25,
    ) -> list[IndexedRecord]:
        """Dataset entries across the network, best match first (the AppView's ranked ``searchDatasets``).

        Falls back to the PDS index (one ``repo``, matched by name or
        description, newest first) when the AppView cannot be reached.
        """

        def ask() -> list[IndexedRecord]:
            found: list[IndexedRecord] = []
            cursor = None
            while len(found) < limit:
                page = self.query(
                    "science.alt.dataset.searchDatasets", q=text, tags=list(dict.fromkeys(tags)) or None,
                    repo=_identifier(repo), schemaRef=schema_ref, limit=max(1, min(_PAGE, limit - len(found))), cursor=cursor,
                )
                entries = page.get("entries")
                if not isinstance(entries, list):
                    raise NetworkError("the AppView answered searchDatasets without entries")
                for view in entries:
                    if isinstance(view, dict) and isinstance(view.get("uri"), str):
                        value = {key: item for key, item in view.items() if key not in ("uri", "cid", "did", "indexedAt")}
                        found.append(IndexedRecord(uri=view["uri"], value=value, cid=view.get("cid") or None))
                cursor = page.get("cursor")
                if not cursor or not entries:
                    break
            return found[:limit]

        def pds(index: Any) -> list[IndexedRecord]:
            if not repo:
                raise NetworkError(
                    f"the AppView at {self.url} cannot answer the search, and without it datasets are read from one "
                    "account's PDS at a time: give the account to search (repo=, --repo on the command line)"
                )
            found = index.list_records(ENTRY_NSID, repo=repo, query=text or None, tags=tags, limit=None)
            if schema_ref:
                found = [record for record in found if record.value.get("schemaRef") == schema_ref]
            return found[:limit]

        return self._ask(ask, pds, "searching")


def _identifier(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().removeprefix("@")
