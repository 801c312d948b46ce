"""The XRPC API over each store: every method, its parameters, its answers, its pages."""

from __future__ import annotations

import json

import httpx
import pytest

from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.api._params import plugin_documents
from atdata_index_appview.store._model import record_json

REPO = "did:plc:appviewtests0000000000000"
OTHER = "did:plc:someoneelse00000000000000"
NS = "science.alt.dataset"
SCHEMA_URI = f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0"
BLOB_CID = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"


def schema(name="com.example.image", version="1.0.0", created="2025-01-01T00:00:00Z"):
    return {
        "$type": SCHEMA_NSID, "name": name, "version": version, "schemaType": "jsonSchema",
        "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat", "$schema": "http://json-schema.org/draft-07/schema#",
                   "type": "object", "properties": {"label": {"type": "string"}}},
        "createdAt": created,
    }


def entry(name, created, tags=(), description=None, storage=None, **extra):
    record = {
        "$type": ENTRY_NSID, "name": name, "schemaRef": SCHEMA_URI,
        "storage": storage or {"$type": "science.alt.dataset.storageHttp",
                               "shards": [{"url": f"https://data.example.com/{name}.tar",
                                           "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
        "createdAt": created,
    }
    if tags:
        record["tags"] = list(tags)
    if description:
        record["description"] = description
    record.update(extra)
    return record


BLOBS = {"$type": "science.alt.dataset.storageBlobs",
         "blobs": [{"blob": {"$type": "blob", "ref": {"$link": BLOB_CID}, "mimeType": "application/x-tar", "size": 10240},
                    "checksum": {"algorithm": "sha256", "digest": "cd" * 32}}]}


@pytest.fixture
def indexed(store, make_op, commit):
    """Two accounts' records in the store; alice has a handle."""
    ops = [
        make_op(SCHEMA_NSID, "com.example.image:1.0.0", schema()),
        make_op(SCHEMA_NSID, "com.example.image:1.10.0", schema(version="1.10.0", created="2025-01-02T00:00:00Z")),
        make_op(SCHEMA_NSID, "com.example.image:1.2.0", schema(version="1.2.0", created="2025-01-03T00:00:00Z")),
        make_op(SCHEMA_NSID, "com.example.image:2.0.0-rc.1", schema(version="2.0.0-rc.1", created="2025-01-04T00:00:00Z")),
        make_op(SCHEMA_NSID, "3kschemaaaa2a", schema(name="com.example.audio", version="2.0.0", created="2025-01-05T00:00:00Z")),
        make_op(ENTRY_NSID, "3kentryaaaa2a", entry("mnist-train", "2025-02-01T00:00:00Z", ["vision", "digits"], "Handwritten digits",
                                                   metadata={"$bytes": "gaVzcGxpdKV0cmFpbg"})),
        make_op(ENTRY_NSID, "3kentrybbbb2a", entry("speech-commands", "2025-02-02T00:00:00Z", ["audio"], "Spoken digits, MNIST-like")),
        make_op(ENTRY_NSID, "3kentrycccc2a", entry("cifar-10", "2025-02-03T00:00:00Z", ["vision"], storage=BLOBS)),
        make_op(LENS_NSID, "3klensaaaaa2a", {"$type": LENS_NSID, "name": "image to audio", "sourceSchema": SCHEMA_URI,
                                             "targetSchema": f"at://{REPO}/{SCHEMA_NSID}/3kschemaaaa2a",
                                             "getterCode": {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:get"},
                                             "putterCode": {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:put"},
                                             "createdAt": "2025-03-01T00:00:00Z"}),
        make_op(LABEL_NSID, "3klabelaaaa2a", {"$type": LABEL_NSID, "name": "stable", "version": "1.0.0",
                                              "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a", "createdAt": "2025-03-01T00:00:00Z"}),
        make_op(LABEL_NSID, "3klabelbbbb2a", {"$type": LABEL_NSID, "name": "stable", "version": "2.0.0",
                                              "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3kentrycccc2a", "createdAt": "2025-03-02T00:00:00Z"}),
    ]
    commit(store, ops)
    commit(store, [make_op(ENTRY_NSID, "3kentrydddd2a", entry("bob's digits", "2025-02-04T00:00:00Z", ["vision"]), repo=OTHER)],
           repo=OTHER)
    store.set_handle(REPO, "alice.test")
    store.set_handle(OTHER, "bob.test")
    return {op.uri: op for op in ops}


@pytest.fixture
def client(store):
    """An HTTP client of the API served on loopback (uvicorn, as in production) over ``store``."""
    app = create_app(store, service_did="did:web:appview.test", pds_of=lambda did: "https://pds.test" if did == REPO else None)
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def call(client, method, status=200, **params):
    nsid = method if "." in method else f"{NS}.{method}"
    response = client.get(f"/xrpc/{nsid}", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def names(items):
    return [item["name"] for item in items]


# ---------------------------------------------------------------------------- entries


def test_search_datasets(client, indexed):
    found = call(client, "searchDatasets", q="digits")
    assert names(found["entries"]) == ["bob's digits", "mnist-train", "speech-commands"]
    assert "cursor" not in found
    assert names(call(client, "searchDatasets", q="digits", tags=["vision"])["entries"]) == ["bob's digits", "mnist-train"]
    assert names(call(client, "searchDatasets", q="digits", repo="alice.test")["entries"]) == ["mnist-train", "speech-commands"]
    assert names(call(client, "searchDatasets", q="digits", repo=OTHER)["entries"]) == ["bob's digits"]
    assert call(client, "searchDatasets", q="digits", repo="nobody.test")["entries"] == []
    assert len(call(client, "searchDatasets", q="", schemaRef=SCHEMA_URI)["entries"]) == 4
    assert call(client, "searchDatasets", q="x", schemaRef=f"at://{REPO}/{SCHEMA_NSID}/other:1.0.0")["entries"] == []
    assert names(call(client, "searchDatasets", q="image")["entries"]) == [  # the schema's name
        "bob's digits", "cifar-10", "speech-commands", "mnist-train"]


def test_entry_views_carry_the_record_as_published(client, indexed):
    op = indexed[f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a"]
    response = client.get(f"/xrpc/{NS}.getEntry", params={"uri": op.uri})
    view = response.json()["entry"]
    assert {key: view[key] for key in ("uri", "cid", "did")} == {"uri": op.uri, "cid": op.cid, "did": REPO}
    assert view["indexedAt"].endswith("Z")
    assert {key: value for key, value in view.items() if key not in ("uri", "cid", "did", "indexedAt")} == op.record
    assert record_json(op.record)[1:] in response.text  # the stored text itself, not a rebuild
    assert view["metadata"] == {"$bytes": "gaVzcGxpdKV0cmFpbg"}


def test_get_entry_by_handle_and_missing_entries(client, indexed):
    found = call(client, "getEntry", uri=f"at://alice.test/{ENTRY_NSID}/3kentrybbbb2a")["entry"]
    assert found["uri"] == f"at://{REPO}/{ENTRY_NSID}/3kentrybbbb2a"
    for uri in (f"at://{REPO}/{ENTRY_NSID}/3kzzzzzzzzz2a", f"at://nobody.test/{ENTRY_NSID}/3kentrybbbb2a", SCHEMA_URI):
        error = call(client, "getEntry", 404, uri=uri)
        assert error["error"] == "EntryNotFound" and error["message"]


def test_get_entries(client, indexed):
    wanted = [f"at://{OTHER}/{ENTRY_NSID}/3kentrydddd2a", f"at://{REPO}/{ENTRY_NSID}/3kmissingaa2a", f"at://alice.test/{ENTRY_NSID}/3kentryaaaa2a"]
    assert names(call(client, "getEntries", uris=wanted)["entries"]) == ["bob's digits", "mnist-train"]
    error = call(client, "getEntries", 400, uris=[f"at://{REPO}/{ENTRY_NSID}/3k{i:011d}" for i in range(26)])
    assert error["error"] == "InvalidRequest" and "uris" in error["message"]


def test_list_entries_pages(client, store, make_op, commit):
    commit(store, [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}", f"2025-01-{1 + i % 28:02d}T00:00:00Z")) for i in range(57)])
    seen, cursor = [], None
    while True:
        page = call(client, "listEntries", limit=10, **({"cursor": cursor} if cursor else {}))
        seen.extend(page["entries"])
        cursor = page.get("cursor")
        if not cursor:
            break
    assert len(seen) == 57 and len({e["uri"] for e in seen}) == 57
    times = [e["createdAt"] for e in seen]
    assert times == sorted(times, reverse=True)
    assert len(call(client, "listEntries")["entries"]) == 50  # the lexicon's default limit
    assert len(call(client, "listEntries", repo=REPO, limit=100)["entries"]) == 57


def test_ranked_search_pages(client, store, make_op, commit):
    commit(store, [make_op(ENTRY_NSID, f"3k{i:011d}", entry(["ocean temperature", "temperature", "sea", "air"][i % 4] + f" {i}",
                                                            "2025-01-01T00:00:00Z", tags=["temperature"] if i % 5 == 0 else []))
                   for i in range(80)])
    expected = [e["uri"] for e in call(client, "searchDatasets", q="temperature", limit=100)["entries"]]
    seen, cursor = [], None
    while True:
        page = call(client, "searchDatasets", q="temperature", limit=7, **({"cursor": cursor} if cursor else {}))
        seen.extend(e["uri"] for e in page["entries"])
        cursor = page.get("cursor")
        if not cursor:
            break
    assert seen == expected and len(set(seen)) == len(seen) == 48


# ---------------------------------------------------------------------------- schemas


def test_resolve_schema_is_the_highest_semver(client, indexed):
    found = call(client, "resolveSchema", handle="alice.test", schemaId="com.example.image")
    assert found["uri"] == f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.10.0"
    assert found["record"] == indexed[found["uri"]].record and found["cid"] == indexed[found["uri"]].cid
    pinned = call(client, "resolveSchema", handle=REPO, schemaId="com.example.image", version="1.2.0")
    assert pinned["record"]["version"] == "1.2.0"
    assert call(client, "resolveSchema", handle="@alice.test", schemaId="com.example.audio")["record"]["name"] == "com.example.audio"
    for params in ({"handle": "alice.test", "schemaId": "com.example.image", "version": "9.9.9"},
                   {"handle": "alice.test", "schemaId": "com.example.none"},
                   {"handle": "nobody.test", "schemaId": "com.example.image"},
                   {"handle": OTHER, "schemaId": "com.example.image"}):
        assert call(client, "resolveSchema", 404, **params)["error"] == "SchemaNotFound"


def test_list_and_get_schemas(client, indexed):
    listed = call(client, "listSchemas", repo="alice.test")["schemas"]
    assert [s["version"] for s in listed] == ["2.0.0", "2.0.0-rc.1", "1.2.0", "1.10.0", "1.0.0"]
    assert call(client, "listSchemas", repo="bob.test")["schemas"] == []
    got = call(client, "getSchema", uri=SCHEMA_URI)
    assert got["uri"] == SCHEMA_URI and got["version"] == "1.0.0" and got["schemaType"] == "jsonSchema"
    assert call(client, "getSchema", 404, uri=f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a")["error"] == "SchemaNotFound"


# ---------------------------------------------------------------------------- labels, lenses, blobs


def test_resolve_label(client, indexed):
    newest = call(client, "resolveLabel", handle="alice.test", name="stable")
    assert newest["uri"] == f"at://{REPO}/{ENTRY_NSID}/3kentrycccc2a"
    assert newest["cid"] == indexed[newest["uri"]].cid
    assert newest["label"] == indexed[f"at://{REPO}/{LABEL_NSID}/3klabelbbbb2a"].record
    assert call(client, "resolveLabel", handle=REPO, name="stable", version="1.0.0")["uri"].endswith("3kentryaaaa2a")
    assert call(client, "resolveLabel", 404, handle="alice.test", name="nightly")["error"] == "LabelNotFound"
    assert call(client, "resolveLabel", 404, handle="nobody.test", name="stable")["error"] == "LabelNotFound"


def test_lenses(client, indexed):
    target = f"at://{REPO}/{SCHEMA_NSID}/3kschemaaaa2a"
    assert names(call(client, "listLenses")["lenses"]) == ["image to audio"]
    assert names(call(client, "listLenses", repo="alice.test", sourceSchema=SCHEMA_URI)["lenses"]) == ["image to audio"]
    assert call(client, "listLenses", repo="bob.test")["lenses"] == []
    assert names(call(client, "searchLenses", sourceSchema=SCHEMA_URI, targetSchema=target)["lenses"]) == ["image to audio"]
    assert call(client, "searchLenses", sourceSchema=target)["lenses"] == []
    lens = call(client, "searchLenses", targetSchema=target)["lenses"][0]
    assert lens["getterCode"]["path"] == "m/f.py:get" and lens["did"] == REPO


def test_resolve_blobs(client, indexed):
    blob_entry = f"at://{REPO}/{ENTRY_NSID}/3kentrycccc2a"
    found = call(client, "resolveBlobs", uris=[blob_entry, f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a",
                                                f"at://{REPO}/{ENTRY_NSID}/3kmissingaa2a"])["blobs"]
    assert found[0] == {"uri": blob_entry, "cid": BLOB_CID,
                        "url": f"https://pds.test/xrpc/com.atproto.sync.getBlob?did={REPO}&cid={BLOB_CID}"}
    assert [item.get("error") for item in found[1:]] == ["NotBlobStorage", "EntryNotFound"]


def test_resolve_blobs_of_unknown_pds_and_hostile_cids(client, store, make_op, commit):
    bad = dict(BLOBS, blobs=[{"blob": {"ref": {"$link": "x&url=https://evil.example/"}}}])
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("bad", "2025-01-01T00:00:00Z", storage=bad))])
    commit(store, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("elsewhere", "2025-01-01T00:00:00Z", storage=BLOBS), repo=OTHER)],
           repo=OTHER)
    found = call(client, "resolveBlobs", uris=[f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a", f"at://{OTHER}/{ENTRY_NSID}/3kbbbbbbbbb2a"])
    assert [item["error"] for item in found["blobs"]] == ["InvalidBlob", "PdsNotFound"]


# ---------------------------------------------------------------------------- any record, the service


def test_get_record_and_list_records(client, indexed):
    label_uri = f"at://{REPO}/{LABEL_NSID}/3klabelaaaa2a"
    response = client.get(f"/xrpc/{NS}.getRecord", params={"uri": label_uri})
    assert response.json() == {"uri": label_uri, "cid": indexed[label_uri].cid, "value": indexed[label_uri].record}
    assert f'"value":{record_json(indexed[label_uri].record)}' in response.text
    assert call(client, "getRecord", 404, uri=f"at://{REPO}/{LABEL_NSID}/3knothing002a")["error"] == "RecordNotFound"
    labels = call(client, "listRecords", collection=LABEL_NSID, repo="alice.test")["records"]
    assert [r["value"]["version"] for r in labels] == ["2.0.0", "1.0.0"]
    assert [r["value"]["name"] for r in call(client, "listRecords", collection=ENTRY_NSID, q="MNIST")["records"]] == [
        "speech-commands", "mnist-train"]
    assert [r["value"]["name"] for r in call(client, "listRecords", collection=ENTRY_NSID, tags=["vision", "digits"])["records"]] == [
        "mnist-train"]
    page = call(client, "listRecords", collection=SCHEMA_NSID, limit=2)
    assert len(page["records"]) == 2 and page["cursor"]


def test_describe_service(client, indexed):
    described = call(client, "describeService")
    assert described["did"] == "did:web:appview.test"
    assert described["recordCount"] == {ENTRY_NSID: 4, SCHEMA_NSID: 5, LENS_NSID: 1, LABEL_NSID: 2, f"{NS}.lensVerification": 0}
    assert set(described["availableCollections"]) == set(described["recordCount"])


def test_resolve_handle(client, indexed):
    assert call(client, "com.atproto.identity.resolveHandle", handle="ALICE.test") == {"did": REPO}
    assert call(client, "com.atproto.identity.resolveHandle", 404, handle="nobody.test")["error"] == "HandleNotFound"
    assert call(client, "com.atproto.identity.resolveHandle", 400, handle="not a handle")["error"] == "InvalidRequest"


def test_hidden_accounts_are_absent_everywhere(client, indexed, store):
    store.set_account_active(REPO, False)
    assert names(call(client, "searchDatasets", q="digits")["entries"]) == ["bob's digits"]
    assert call(client, "getEntry", 404, uri=f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a")["error"] == "EntryNotFound"
    assert call(client, "resolveSchema", 404, handle="alice.test", schemaId="com.example.image")["error"] == "SchemaNotFound"
    assert call(client, "describeService")["recordCount"][ENTRY_NSID] == 1


def test_health_and_metrics(client, store, indexed):
    store.count("records_indexed", 12)
    store.quarantine("https://pds.test", None, f"at://{REPO}/{ENTRY_NSID}/3kbadbadbad2a", "name: expected a string", None)
    health = client.get("/xrpc/_health").json()
    assert health["store"] == "ok" and health["cursors"]["https://pds.test"]["seq"] == 2
    assert 0 <= health["cursors"]["https://pds.test"]["secondsSinceUpdate"] < 60
    metrics = client.get("/metrics").text
    assert "atdata_appview_records_indexed_total 12" in metrics
    assert "atdata_appview_quarantined_records 1" in metrics
    assert f'atdata_appview_records{{collection="{ENTRY_NSID}"}} 4' in metrics


def test_the_plugins_lexicons_are_registered_with_the_core(client):
    from atdata_core.errors import RecordError
    from atdata_core.plugins import register_lexicon

    for doc in plugin_documents().values():
        with pytest.raises(RecordError, match="already known"):
            register_lexicon(doc)


def test_unknown_methods_and_paths(client):
    assert call(client, "science.alt.dataset.subscribeEverything", 501)["error"] == "MethodNotImplemented"
    assert call(client, "com.atproto.repo.getRecord", 501)["error"] == "MethodNotImplemented"
    assert client.get("/nothing/here").json()["error"] == "NotFound"
    response = client.post(f"/xrpc/{NS}.listEntries", content=b"{}")
    assert response.status_code == 405 and response.json()["error"] == "InvalidRequest"
    assert json.loads(client.get(f"/xrpc/{NS}.describeService").content)["did"]


def _lens(name, source, target, created="2025-03-01T00:00:00Z"):
    code = {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:f"}
    return {"$type": LENS_NSID, "name": name, "sourceSchema": source, "targetSchema": target,
            "getterCode": code, "putterCode": code, "createdAt": created}


def test_lens_path(client, store, make_op, commit):
    a, b, c, d, e = (f"at://{REPO}/{SCHEMA_NSID}/com.example.{x}:1.0.0" for x in "abcde")
    commit(store, [
        make_op(LENS_NSID, "3klensaaaaa2a", _lens("a->b", a, b)),
        make_op(LENS_NSID, "3klensbbbbb2a", _lens("b->c", b, c)),
        make_op(LENS_NSID, "3klensccccc2a", _lens("c->d", c, d)),
        make_op(LENS_NSID, "3klensddddd2a", _lens("a->c old", a, c, "2024-01-01T00:00:00Z")),
        make_op(LENS_NSID, "3klenseeeee2a", _lens("a->c new", a, c, "2025-06-01T00:00:00Z")),
        make_op(LENS_NSID, "3klensfffff2a", _lens("d->a", d, a)),
    ])
    store.set_handle(REPO, "alice.test")
    assert names(call(client, "getLensPath", sourceSchema=a, targetSchema=d)["lenses"]) == ["a->c new", "c->d"]
    assert names(call(client, "getLensPath", sourceSchema=a, targetSchema=b)["lenses"]) == ["a->b"]
    assert names(call(client, "getLensPath", sourceSchema=d, targetSchema=c)["lenses"]) == ["d->a", "a->c new"]
    assert call(client, "getLensPath", sourceSchema=a, targetSchema=a)["lenses"] == []
    by_handle = f"at://alice.test/{SCHEMA_NSID}/com.example.d:1.0.0"
    assert names(call(client, "getLensPath", sourceSchema=a, targetSchema=by_handle)["lenses"]) == ["a->c new", "c->d"]
    assert call(client, "getLensPath", 404, sourceSchema=b, targetSchema=e)["error"] == "NoLensPath"
    assert call(client, "getLensPath", 404, sourceSchema=a, targetSchema=d, maxHops=1)["error"] == "NoLensPath"
    assert call(client, "getLensPath", 400, sourceSchema=a, targetSchema=d, maxHops=9)["error"] == "InvalidRequest"


def test_health_and_metrics_report_ingestion(store):
    from collections import Counter

    from atdata_index_appview.ingest import IngestStatus

    status = IngestStatus()
    status.begin(["https://pds.test"], [], Counter({"records_indexed": 3}))
    with serve_in_thread(create_app(store, ingest_status=status)) as server, httpx.Client(base_url=server.url) as http:
        ingest = http.get("/xrpc/_health").json()["ingest"]
        metrics = http.get("/metrics").text
    assert ingest["running"] is True and [s["url"] for s in ingest["sources"]] == ["https://pds.test"]
    assert 'atdata_appview_ingest_connected{host="https://pds.test"} 0' in metrics
    assert "atdata_appview_ingest_running 1" in metrics
