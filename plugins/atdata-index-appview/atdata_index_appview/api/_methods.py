"""The XRPC query methods, each a function of validated parameters to a JSON-able answer.

Parameter names and response shapes follow the federation's lexicons (and
what the other federation's published client sends and reads): a client of
either works against this AppView unchanged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from atdata_core.errors import RecordNotFound
from atdata_core.plugins import (
    ENTRY_NSID,
    LABEL_NSID,
    LENS_NSID,
    LENS_VERIFICATION_NSID,
    RECORD_NSIDS,
    SCHEMA_NSID,
    AtUri,
    select_label,
    select_schema,
)

from atdata_index_appview.api._views import RawJson, record_body, view
from atdata_index_appview.store import SqlStore, StoredRecord, decode_cursor, encode_cursor, search_words

__all__ = ["Methods", "XrpcFailure"]

log = logging.getLogger("atdata_index_appview.api")

_CID = re.compile(r"^[a-zA-Z0-9]{8,256}$")
#: getLensPath follows at most this many lenses out of one schema, and visits at most this many schemas.
_MAX_LENSES_PER_SCHEMA = 200
_MAX_SCHEMAS_VISITED = 5000


class XrpcFailure(Exception):
    """An answer in the XRPC error envelope: ``{"error": name, "message": text}`` with an HTTP status."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def bad_request(message: str) -> XrpcFailure:
    return XrpcFailure(400, "InvalidRequest", message)


def not_found(error: str, message: str) -> XrpcFailure:
    return XrpcFailure(404, error, message)


class _TtlCache:
    """A small map whose entries expire, for account lookups the network answers."""

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found and now - found[0] < self.ttl:
                return found[1]
        value = compute()
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (now, value)
        return value


