"""The pages: search, a dataset, a schema, an account. Each reads the index the XRPC methods read.

Where a method answers what a page shows, the page calls it, its parameters
checked against the method's lexicon: search and a schema's datasets are
``searchDatasets``, a dataset's figures, labels and lenses ``getEntryStats``,
a schema's lenses ``searchLenses``, an account's records ``listEntries``,
``listSchemas`` and ``listLenses``, the totals ``getIndexStats``. So a page
finds, ranks, pages and counts exactly as the API does. The rest are the
store's own reads: a record by URI, a schema's versions, an account's handle.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from atdata_core.plugins import ENTRY_NSID, SCHEMA_NSID, AtUri

from atdata_index_appview.api._methods import Methods, XrpcFailure
from atdata_index_appview.api._params import ParamError, method_document, parse_params
from atdata_index_appview.store import StoredRecord
from atdata_index_appview.store._model import schema_rkey_id
from atdata_index_appview.web import _present as present
from atdata_index_appview.web._render import render

__all__ = ["page_routes"]

log = logging.getLogger("atdata_index_appview.web")

#: Results on one page of search.
PAGE_SIZE = 20
#: Rows of one section of the account page.
SECTION_SIZE = 25
#: A page lists at most this many lenses and labels of a dataset or schema.
MAX_RELATED = 50
#: The schema page compares at most this many versions.
MAX_VERSIONS = 100
#: A request whose query string is longer than this is refused before it is read.
MAX_QUERY_BYTES = 16 * 1024
#: The DID syntax (W3C DID core, as ATProto restricts it).
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]{1,2000}$")


class PageError(Exception):
    """A page that cannot be shown: 400 for a request that makes no sense, 404 for what the index lacks."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def _not_found(what: str, message: str) -> PageError:
    return PageError(404, f"No such {what}", message)


def _bad_request(message: str) -> PageError:
    return PageError(400, "This request cannot be answered", message)


@attrs.frozen
class Item:
    """A record as the pages use it: where it is and its value (a dict, whatever the record held)."""

    uri: str
    did: str
    rkey: str
    value: dict[str, Any]

    @classmethod
    def stored(cls, record: StoredRecord) -> Item:
        try:
            value = record.value
        except ValueError:
            value = {}
        return cls(record.uri, record.did, record.rkey, value if isinstance(value, dict) else {})

    @classmethod
    def from_view(cls, text: str) -> Item:
        """From a view the XRPC method answered (``uri``, ``did``... then the record's fields)."""
        value = json.loads(text)
        uri = value.pop("uri", "")
        did = value.pop("did", "")
        for key in ("cid", "indexedAt"):
            value.pop(key, None)
        return cls(uri, did, uri.rsplit("/", 1)[-1], value)

    def text(self, key: str, limit: int = 5000) -> str | None:
        return present.text(self.value.get(key), limit)


