"""Entry and index statistics through the XRPC API (getEntryStats, getIndexStats), over each store."""

from __future__ import annotations

import httpx
import pytest

from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread

REPO = "did:plc:appviewtests0000000000000"
OTHER = "did:plc:someoneelse00000000000000"
NS = "science.alt.dataset"
IMAGE = f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0"
AUDIO = f"at://{REPO}/{SCHEMA_NSID}/com.example.audio:1.0.0"
TEXT = f"at://{OTHER}/{SCHEMA_NSID}/com.example.text:1.0.0"
MNIST = f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a"
BLOBBY = f"at://{REPO}/{ENTRY_NSID}/3kentrybbbb2a"
ODD = f"at://{REPO}/{ENTRY_NSID}/3kentrycccc2a"
BARE = f"at://{OTHER}/{ENTRY_NSID}/3kentrydddd2a"
PARTLY = f"at://{REPO}/{ENTRY_NSID}/3kentryeeee2a"


def shard(n):
    return {"url": f"https://data.example.com/mnist-{n}.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}


def blob(size):
    return {"blob": {"$type": "blob", "ref": {"$link": "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"},
                     "mimeType": "application/x-tar", "size": size},
            "checksum": {"algorithm": "sha256", "digest": "cd" * 32}}


def entry(name, storage, schema_ref=IMAGE, **extra):
    record = {"$type": ENTRY_NSID, "name": name, "schemaRef": schema_ref, "storage": storage,
              "createdAt": "2025-02-01T00:00:00Z"}
    record.update(extra)
    return record


def lens(name, source, target, created):
    code = {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:f"}
    return {"$type": LENS_NSID, "name": name, "sourceSchema": source, "targetSchema": target,
            "getterCode": code, "putterCode": code, "createdAt": created}


def label(name, dataset, created):
    return {"$type": LABEL_NSID, "name": name, "version": "1.0.0", "datasetUri": dataset, "createdAt": created}


@pytest.fixture
def populated(store, make_op, commit):
    commit(store, [
        make_op(SCHEMA_NSID, "com.example.image:1.0.0", {"$type": SCHEMA_NSID, "name": "com.example.image",
                                                        "version": "1.0.0", "createdAt": "2025-01-01T00:00:00Z"}),
        make_op(SCHEMA_NSID, "com.example.audio:1.0.0", {"$type": SCHEMA_NSID, "name": "com.example.audio",
                                                        "version": "1.0.0", "createdAt": "2025-01-01T00:00:00Z"}),
        make_op(ENTRY_NSID, "3kentryaaaa2a", entry(
            "mnist", {"$type": f"{NS}.storageHttp", "shards": [shard(0), shard(1), shard(2)]},
            size={"samples": 60000, "bytes": 47_000_000, "shards": 3})),
        make_op(ENTRY_NSID, "3kentrybbbb2a", entry("blobby", {"$type": f"{NS}.storageBlobs", "blobs": [blob(10240), blob(2048)]},
                                                   schema_ref=AUDIO)),
        # Another client's storage this AppView cannot read, and figures of the wrong types.
        make_op(ENTRY_NSID, "3kentrycccc2a", entry("odd", {"$type": "com.example.storageTape", "reels": 7},
                                                   size={"samples": "many", "bytes": -5, "shards": 7})),
        # One blob of two states no size: the total is unknown, not the one size added up.
        make_op(ENTRY_NSID, "3kentryeeee2a", entry("partly", {"$type": f"{NS}.storageBlobs",
                                                              "blobs": [blob(10240), {"blob": {"$type": "blob"}}]})),
        make_op(LENS_NSID, "3klensaaaaa2a", lens("image to audio", IMAGE, AUDIO, "2025-03-01T00:00:00Z")),
        make_op(LENS_NSID, "3klensbbbbb2a", lens("image to text", IMAGE, TEXT, "2025-03-02T00:00:00Z")),
        make_op(LENS_NSID, "3klenscccc2a", lens("audio to image", AUDIO, IMAGE, "2025-03-03T00:00:00Z")),
        make_op(LABEL_NSID, "3klabelaaaa2a", label("stable", MNIST, "2025-04-01T00:00:00Z")),
        make_op(LABEL_NSID, "3klabelbbbb2a", label("paper", MNIST, "2025-04-02T00:00:00Z")),
        make_op(LABEL_NSID, "3klabelcccc2a", label("stable", BLOBBY, "2025-04-03T00:00:00Z")),
    ])
    commit(store, [make_op(ENTRY_NSID, "3kentrydddd2a", {"$type": ENTRY_NSID, "name": "bare", "createdAt": "2025-02-01T00:00:00Z"},
                           repo=OTHER)], repo=OTHER)
    store.set_handle(REPO, "alice.test")
    return store


@pytest.fixture
def http(populated):
    with serve_in_thread(create_app(populated, service_did="did:web:appview.test")) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def call(http, method, status=200, **params):
    response = http.get(f"/xrpc/{NS}.{method}", params=params)
    assert response.status_code == status, response.text
    return response.json()


def test_entry_stats_of_a_sharded_entry(http):
    stats = call(http, "getEntryStats", uri=MNIST)
    assert stats["uri"] == MNIST and stats["did"] == REPO and stats["name"] == "mnist" and stats["cid"]
    assert stats["schemaRef"] == IMAGE and stats["storageType"] == f"{NS}.storageHttp"
    assert (stats["shardCount"], stats["totalBytes"], stats["sampleCount"]) == (3, 47_000_000, 60000)
    assert stats["labelCount"] == 2
    assert [(item["name"], item["datasetUri"]) for item in stats["labels"]] == [("paper", MNIST), ("stable", MNIST)]
    assert stats["lensesFromCount"] == 2 and [item["name"] for item in stats["lensesFrom"]] == ["image to text", "image to audio"]
    assert stats["lensesToCount"] == 1 and [item["name"] for item in stats["lensesTo"]] == ["audio to image"]
    assert all(item["uri"].startswith("at://") for item in stats["labels"] + stats["lensesFrom"])


def test_entry_stats_by_handle_and_with_a_limit(http):
    stats = call(http, "getEntryStats", uri=MNIST.replace(REPO, "alice.test"), limit=1)
    assert stats["uri"] == MNIST
    assert stats["labelCount"] == 2 and [item["name"] for item in stats["labels"]] == ["paper"]
    assert stats["lensesFromCount"] == 2 and len(stats["lensesFrom"]) == 1
    counts_only = call(http, "getEntryStats", uri=MNIST, limit=0)
    assert counts_only["labelCount"] == 2 and counts_only["labels"] == [] and counts_only["lensesFrom"] == []


def test_blob_sizes_add_up_when_the_record_states_no_bytes(http):
    stats = call(http, "getEntryStats", uri=BLOBBY)
    assert stats["storageType"] == f"{NS}.storageBlobs"
    assert (stats["shardCount"], stats["totalBytes"]) == (2, 12288)
    assert "sampleCount" not in stats
    assert stats["lensesFromCount"] == 1 and stats["lensesToCount"] == 1
    assert [item["name"] for item in stats["labels"]] == ["stable"]


def test_figures_a_record_does_not_state_are_left_out_not_guessed(http):
    odd = call(http, "getEntryStats", uri=ODD)
    assert odd["storageType"] == "com.example.storageTape"
    assert odd["shardCount"] == 7  # from size.shards: the storage is not one this AppView reads
    assert "totalBytes" not in odd and "sampleCount" not in odd  # a negative size and a string
    bare = call(http, "getEntryStats", uri=BARE)  # no schemaRef, no storage, no size
    assert bare["name"] == "bare" and "schemaRef" not in bare and "storageType" not in bare and "shardCount" not in bare
    assert (bare["labelCount"], bare["lensesFromCount"], bare["lensesToCount"]) == (0, 0, 0)
    partly = call(http, "getEntryStats", uri=PARTLY)
    assert partly["shardCount"] == 2 and "totalBytes" not in partly


@pytest.mark.parametrize("params", [
    {},
    {"uri": "not-a-uri"},
    {"uri": MNIST, "limit": "-1"},
    {"uri": MNIST, "limit": "101"},
    {"uri": MNIST, "limit": "ten"},
    {"uri": MNIST + "\x00"},
    {"uri": "at://" + "a" * 9000},
    {"uri": [MNIST, BLOBBY]},
    {"uri": f"at://{REPO}/{ENTRY_NSID}"},
])
def test_bad_parameters_are_400_in_the_envelope(http, params):
    body = call(http, "getEntryStats", 400, **params)
    assert body["error"] == "InvalidRequest" and body["message"]


def test_what_is_not_an_indexed_entry_is_404(http):
    assert call(http, "getEntryStats", 404, uri=f"at://{REPO}/{ENTRY_NSID}/3knothing2a")["error"] == "EntryNotFound"
    assert call(http, "getEntryStats", 404, uri=IMAGE)["error"] == "EntryNotFound"  # a schema, not an entry
    assert call(http, "getEntryStats", 404, uri=MNIST.replace(REPO, "nobody.test"))["error"] == "EntryNotFound"


def test_index_stats(http, populated, make_op, commit):
    assert call(http, "getIndexStats") == {
        "entries": 5, "schemas": 2, "lenses": 3, "labels": 3, "lensVerifications": 0, "accounts": 2}
    populated.set_account_active(OTHER, False)
    stats = call(http, "getIndexStats", ignored="x")
    assert (stats["entries"], stats["accounts"]) == (4, 1)