class Methods:
    """The answers of one AppView: a store, the service's DID, and how to find an account's PDS.

    ``pds_of(did)`` returns the PDS URL of an account (from its DID
    document), or None; ``resolveBlobs`` needs it. Without one, blobs resolve
    to an error naming the missing PDS.
    """

    def __init__(self, store: SqlStore, *, service_did: str, pds_of: Callable[[str], str | None] | None = None):
        self.store = store
        self.service_did = service_did
        self._pds_of = pds_of
        self._pds_cache = _TtlCache(ttl=300.0)
        self.table: dict[str, Callable[[dict[str, Any]], Any]] = {
            "science.alt.dataset.searchDatasets": self.search_datasets,
            "science.alt.dataset.listEntries": self.list_entries,
            "science.alt.dataset.getEntry": self.get_entry,
            "science.alt.dataset.getEntries": self.get_entries,
            "science.alt.dataset.listSchemas": self.list_schemas,
            "science.alt.dataset.getSchema": self.get_schema,
            "science.alt.dataset.resolveSchema": self.resolve_schema,
            "science.alt.dataset.resolveLabel": self.resolve_label,
            "science.alt.dataset.resolveBlobs": self.resolve_blobs,
            "science.alt.dataset.listLenses": self.list_lenses,
            "science.alt.dataset.searchLenses": self.search_lenses,
            "science.alt.dataset.getLensPath": self.get_lens_path,
            "science.alt.dataset.describeService": self.describe_service,
            "science.alt.dataset.getEntryStats": self.get_entry_stats,
            "science.alt.dataset.getIndexStats": self.get_index_stats,
            "science.alt.dataset.getRecord": self.get_record,
            "science.alt.dataset.listRecords": self.list_records,
            "com.atproto.identity.resolveHandle": self.resolve_handle,
        }

    # ------------------------------------------------------------------ accounts and URIs

    def did_of(self, identifier: str) -> str | None:
        """The DID an at-identifier (DID or handle, ``@`` allowed) names, None for a handle nobody indexed has."""
        text = identifier.strip().removeprefix("@")
        if text.startswith("did:"):
            return text
        return self.store.did_for_handle(text)

    def _uri(self, text: str, collection: str | None, error: str) -> str:
        """``text`` with a DID authority; ``not_found(error)`` when it cannot name an indexed record."""
        parsed = AtUri.parse(text)  # checked by the parameter validator already
        if collection is not None and parsed.collection != collection:
            raise not_found(error, f"{text} is not a {collection} record")
        if not parsed.rkey:
            raise bad_request(f"{text} names no record (at://did/collection/rkey)")
        did = self.did_of(parsed.authority)
        if did is None:
            raise not_found(error, f"no indexed account has the handle {parsed.authority}")
        return str(AtUri.record(did, parsed.collection, parsed.rkey))

    @staticmethod
    def _after(params: dict[str, Any], *, ranked: bool):
        cursor = params.get("cursor")
        if cursor is None:
            return None
        try:
            return decode_cursor(cursor, ranked=ranked)
        except ValueError as err:
            raise bad_request(f"cursor: {err}") from None

    @staticmethod
    def _with_cursor(body: dict[str, Any], page) -> dict[str, Any]:
        if page.next is not None:
            body["cursor"] = encode_cursor(page.next)
        return body

    def _listing(self, collection: str, params: dict[str, Any], key: str, **filters: Any) -> dict[str, Any]:
        did = None
        if params.get("repo") is not None:
            did = self.did_of(params["repo"])
            if did is None:
                return {key: []}
        page = self.store.list_records(
            collection, did=did, after=self._after(params, ranked=False), limit=params["limit"], **filters
        )
        return self._with_cursor({key: [view(record) for record in page.records]}, page)

    # ------------------------------------------------------------------ entries

    def search_datasets(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            words = search_words(params.get("q") or "")
        except ValueError as err:
            raise bad_request(f"q: {err}") from None
        did = None
        if params.get("repo") is not None:
            did = self.did_of(params["repo"])
            if did is None:
                return {"entries": []}
        page = self.store.search_entries(
            words,
            did=did,
            schema_ref=params.get("schemaRef"),
            tags=params.get("tags") or (),
            after=self._after(params, ranked=True),
            limit=params["limit"],
        )
        return self._with_cursor({"entries": [view(record) for record in page.records]}, page)

    def list_entries(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(ENTRY_NSID, params, "entries")

    def get_entry(self, params: dict[str, Any]) -> dict[str, Any]:
        uri = self._uri(params["uri"], ENTRY_NSID, "EntryNotFound")
        found = self.store.get(uri)
        if found is None:
            raise not_found("EntryNotFound", f"no indexed dataset entry at {params['uri']}")
        return {"entry": view(found)}

    def get_entries(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted: list[str] = []
        for text in params["uris"]:
            try:
                wanted.append(self._uri(text, ENTRY_NSID, "EntryNotFound"))
            except XrpcFailure as err:
                if err.status != 404:
                    raise
        found = self.store.get_many(wanted)
        return {"entries": [view(found[uri]) for uri in dict.fromkeys(wanted) if uri in found]}

    def resolve_blobs(self, params: dict[str, Any]) -> dict[str, Any]:
        blobs: list[dict[str, Any]] = []
        for text in params["uris"]:
            try:
                uri = self._uri(text, ENTRY_NSID, "EntryNotFound")
            except XrpcFailure as err:
                if err.status != 404:
                    raise
                blobs.append({"uri": text, "error": err.error, "message": err.message})
                continue
            found = self.store.get(uri)
            if found is None:
                blobs.append({"uri": text, "error": "EntryNotFound", "message": f"no indexed dataset entry at {text}"})
                continue
            blobs.extend(self._entry_blobs(text, found))
        return {"blobs": blobs}

    def _entry_blobs(self, text: str, entry: StoredRecord) -> list[dict[str, Any]]:
        storage = entry.value.get("storage")
        if not isinstance(storage, dict) or storage.get("$type") != "science.alt.dataset.storageBlobs":
            return [{"uri": text, "error": "NotBlobStorage", "message": "the entry's shards are not PDS blobs"}]
        cids: list[str] = []
        for item in storage.get("blobs") if isinstance(storage.get("blobs"), list) else []:
            blob = item.get("blob", item) if isinstance(item, dict) else None
            cid = None
            if isinstance(blob, dict):
                ref = blob.get("ref")
                cid = ref.get("$link") if isinstance(ref, dict) else blob.get("cid")
            if not isinstance(cid, str) or not _CID.match(cid):
                return [{"uri": text, "error": "InvalidBlob", "message": "a blob of the entry has no valid CID"}]
            cids.append(cid)
        pds = self._pds_cache.get(entry.did, lambda: self._lookup_pds(entry.did))
        if not pds:
            return [{"uri": text, "error": "PdsNotFound", "message": f"the PDS of {entry.did} could not be found"}]
        base = f"{pds.rstrip('/')}/xrpc/com.atproto.sync.getBlob?did={quote(entry.did, safe=':')}&cid="
        return [{"uri": text, "cid": cid, "url": base + cid} for cid in cids]

    def _lookup_pds(self, did: str) -> str | None:
        if self._pds_of is None:
            return None
        try:
            found = self._pds_of(did)
        except Exception as err:  # noqa: BLE001 - an account whose DID document fails has no usable PDS
            log.info("no PDS for %s: %s", did, err)
            return None
        return found if isinstance(found, str) and found.startswith(("https://", "http://")) else None

    # ------------------------------------------------------------------ schemas

    def list_schemas(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(SCHEMA_NSID, params, "schemas")

    def get_schema(self, params: dict[str, Any]) -> RawJson:
        uri = self._uri(params["uri"], SCHEMA_NSID, "SchemaNotFound")
        found = self.store.get(uri)
        if found is None:
            raise not_found("SchemaNotFound", f"no indexed schema at {params['uri']}")
        return view(found)

    def resolve_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        handle, schema_id, version = params["handle"], params["schemaId"], params.get("version")
        did = self.did_of(handle)
        if did is None:
            raise not_found("SchemaNotFound", f"no indexed account has the handle {handle}")
        candidates = self.store.schema_candidates(did, schema_id)
        try:
            chosen = select_schema([record.indexed() for record in candidates], did, schema_id, version)
        except RecordNotFound as err:
            raise not_found("SchemaNotFound", str(err)) from None
        stored = next(record for record in candidates if record.uri == chosen.uri)
        return {"uri": stored.uri, "cid": stored.cid or "", "record": RawJson(stored.json)}

    # ------------------------------------------------------------------ labels and lenses

    def resolve_label(self, params: dict[str, Any]) -> dict[str, Any]:
        handle, name, version = params["handle"], params["name"], params.get("version")
        did = self.did_of(handle)
        if did is None:
            raise not_found("LabelNotFound", f"no indexed account has the handle {handle}")
        stored = self.store.label_candidates(did, name)
        try:
            chosen = select_label([record.indexed() for record in stored], did, name, version)
        except RecordNotFound as err:
            raise not_found("LabelNotFound", str(err)) from None
        label = next(record for record in stored if record.uri == chosen.uri)
        dataset = chosen.value.get("datasetUri")
        if not isinstance(dataset, str):
            raise not_found("LabelNotFound", f"the label {name} of {handle} names no dataset")
        entry = self.store.get(dataset)
        return {"uri": dataset, "cid": entry.cid if entry and entry.cid else "", "label": RawJson(label.json)}

    def list_lenses(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(
            LENS_NSID, params, "lenses", ref_a=params.get("sourceSchema"), ref_b=params.get("targetSchema")
        )

    def search_lenses(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(
            LENS_NSID, {**params, "repo": None}, "lenses",
            ref_a=params.get("sourceSchema"), ref_b=params.get("targetSchema"),
        )

    def get_lens_path(self, params: dict[str, Any]) -> dict[str, Any]:
        """Breadth-first over lenses by their source schema; bounded, so a tangle of lenses costs little."""
        source = self._schema_uri(params["sourceSchema"])
        target = self._schema_uri(params["targetSchema"])
        if source == target:
            return {"lenses": []}
        came_from: dict[str, tuple[str, StoredRecord]] = {}
        frontier = [source]
        seen = {source}
        for _ in range(params["maxHops"]):
            following: list[str] = []
            for node in frontier:
                for lens in self.store.list_records(LENS_NSID, ref_a=node, limit=_MAX_LENSES_PER_SCHEMA).records:
                    step = lens.value.get("targetSchema")
                    if not isinstance(step, str) or step in seen:
                        continue
                    seen.add(step)
                    came_from[step] = (node, lens)
                    if step == target:
                        chain: list[StoredRecord] = []
                        while step != source:
                            step, used = came_from[step]
                            chain.append(used)
                        return {"lenses": [view(lens) for lens in reversed(chain)]}
                    following.append(step)
                    if len(seen) > _MAX_SCHEMAS_VISITED:
                        raise not_found("NoLensPath", "no chain of lenses found among the schemas this search may visit")
            frontier = following
            if not frontier:
                break
        raise not_found(
            "NoLensPath", f"no chain of at most {params['maxHops']} indexed lenses leads from {source} to {target}"
        )

    def _schema_uri(self, text: str) -> str:
        parsed = AtUri.parse(text)
        did = self.did_of(parsed.authority)
        if did is None or not parsed.collection or not parsed.rkey:
            return text
        return str(AtUri.record(did, parsed.collection, parsed.rkey))

    # ------------------------------------------------------------------ statistics

    def get_entry_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        """An entry's figures as its record states them, and what the index holds about it.

        The record is someone else's and may deviate from the lexicon (D6): a
        figure that is not a non-negative integer is left out, not guessed.
        """
        uri = self._uri(params["uri"], ENTRY_NSID, "EntryNotFound")
        found = self.store.get(uri)
        if found is None:
            raise not_found("EntryNotFound", f"no indexed dataset entry at {params['uri']}")
        value = found.value
        value = value if isinstance(value, dict) else {}
        name = value.get("name")
        body: dict[str, Any] = {"uri": found.uri, "cid": found.cid or "", "did": found.did,
                                "name": name if isinstance(name, str) else ""}
        schema_ref = value.get("schemaRef") if isinstance(value.get("schemaRef"), str) else None
        if schema_ref is not None:
            body["schemaRef"] = schema_ref
        storage_type, shards, blob_bytes = _storage_figures(value.get("storage"))
        size = value.get("size") if isinstance(value.get("size"), dict) else {}
        if storage_type is not None:
            body["storageType"] = storage_type
        stated_bytes = _count(size.get("bytes"))
        figures = {
            "shardCount": shards if shards is not None else _count(size.get("shards")),
            "totalBytes": stated_bytes if stated_bytes is not None else blob_bytes,
            "sampleCount": _count(size.get("samples")),
        }
        body.update({key: figure for key, figure in figures.items() if figure is not None})
        limit = params["limit"]

        def listed(collection: str, **filters: Any) -> tuple[int, list[RawJson]]:
            total = self.store.count_records(collection, **filters)
            if not total or not limit:
                return total, []
            return total, [view(record) for record in self.store.list_records(collection, limit=limit, **filters).records]

        body["labelCount"], body["labels"] = listed(LABEL_NSID, ref_a=found.uri)
        if schema_ref is None:
            body.update(lensesFromCount=0, lensesFrom=[], lensesToCount=0, lensesTo=[])
        else:
            body["lensesFromCount"], body["lensesFrom"] = listed(LENS_NSID, ref_a=schema_ref)
            body["lensesToCount"], body["lensesTo"] = listed(LENS_NSID, ref_b=schema_ref)
        return body

    def get_index_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        counts = self.store.record_counts()
        return {
            "entries": counts.get(ENTRY_NSID, 0),
            "schemas": counts.get(SCHEMA_NSID, 0),
            "lenses": counts.get(LENS_NSID, 0),
            "labels": counts.get(LABEL_NSID, 0),
            "lensVerifications": counts.get(LENS_VERIFICATION_NSID, 0),
            "accounts": self.store.account_count(),
        }

    # ------------------------------------------------------------------ any record

    def get_record(self, params: dict[str, Any]) -> dict[str, Any]:
        uri = self._uri(params["uri"], None, "RecordNotFound")
        found = self.store.get(uri)
        if found is None:
            raise not_found("RecordNotFound", f"no indexed record at {params['uri']}")
        return record_body(found)

    def list_records(self, params: dict[str, Any]) -> dict[str, Any]:
        did = None
        if params.get("repo") is not None:
            did = self.did_of(params["repo"])
            if did is None:
                return {"records": []}
        page = self.store.list_records(
            params["collection"], did=did, query=params.get("q") or None, tags=params.get("tags") or (),
            after=self._after(params, ranked=False), limit=params["limit"],
        )
        return self._with_cursor({"records": [record_body(record) for record in page.records]}, page)

    # ------------------------------------------------------------------ the service

    def describe_service(self, params: dict[str, Any]) -> dict[str, Any]:
        counts = self.store.record_counts()
        collections = sorted(RECORD_NSIDS)
        return {
            "did": self.service_did,
            "availableCollections": collections,
            "recordCount": {collection: counts.get(collection, 0) for collection in collections},
        }

    def resolve_handle(self, params: dict[str, Any]) -> dict[str, Any]:
        did = self.store.did_for_handle(params["handle"])
        if did is None:
            raise not_found("HandleNotFound", f"no indexed account has the handle {params['handle']}")
        return {"did": did}


def _count(value: Any) -> int | None:
    """``value`` if it is a non-negative integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


_SHARD_LISTS = {
    "science.alt.dataset.storageHttp": "shards",
    "science.alt.dataset.storageS3": "shards",
    "science.alt.dataset.storageBlobs": "blobs",
}


def _storage_figures(storage: Any) -> tuple[str | None, int | None, int | None]:
    """``(storage $type, shards listed, bytes of the blobs)`` of an entry's storage; None for what it does not say."""
    if not isinstance(storage, dict):
        return None, None, None
    kind = storage.get("$type") if isinstance(storage.get("$type"), str) else None
    items = storage.get(_SHARD_LISTS.get(kind or "", ""))
    if not isinstance(items, list):
        return kind, None, None
    sizes = []
    if kind == "science.alt.dataset.storageBlobs":
        for item in items:
            blob = item.get("blob", item) if isinstance(item, dict) else None
            sizes.append(_count(blob.get("size")) if isinstance(blob, dict) else None)
    blob_bytes = sum(sizes) if sizes and None not in sizes else None  # type: ignore[arg-type]
    return kind, len(items), blob_bytes


#: com.atproto.identity.resolveHandle's parameters (its document is the ATProto lexicon's; not ours to ship).
RESOLVE_HANDLE = {
    "type": "query",
    "parameters": {
        "type": "params",
        "required": ["handle"],
        "properties": {"handle": {"type": "string", "format": "handle"}},
    },
}