class Pages:
    """The request handlers over one AppView's methods (and through them, its store)."""

    def __init__(self, methods: Methods):
        self.methods = methods
        self.store = methods.store

    # ------------------------------------------------------------------ shared pieces

    def _call(self, nsid: str, **given: Any) -> dict[str, Any]:
        """The answer of the XRPC method ``nsid``, its parameters checked against its lexicon as the API checks them."""
        query = {name: value if isinstance(value, list) else [str(value)] for name, value in given.items() if value is not None}
        try:
            params = parse_params(method_document(nsid), query)
        except ParamError as err:
            raise _bad_request(_page_words(str(err))) from None
        return self.methods.table[nsid](params)

    def _handles(self, dids: Iterable[str]) -> dict[str, str | None]:
        return {did: self.store.handle_of(did) for did in dict.fromkeys(dids)}

    def _author(self, did: str, handles: dict[str, str | None]) -> dict[str, Any]:
        handle = handles.get(did)
        return {"did": did, "handle": handle, "label": f"@{handle}" if handle else did, "href": present.account_path(did)}

    def _did(self, account: str, what: str) -> str:
        try:
            did = self.methods.did_of(account)
        except Exception:  # noqa: BLE001 - an identifier the store cannot look up names nobody
            did = None
        if did is None or not _DID.match(did) or did.endswith((":", "%")):
            raise _not_found(what, f"No indexed account is called {present.text(account, 300) or 'that'}.")
        return did

    def _record_uri(self, account: str, collection: str, rkey: str, what: str) -> str:
        did = self._did(account, what)
        try:
            return str(AtUri.record(did, collection, rkey))
        except Exception:  # noqa: BLE001 - a malformed key names no record
            raise _not_found(what, f"{present.text(rkey, 300) or 'That'} is not the key of any record.") from None

    def _normalized(self, uri: Any) -> str | None:
        """A reference with its authority as a DID (a handle the index knows replaced), None if malformed."""
        try:
            parsed = AtUri.parse(uri)
        except Exception:  # noqa: BLE001
            return None
        if parsed.did is None:
            did = self.store.did_for_handle(parsed.authority)
            if did is not None:
                parsed = parsed.with_authority(did)
        return str(parsed)

    def _tags(self, value: Mapping[str, Any], link: Callable[[str], str]) -> list[dict[str, str]]:
        tags = value.get("tags")
        shown = []
        for tag in tags[:30] if isinstance(tags, list) else ():
            label = present.text(tag, 150)
            if label is not None:
                shown.append({"label": label, "href": link(label)})
        return shown

    def _card(self, item: Item, handles: dict[str, str | None], schemas: dict[str, StoredRecord],
              tag_link: Callable[[str], str]) -> dict[str, Any]:
        """A dataset as one search result or list row."""
        value = item.value
        size = present.mapping(value.get("size"))
        schema_ref = self._normalized(value.get("schemaRef"))
        schema = schemas.get(schema_ref or "")
        return {
            "name": item.text("name", 200) or "(unnamed)",
            "href": present.dataset_path(item.uri),
            "author": self._author(item.did, handles),
            "description": item.text("description", 300),
            "tags": self._tags(value, tag_link),
            "created": present.when(value.get("createdAt")),
            "samples": present.number(size.get("samples")),
            "bytes": present.human_bytes(size.get("bytes")),
            "schema": self._schema_label(schema_ref, schema),
        }

    def _schema_label(self, uri: str | None, found: StoredRecord | None) -> dict[str, Any] | None:
        if uri is None:
            return None
        if found is not None:
            item = Item.stored(found)
            name = item.text("name", 200) or schema_rkey_id(item.rkey) or item.rkey
            version = item.text("version", 100)
            return {"label": f"{name} {version}" if version else name, "href": present.schema_path(uri), "indexed": True}
        rkey = uri.rsplit("/", 1)[-1]
        return {"label": rkey, "href": None, "indexed": False}

    def _schemas_of(self, items: Iterable[Item]) -> dict[str, StoredRecord]:
        refs = [ref for ref in (self._normalized(item.value.get("schemaRef")) for item in items) if ref]
        return self.store.get_many(list(dict.fromkeys(refs))) if refs else {}

    def _lens(self, item: Item, handles: dict[str, str | None]) -> dict[str, Any]:
        value = item.value
        code = present.mapping(value.get("getterCode"))
        ends = {}
        for key in ("sourceSchema", "targetSchema"):
            ref = self._normalized(value.get(key))
            found = self.store.get(ref) if ref else None
            ends[key] = self._schema_label(ref, found) or {"label": present.text(value.get(key), 300) or "?",
                                                           "href": None, "indexed": False}
        return {
            "name": item.text("name", 200) or "(unnamed lens)",
            "description": item.text("description", 500),
            "author": self._author(item.did, handles),
            "source": ends["sourceSchema"],
            "target": ends["targetSchema"],
            "repository": present.text(code.get("repository"), 500),
            "repository_href": present.web_url(code.get("repository")),
            "commit": present.text(code.get("commit"), 40),
            "path": present.text(code.get("path"), 500),
            "uri": item.uri,
        }

    def _counts(self) -> dict[str, int]:
        counts = self._call("science.alt.dataset.getIndexStats")
        return {"datasets": counts["entries"], "schemas": counts["schemas"], "lenses": counts["lenses"]}

    # ------------------------------------------------------------------ search

    def home(self, request: Request) -> tuple[str, dict[str, Any]]:
        query = request.query_params
        q = query.get("q", "")
        # ``tags``: one tag each (the links); ``tag``: the form's box, tags separated by commas.
        tags = [tag for tag in query.getlist("tags") if tag]
        for typed in query.getlist("tag"):
            tags.extend(tag.strip() for tag in typed.split(",") if tag.strip())
        tags = list(dict.fromkeys(tags))
        schema = query.get("schema") or None
        author = query.get("author") or None
        cursor = query.get("cursor") or None
        page = 1
        if cursor is not None:
            try:
                page = int(query.get("page", "2"))
            except ValueError:
                raise _bad_request("page: a page number is a whole number") from None
            if not 2 <= page <= 1_000_000:
                raise _bad_request("page: a page after the first is numbered 2 or more")
        limit = _limit(query.get("limit"), PAGE_SIZE)
        keep = None if limit == PAGE_SIZE else limit  # a chosen page size stays in every link
        found = self._call("science.alt.dataset.searchDatasets", q=q, tags=tags, schemaRef=schema, repo=author,
                           cursor=cursor, limit=limit)
        items = [Item.from_view(view.text) for view in found["entries"]]
        handles = self._handles(item.did for item in items)
        schemas = self._schemas_of(items)

        def link(**changed: Any) -> str:
            """This search with some of its filters changed."""
            return present.home_path(**{"q": q, "tags": tags, "schema": schema, "author": author, "limit": keep, **changed})

        filters = [{"label": f"tag: {tag}", "remove": link(tags=[t for t in tags if t != tag])} for tag in tags]
        if schema:
            ref = self._normalized(schema)
            label = self._schema_label(ref, self.store.get(ref) if ref else None)
            filters.append({"label": f"schema: {label['label'] if label else schema}", "remove": link(schema=None)})
        if author:
            filters.append({"label": f"author: {author}", "remove": link(author=None)})
        next_cursor = found.get("cursor")
        return "home.html", {
            "title": f"{q} – search" if q else "Datasets",
            "q": q,
            # the box holds the tags it can give back; a tag with a comma goes along as it is
            "tags_text": ", ".join(tag for tag in tags if "," not in tag),
            "whole_tags": [tag for tag in tags if "," in tag],
            "schema": schema,
            "author": author,
            "limit": keep,
            "filters": filters,
            "results": [self._card(item, handles, schemas, lambda tag: link(tags=list(dict.fromkeys([*tags, tag]))))
                        for item in items],
            "page": page,
            "next": link(cursor=next_cursor, page=page + 1) if next_cursor else None,
            "first": link() if cursor else None,
            "counts": self._counts(),
            "searching": bool(q or tags or schema or author),
        }

    # ------------------------------------------------------------------ a dataset

    def dataset(self, request: Request) -> tuple[str, dict[str, Any]]:
        account, rkey = request.path_params["account"], request.path_params["rkey"]
        uri = self._record_uri(account, ENTRY_NSID, rkey, "dataset")
        found = self.store.get(uri)
        if found is None:
            raise _not_found("dataset", f"No indexed dataset has the address {uri}.")
        item = Item.stored(found)
        value = item.value
        handles = self._handles([item.did])
        name = item.text("name", 200)
        storage = present.storage_of(value.get("storage"))
        # The figures, labels and lenses getEntryStats answers: the page shows what the API says.
        stats = self._call("science.alt.dataset.getEntryStats", uri=uri, limit=MAX_RELATED)
        total_bytes = stats.get("totalBytes")

        schema_ref = self._normalized(value.get("schemaRef"))
        schema_found = self.store.get(schema_ref) if schema_ref else None
        schema = self._schema_label(schema_ref, schema_found)
        fields = present.schema_fields(Item.stored(schema_found).value) if schema_found else None

        label_items = [Item.from_view(view.text) for view in stats["labels"]]
        lenses_from = [Item.from_view(view.text) for view in stats["lensesFrom"]]
        lenses_to = [Item.from_view(view.text) for view in stats["lensesTo"]]
        handles.update(self._handles(other.did for other in (*label_items, *lenses_from, *lenses_to)))
        labels = [{"name": label.text("name", 200) or "(unnamed)", "version": label.text("version", 100),
                   "description": label.text("description", 300), "created": present.when(label.value.get("createdAt")),
                   "author": self._author(label.did, handles) if label.did != item.did else None}
                  for label in label_items]
        return "dataset.html", {
            "title": name or "Dataset",
            "name": name or "(unnamed dataset)",
            "uri": uri,
            "cid": found.cid,
            "author": self._author(item.did, handles),
            "description": item.text("description"),
            "tags": self._tags(value, lambda tag: present.home_path(tags=[tag])),
            "license": item.text("license", 200),
            "created": present.when(value.get("createdAt"), with_time=True),
            "load": present.load_line(uri, handles.get(item.did), name, self._newest_of_name(item, name)),
            "samples": stats.get("sampleCount"),
            "bytes": present.human_bytes(total_bytes),
            "exact_bytes": total_bytes,
            "shard_count": stats.get("shardCount"),
            "storage": storage,
            "more_shards": max(0, storage.shard_count - len(storage.shards)),
            "schema": schema,
            "schema_ref_text": present.text(value.get("schemaRef"), 500),
            "fields": fields,
            "schema_datasets": present.home_path(schema=schema_ref) if schema_ref else None,
            "labels": labels,
            "label_count": stats["labelCount"],
            "lenses_from": [self._lens(lens, handles) for lens in lenses_from],
            "lenses_from_count": stats["lensesFromCount"],
            "lenses_to": [self._lens(lens, handles) for lens in lenses_to],
            "lenses_to_count": stats["lensesToCount"],
            "api": "/xrpc/science.alt.dataset.getEntry?" + urlencode({"uri": uri}),
            "record": present.pretty_json(value),
        }

    def _newest_of_name(self, item: Item, name: str | None) -> bool:
        """Whether ``@handle/name`` resolves to this entry: no newer entry of the account has its name."""
        if not name:
            return False
        page = self.store.list_records(ENTRY_NSID, did=item.did, query=name, limit=100)
        for record in page.records:  # newest first
            if Item.stored(record).value.get("name") == name:
                return record.uri == item.uri
        return False

    # ------------------------------------------------------------------ a schema

    def schema(self, request: Request) -> tuple[str, dict[str, Any]]:
        account, rkey = request.path_params["account"], request.path_params["rkey"]
        uri = self._record_uri(account, SCHEMA_NSID, rkey, "schema")
        found = self.store.get(uri)
        if found is None:
            raise _not_found("schema", f"No indexed schema has the address {uri}.")
        item = Item.stored(found)
        value = item.value
        handles = self._handles([item.did])
        schema_id = schema_rkey_id(item.rkey) or item.text("name", 500) or item.rkey
        fields = present.schema_fields(value)

        candidates = [Item.stored(record) for record in self.store.schema_candidates(item.did, schema_id)]
        if not any(candidate.uri == uri for candidate in candidates):
            candidates.append(item)
        candidates.sort(key=lambda c: (present.semver_key(c.value.get("version")), c.uri))
        candidates = candidates[-MAX_VERSIONS:]
        versions = []
        previous: tuple[Item, present.SchemaFields] | None = None
        for candidate in candidates:
            its_fields = fields if candidate.uri == uri else present.schema_fields(candidate.value)
            diff = None
            if previous is not None:
                before, before_fields = previous
                diff = {
                    "from": before.text("version", 100) or before.rkey,
                    "changes": present.diff_fields(before_fields.rows, its_fields.rows),
                    "unreadable": bool(before_fields.problem or its_fields.problem),
                }
            versions.append({
                "version": candidate.text("version", 100) or candidate.rkey,
                "href": present.schema_path(candidate.uri),
                "current": candidate.uri == uri,
                "created": present.when(candidate.value.get("createdAt")),
                "diff": diff,
            })
            previous = (candidate, its_fields)
        versions.reverse()  # newest first

        of_schema = self._call("science.alt.dataset.searchDatasets", q="", schemaRef=uri, limit=SECTION_SIZE)
        dataset_items = [Item.from_view(view.text) for view in of_schema["entries"]]
        lenses_from = [Item.from_view(view.text) for view in
                       self._call("science.alt.dataset.searchLenses", sourceSchema=uri, limit=MAX_RELATED)["lenses"]]
        lenses_to = [Item.from_view(view.text) for view in
                     self._call("science.alt.dataset.searchLenses", targetSchema=uri, limit=MAX_RELATED)["lenses"]]
        handles.update(self._handles(other.did for other in (*dataset_items, *lenses_from, *lenses_to)))
        name = item.text("name", 200) or schema_id
        version = item.text("version", 100)
        metadata = present.mapping(value.get("metadata"))
        return "schema.html", {
            "title": f"{name} {version}" if version else name,
            "name": name,
            "version": version,
            "uri": uri,
            "cid": found.cid,
            "author": self._author(item.did, handles),
            "description": item.text("description"),
            "schema_type": item.text("schemaType", 100),
            "license": present.text(metadata.get("license"), 200),
            "tags": self._tags(metadata, lambda tag: present.home_path(tags=[tag])),
            "created": present.when(value.get("createdAt"), with_time=True),
            "fields": fields,
            "versions": versions,
            "datasets": [self._card(d, handles, {uri: found}, lambda tag: present.home_path(tags=[tag]))
                         for d in dataset_items],
            "all_datasets": present.home_path(schema=uri) if of_schema.get("cursor") else None,
            "lenses_from": [self._lens(lens, handles) for lens in lenses_from],
            "lenses_to": [self._lens(lens, handles) for lens in lenses_to],
            "api": "/xrpc/science.alt.dataset.getSchema?" + urlencode({"uri": uri}),
            "record": present.pretty_json(value),
        }

    # ------------------------------------------------------------------ an account

    def account(self, request: Request) -> tuple[str, dict[str, Any]]:
        account = request.path_params["account"]
        did = self._did(account, "account")
        handle = self.store.handle_of(did)
        limit = _limit(request.query_params.get("limit"), SECTION_SIZE)
        more = "" if limit == SECTION_SIZE else f"limit={limit}&"
        sections: dict[str, dict[str, Any]] = {}
        for key, method, listed in (("datasets", "listEntries", "entries"), ("schemas", "listSchemas", "schemas"),
                                    ("lenses", "listLenses", "lenses")):
            cursor = request.query_params.get(key) or None
            try:
                page = self._call(f"science.alt.dataset.{method}", repo=did, cursor=cursor, limit=limit)
            except XrpcFailure as err:  # a cursor of another listing, or none this service made
                raise _bad_request(f"{key}: {err.message}") from None
            sections[key] = {
                "items": [Item.from_view(view.text) for view in page[listed]],
                "next": f"{present.account_path(did)}?{more}{key}={quote(page['cursor'])}" if page.get("cursor") else None,
                "paged": cursor is not None,
            }
        if handle is None and not any(section["items"] for section in sections.values()):
            raise _not_found("account", f"The index holds nothing of {did}.")
        handles = {did: handle}
        datasets = sections["datasets"]["items"]
        schemas = self._schemas_of(datasets)
        return "account.html", {
            "title": f"@{handle}" if handle else did,
            "handle": handle,
            "did": did,
            "href": present.account_path(did) + (f"?limit={limit}" if more else ""),
            "search": present.home_path(author=did),
            "datasets": [self._card(d, handles, schemas, lambda tag: present.home_path(tags=[tag], author=did))
                         for d in datasets],
            "schemas": [{"name": s.text("name", 200) or s.rkey, "version": s.text("version", 100),
                         "description": s.text("description", 200), "href": present.schema_path(s.uri),
                         "created": present.when(s.value.get("createdAt"))}
                        for s in sections["schemas"]["items"]],
            "lenses": [self._lens(lens, handles) for lens in sections["lenses"]["items"]],
            "sections": {key: {"next": section["next"], "paged": section["paged"]} for key, section in sections.items()},
        }


