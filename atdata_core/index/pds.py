"""The direct-from-PDS index: an account's records read straight from its own PDS.

No AppView, no local copy: each call resolves the account (a handle or DID,
through its DID document) and lists or fetches records on the PDS that holds
its repository. It answers questions about one account at a time::

    index = PdsIndex()
    index.list_records("science.alt.dataset.entry", repo="alice.example.com", tags=["vision"])
    index.resolve_schema("did:plc:abc...", "com.example.image")          # highest version

Searching every account needs an index of the whole network: the AppView
(``pip install atdata-index-appview``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Iterable

from atdata_core.errors import IdentityError, MissingImplementation, RecordNotFound, XrpcError
from atdata_core._aturi import AtUri
from atdata_core._nsids import LABEL_NSID, SCHEMA_NSID
from atdata_core.index._select import search_records, select_label, select_schema
from atdata_core.plugins import IndexedRecord

if TYPE_CHECKING:
    from atdata_core.config import AtprotoSettings, Config, HttpSettings

__all__ = ["PdsIndex"]

# XRPC errors meaning "nothing there" rather than "the server failed".
_ABSENT = {"RecordNotFound", "RepoNotFound", "RepoDeactivated", "RepoTakendown", "NotFound"}


class PdsIndex:
    """An :class:`~atdata_core.plugins.IndexProvider` over accounts' own PDSes.

    ``client`` does the reads (default: the saved session's client, else an
    anonymous one; either sends each read to the PDS of the account being read,
    and a logged-in client also asks its own PDS to resolve handles). ``repo`` is the account used
    when a call names none.
    """

    def __init__(
        self,
        *,
        client: Any = None,
        repo: str | None = None,
        http: HttpSettings | None = None,
        atproto: AtprotoSettings | None = None,
    ):
        self._client = client
        self._settings: dict[str, Any] = {"http": http, "atproto": atproto} if http or atproto else {}
        self.repo = repo

    @classmethod
    def from_config(cls, config: Config) -> PdsIndex:
        """The provider as the registry builds it: HTTP and ATProto settings read from ``config``."""
        from atdata_core.config import AtprotoSettings, HttpSettings

        return cls(http=HttpSettings.from_config(config), atproto=AtprotoSettings.from_config(config))

    def __repr__(self) -> str:
        return f"PdsIndex(repo={self.repo!r})" if self.repo else "PdsIndex()"

    @property
    def client(self) -> Any:
        if self._client is None:
            from atdata_core.atproto import Client
            from atdata_core.errors import AuthError

            # Reads need no account, but a saved session gives a PDS to ask about handles.
            try:
                self._client = Client.from_saved(**self._settings)
            except AuthError:
                self._client = Client.anonymous(**self._settings)
        return self._client

    # -- the IndexProvider contract

    def get_record(self, uri: str) -> IndexedRecord:
        parsed = AtUri.parse(uri)
        did = self.resolve_repo(parsed.authority)
        try:
            found = self.client.get_record(did, parsed.collection, parsed.rkey)
        except RecordNotFound:
            raise
        except IdentityError as err:
            # The account does not exist (or names no PDS): there is no such record.
            raise RecordNotFound(f"no record at {uri}: {err}") from err
        except XrpcError as err:
            if err.error in _ABSENT or err.status == 404:
                raise RecordNotFound(f"no record at {uri} ({err.error or err.status})") from err
            raise
        return _indexed(found)

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        query: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[IndexedRecord]:
        repo = repo or self.repo
        if repo is None:
            raise MissingImplementation(
                f"listing {collection} across every account needs an AppView: the pds index reads one account's "
                "repository at a time. Give repo= (a handle or DID), or install atdata-index-appview and set "
                "[index] default = \"appview\""
            )
        return search_records(self._records(collection, repo), query=query, tags=tags, limit=limit)

    def resolve_schema(self, repo: str, schema_id: str, version: str | None = None) -> IndexedRecord:
        if version is not None:
            # Our own key is deterministic: one read instead of a listing.
            from atdata_core.records import schema_rkey

            try:
                rkey = schema_rkey(schema_id, version)
            except Exception:  # noqa: BLE001 - an odd version is still looked for by name below
                rkey = None
            if rkey is not None:
                try:
                    return self.get_record(str(AtUri.record(self.resolve_repo(repo), SCHEMA_NSID, rkey)))
                except RecordNotFound:
                    pass
        return select_schema(self._records(SCHEMA_NSID, repo), repo, schema_id, version)

    def resolve_label(self, repo: str, name: str, version: str | None = None) -> IndexedRecord:
        return select_label(self._records(LABEL_NSID, repo), repo, name, version)

    # -- accounts

    def resolve_repo(self, handle_or_did: str) -> str:
        """The DID of an account named by handle or DID."""
        text = handle_or_did.strip().lstrip("@")
        if text.startswith("did:"):
            return text
        return self.client.resolve(text).did

    def _records(self, collection: str, repo: str) -> Iterable[IndexedRecord]:
        try:
            did = self.resolve_repo(repo)
        except IdentityError:
            if repo.strip().lstrip("@").startswith("did:"):
                return []  # a DID nobody registered holds no records
            raise
        try:
            return [_indexed(item) for item in self.client.list_records(did, collection)]
        except (RecordNotFound, IdentityError):
            return []
        except XrpcError as err:
            if err.error in _ABSENT:
                return []
            raise


def _indexed(item: Any) -> IndexedRecord:
    if isinstance(item, IndexedRecord):
        return item
    if isinstance(item, Mapping):
        return IndexedRecord(uri=str(item["uri"]), value=item["value"], cid=item.get("cid"))
    return IndexedRecord(uri=str(item.uri), value=item.value, cid=getattr(item, "cid", None))
