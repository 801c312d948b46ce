"""``atdata_core.load`` without a PDS: records answered by an embedded index, shards over loopback HTTP.

The index is any IndexProvider; here the embedded SQLite one, so these tests
exercise reference parsing, label following, tolerant reads, schema checks and
storage selection on their own. (Against the sandbox PDS: tests/test_federation.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.errors import IncompatibleSchema, MissingImplementation, RecordError, RecordNotFound, ValidationError
from atdata_core.index.sqlite import SqliteIndex, default_path
from atdata_core._loading import Reference, parse_ref, resolve
from atdata_core.plugins import reset_plugins
from atdata_core.schema import schema_record

DID = "did:plc:abcdefghijklmnopqrstuvwx"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/com.example.point:1.0.0"


@packable
class Point:
    x: int
    name: str
    values: np.ndarray


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def catalog(tmp_path, shard_server):
    """An embedded index holding a schema, two entries named 'points' and a label; shards on loopback."""
    folder, base = shard_server
    index = SqliteIndex(tmp_path / "catalog.sqlite")
    index.put_record(SCHEMA_URI, schema_record(Point, name="com.example.point", version="1.0.0"))
    uris = {}
    for rkey, n, created in (("3kaaaaaaaaa2a", 5, "2025-01-01T00:00:00.000Z"), ("3kbbbbbbbbb2a", 2, "2025-02-01T00:00:00.000Z")):
        with ShardWriter(str(folder / f"{rkey}-%03d.tar"), maxcount=2) as sink:
            for i in range(n):
                sink.write(Point(x=i, name=f"p{i}", values=np.arange(i, dtype=np.float32)))
        uri = f"at://{DID}/science.alt.dataset.entry/{rkey}"
        index.put_record(uri, {
            "$type": "science.alt.dataset.entry",
            "name": "points",
            "schemaRef": SCHEMA_URI,
            "storage": {
                "$type": "science.alt.dataset.storageHttp",
                "shards": [
                    {"url": f"{base}/{Path(s.url).name}", "checksum": {"algorithm": "sha256", "digest": s.sha256}}
                    for s in sink.shards
                ],
            },
            "size": {"samples": n, "shards": len(sink.shards), "bytes": sum(s.size for s in sink.shards)},
            "createdAt": created,
        })
        uris[n] = uri
    label_uri = f"at://{DID}/science.alt.dataset.label/3kccccccccc2a"
    index.put_record(label_uri, {"$type": "science.alt.dataset.label", "name": "points", "version": "v1",
                                 "datasetUri": uris[5], "createdAt": "2025-03-01T00:00:00.000Z"})
    return {"index": index, "first": uris[5], "newest": uris[2], "label": label_uri, "base": base}


def test_references_parse():
    assert parse_ref("@alice.test/mnist") == Reference(account="alice.test", name="mnist")
    assert parse_ref("@alice.test/mnist@v2") == Reference(account="alice.test", name="mnist", label="v2")
    assert parse_ref(f"@{DID}/mnist-train") == Reference(account=DID, name="mnist-train")
    assert parse_ref(SCHEMA_URI) == Reference(uri=SCHEMA_URI)
    for bad in ("mnist", "@alice.test", "alice.test/mnist", "@alice.test/a b", "@a/b@c@d"):
        with pytest.raises(ValidationError, match="not a dataset reference"):
            parse_ref(bad)


def test_load_by_name_takes_the_newest_entry_and_by_label_the_labelled_one(catalog):
    index = catalog["index"]
    newest = atdata_core.load(f"@{DID}/points", Point, index=index)
    assert len(newest) == 2
    assert [p.name for p in newest] == ["p0", "p1"]
    labelled = atdata_core.load(f"@{DID}/points@v1", Point, index=index)
    assert len(labelled) == 5
    got = list(labelled)
    assert [p.x for p in got] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(got[3].values, np.arange(3, dtype=np.float32))
    # an at:// URI of the label itself is followed to its entry
    assert resolve(catalog["label"], index=index).entry_uri == catalog["first"]


def test_without_a_class_one_is_built_from_the_schema(catalog):
    ds = atdata_core.load(catalog["first"], index=catalog["index"])
    first = next(iter(ds))
    assert type(first).__name__ == "Point" and type(first) is not Point
    assert (first.x, first.name) == (0, "p0")
    assert first.values.dtype == np.float32


def test_loading_writes_no_local_index_unless_configured(catalog):
    atdata_core.load(catalog["first"], index=catalog["index"])
    assert not default_path().exists()


def test_loaded_records_are_kept_in_the_local_index_when_configured(catalog, monkeypatch):
    monkeypatch.setenv("ATDATA_INDEX_CACHE_LOADED", "true")
    reset_plugins()
    atdata_core.load(catalog["first"], index=catalog["index"])
    local = SqliteIndex(default_path())
    assert local.get_record(catalog["first"]).value["name"] == "points"
    assert local.get_record(SCHEMA_URI).value["version"] == "1.0.0"


def test_the_configured_default_index_answers_load(catalog, monkeypatch):
    # [index] default decides which provider load() asks when none is given.
    monkeypatch.setenv("ATDATA_INDEX_DEFAULT", "sqlite")
    monkeypatch.setenv("ATDATA_INDEX_SQLITE_PATH", catalog["index"].path)
    reset_plugins()
    assert [p.x for p in atdata_core.load(f"@{DID}/points@v1", Point)] == [0, 1, 2, 3, 4]
    monkeypatch.setenv("ATDATA_INDEX_DEFAULT", "nothing-by-that-name")
    reset_plugins()
    with pytest.raises(MissingImplementation, match="nothing-by-that-name"):
        atdata_core.load(f"@{DID}/points@v1", Point)


def test_an_incompatible_class_is_refused(catalog):
    @packable
    class Other:
        x: str

    with pytest.raises(IncompatibleSchema, match="x"):
        atdata_core.load(catalog["first"], Other, index=catalog["index"])


def test_missing_records(catalog):
    index = catalog["index"]
    with pytest.raises(RecordNotFound, match="no dataset named 'lines'"):
        atdata_core.load(f"@{DID}/lines", index=index)
    with pytest.raises(RecordNotFound, match="v7"):
        atdata_core.load(f"@{DID}/points@v7", index=index)
    orphan = f"at://{DID}/science.alt.dataset.entry/3kddddddddd2a"
    value = dict(index.get_record(catalog["first"]).value,
                 schemaRef=f"at://{DID}/science.alt.dataset.schema/com.example.gone:1.0.0")
    index.put_record(orphan, value)
    with pytest.raises(RecordNotFound, match="com.example.gone"):
        atdata_core.load(orphan, index=index)


def test_an_unknown_storage_kind_is_named(catalog):
    index = catalog["index"]
    uri = f"at://{DID}/science.alt.dataset.entry/3keeeeeeeee2a"
    value = dict(index.get_record(catalog["first"]).value,
                 storage={"$type": "com.example.storagePigeon", "coops": ["north"]})
    index.put_record(uri, value)
    with pytest.raises(MissingImplementation, match="com.example.storagePigeon"):
        atdata_core.load(uri, index=index)


def test_deviations_in_the_wild_are_read_with_a_warning(catalog, caplog):
    index = catalog["index"]
    uri = f"at://{DID}/science.alt.dataset.entry/3kfffffffff2a"
    value = dict(index.get_record(catalog["first"]).value, metadata={"from": "another client"},
                 description="d" * 6000)
    index.put_record(uri, value)
    with caplog.at_level(logging.WARNING, logger="atdata_core.load"):
        resolved = resolve(uri, index=index)
        assert len(list(atdata_core.load(uri, Point, index=index))) == 5
        assert len(list(atdata_core.load(uri, Point, index=index))) == 5
    assert resolved.warnings
    # Logged once per record and deviation, through the atdata_core logger, however often it loads.
    about_description = [r for r in caplog.records if "$.description" in r.getMessage()]
    assert len(about_description) == 1
    assert about_description[0].name.startswith("atdata_core")


def test_a_name_only_labels_know_is_found_through_the_label(catalog):
    index = catalog["index"]
    index.put_record(f"at://{DID}/science.alt.dataset.label/3kggggggggg2a", {
        "$type": "science.alt.dataset.label", "name": "pts", "datasetUri": catalog["newest"],
        "createdAt": "2025-04-01T00:00:00.000Z",
    })
    assert resolve(f"@{DID}/pts", index=index).entry_uri == catalog["newest"]


def test_an_index_named_by_configuration(catalog, monkeypatch):
    monkeypatch.setenv("ATDATA_INDEX_SQLITE_PATH", catalog["index"].path)
    reset_plugins()
    assert [p.x for p in atdata_core.load(f"@{DID}/points@v1", Point, index="sqlite")] == [0, 1, 2, 3, 4]


def test_shards_without_a_sha256_are_read_with_a_warning(catalog, caplog):
    index = catalog["index"]
    value = dict(index.get_record(catalog["newest"]).value)
    shards = [dict(s, checksum={"algorithm": "md5", "digest": "00" * 16}) for s in value["storage"]["shards"]]
    uri = f"at://{DID}/science.alt.dataset.entry/3khhhhhhhhh2a"
    index.put_record(uri, dict(value, storage=dict(value["storage"], shards=shards)))
    with caplog.at_level(logging.WARNING, logger="atdata_core.load"):
        ds = atdata_core.load(uri, Point, index=index)
    assert any("no sha256 to verify" in message for message in caplog.messages)
    assert len(list(ds)) == 2


def test_a_uri_of_another_kind_of_record_is_refused(catalog):
    with pytest.raises(RecordError, match="is a science.alt.dataset.schema record, not a dataset entry"):
        atdata_core.load(SCHEMA_URI, index=catalog["index"])


def test_len_of_an_entry_without_a_recorded_count_points_to_count(catalog):
    index = catalog["index"]
    value = dict(index.get_record(catalog["first"]).value)
    del value["size"]
    uri = f"at://{DID}/science.alt.dataset.entry/3kiiiiiiiii2a"
    index.put_record(uri, value)
    ds = atdata_core.load(uri, Point, index=index)
    with pytest.raises(TypeError, match=f"the entry {uri} records no sample count.*ds.count()"):
        len(ds)
    assert ds.count() == 5
    assert len(ds) == 5