def _limit(given: str | None, default: int) -> int:
    """How many rows a page shows: ``limit`` from 1 to 100."""
    if given is None:
        return default
    try:
        limit = int(given)
    except ValueError:
        raise _bad_request("limit: a whole number from 1 to 100") from None
    if not 1 <= limit <= 100:
        raise _bad_request("limit: a whole number from 1 to 100")
    return limit


def _page_words(message: str) -> str:
    """A parameter error in the words of the search form (its ``tag`` box is the API's ``tags``)."""
    for api, form in (("tags", "tag"), ("schemaRef", "schema"), ("repo", "author")):
        if message.startswith((f"{api}:", f"{api}[")):
            return form + message[len(api):]
    return message


def page_routes(methods: Methods) -> list[Route]:
    """The pages' routes over ``methods`` (and its store): ``/``, ``/dataset/…``, ``/schema/…``, ``/account/…``."""
    pages = Pages(methods)

    def serving(build: Callable[[Request], tuple[str, dict[str, Any]]]) -> Callable[[Request], Any]:
        def answer(request: Request) -> Response:
            if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
                return _error(PageError(400, "This request cannot be answered",
                                        f"The query string is longer than {MAX_QUERY_BYTES} bytes."))
            try:
                template, context = build(request)
                return render(template, context)
            except PageError as err:
                return _error(err)
            except XrpcFailure as err:
                return _error(PageError(err.status, "This request cannot be answered", err.message))
            except Exception:  # noqa: BLE001 - logged; the visitor learns only that the service failed
                log.exception("the page %s failed", request.url.path)
                return _error(PageError(500, "Something went wrong", "The AppView failed to answer; the fault is logged."))

        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(answer, request)

        return endpoint

    return [
        Route("/", serving(pages.home), methods=["GET", "HEAD"], name="home"),
        Route("/dataset/{account}/{rkey}", serving(pages.dataset), methods=["GET", "HEAD"], name="dataset"),
        Route("/schema/{account}/{rkey}", serving(pages.schema), methods=["GET", "HEAD"], name="schema"),
        Route("/account/{account}", serving(pages.account), methods=["GET", "HEAD"], name="account"),
    ]


def _error(err: PageError) -> Response:
    return render("error.html", {"title": err.title, "status": err.status, "message": err.message}, status=err.status)
