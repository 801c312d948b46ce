"""The store conformance suite: the SQLite and the PostgreSQL store, the same tests.

Every test here runs against both (the ``store`` fixture), so the stores agree
on what is written in one transaction, what matches a search, how results are
ranked and how pages are cut.
"""

from __future__ import annotations

import json
import threading

import pytest

from atdata_core.errors import RecordNotFound
from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID, select_label, select_schema

from atdata_index_appview.ingest import CommitBatch, IngestStore
from atdata_index_appview.store import StoreError, decode_cursor, encode_cursor, open_store, search_words
from atdata_index_appview.store._model import record_json

REPO = "did:plc:appviewtests0000000000000"
OTHER = "did:plc:someoneelse00000000000000"
SCHEMA_URI = f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0"


def schema(name="com.example.image", version="1.0.0", created="2025-01-01T00:00:00Z", **extra):
    record = {
        "$type": SCHEMA_NSID, "name": name, "version": version, "schemaType": "jsonSchema",
        "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat", "$schema": "http://json-schema.org/draft-07/schema#",
                   "type": "object", "properties": {"label": {"type": "string"}}},
        "createdAt": created,
    }
    record.update(extra)
    return record


def entry(name, created="2025-02-01T00:00:00Z", tags=(), description=None, schema_ref=SCHEMA_URI, **extra):
    record = {
        "$type": ENTRY_NSID, "name": name, "schemaRef": schema_ref,
        "storage": {"$type": "science.alt.dataset.storageHttp",
                    "shards": [{"url": "https://data.example.com/a.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
        "createdAt": created,
    }
    if tags:
        record["tags"] = list(tags)
    if description is not None:
        record["description"] = description
    record.update(extra)
    return record


def uris(page):
    return [record.uri for record in page.records]


def every_page(fetch, limit):
    """All records of a listing, page by page, through encoded cursors."""
    seen, after, pages = [], None, 0
    while True:
        page = fetch(after=after, limit=limit)
        seen.extend(page.records)
        pages += 1
        assert pages < 1000
        if page.next is None:
            return seen
        ranked = page.next.score is not None
        after = decode_cursor(encode_cursor(page.next), ranked=ranked)


# ---------------------------------------------------------------------------- opening and migrations


def test_a_store_is_an_ingest_store_at_the_latest_schema_version(store):
    assert isinstance(store, IngestStore)
    assert store.schema_version() == store.migrations[-1][0]


def test_reopening_keeps_what_was_written(store_url, make_op, commit):
    with open_store(store_url) as first:
        commit(first, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("mnist"))], seq=7)
    with open_store(store_url) as second:
        assert second.cursor("https://pds.test") == 7
        assert second.get(f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a").value["name"] == "mnist"


def test_a_store_migrated_by_a_newer_version_is_refused(store_url):
    with open_store(store_url) as opened:
        with opened._write() as db:
            db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (999, "future", "now"))
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_store_urls():
    from atdata_index_appview.store import parse_store_url

    assert parse_store_url("sqlite:///rel/a.db") == ("sqlite", "rel/a.db")
    assert parse_store_url("sqlite:////abs/a.db") == ("sqlite", "/abs/a.db")
    assert parse_store_url("/abs/a.db") == ("sqlite", "/abs/a.db")
    assert parse_store_url("postgresql://u:p@db:5432/x") == ("postgresql", "postgresql://u:p@db:5432/x")
    for bad in ("", "mysql://x/y", "sqlite://", "postgresql:///nohost"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


# ---------------------------------------------------------------------------- the write side


def test_records_are_kept_as_published(store, make_op, commit):
    record = entry("mnist", description="digits ✍ \u0000 and a NUL", metadata={"$bytes": "gaFhAQ"}, extra={"z": 1, "a": [1, 2]})
    op = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", record)
    commit(store, [op])
    found = store.get(op.uri)
    assert found.json == record_json(record)  # the JSON text, byte for byte
    assert list(found.value) == list(record)  # keys in the record's order
    assert found.value == record
    assert found.cid == op.cid
    assert store.raw(op.uri) == op.raw  # the DAG-CBOR block as published


def test_apply_moves_rev_and_cursor_with_the_records(store, make_op, commit):
    batch = commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("a"))], seq=41, rev="3laaaaaaaaa2a")
    assert store.cursor(batch.source) == 41
    assert store.repo_rev(REPO) == "3laaaaaaaaa2a"
    assert store.cursor("https://elsewhere.test") is None
    assert store.repo_rev(OTHER) is None


def test_a_batch_is_one_transaction(store, make_op, commit, monkeypatch):
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("before"))], seq=1, rev="3laaaaaaaaa2a")
    original = type(store)._apply_op
    calls = []

    def failing(self, db, did, op, *rest):
        calls.append(op.uri)
        if len(calls) == 2:
            raise RuntimeError("the disk is gone")
        return original(self, db, did, op, *rest)

    monkeypatch.setattr(type(store), "_apply_op", failing)
    ops = [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("first")), make_op(ENTRY_NSID, "3kccccccccc2a", entry("second")),
           make_op(ENTRY_NSID, "3kaaaaaaaaa2a", None)]
    with pytest.raises(RuntimeError):
        commit(store, ops, seq=2, rev="3lbbbbbbbbb2a")
    monkeypatch.undo()
    assert store.cursor("https://pds.test") == 1
    assert store.repo_rev(REPO) == "3laaaaaaaaa2a"
    assert store.get(ops[0].uri) is None
    assert store.get(f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a").value["name"] == "before"


def test_update_replaces_and_delete_removes(store, make_op, commit):
    uri = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("old", tags=["x"])).uri
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("old", tags=["x"]))])
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("new", tags=["y"]), action="update")])
    assert store.get(uri).value["name"] == "new"
    assert uris(store.list_records(ENTRY_NSID, tags=["x"])) == []
    assert uris(store.list_records(ENTRY_NSID, tags=["y"])) == [uri]
    assert uris(store.search_entries(search_words("old"))) == []
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", None)])
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", None)])  # a delete of nothing is a no-op
    assert store.get(uri) is None
    assert uris(store.search_entries(search_words("new"))) == []
    assert store.record_counts() == {}


def test_replaying_a_commit_changes_nothing(store, make_op, commit):
    op = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("mnist", tags=["vision"]))
    batch = commit(store, [op], seq=5)
    store.apply(batch)
    store.apply(batch)
    assert uris(store.list_records(ENTRY_NSID)) == [op.uri]
    assert uris(store.list_records(ENTRY_NSID, tags=["vision"])) == [op.uri]
    assert uris(store.search_entries(search_words("mnist"))) == [op.uri]


def test_a_batch_older_than_the_repository_is_skipped_but_moves_the_cursor(store, make_op, commit):
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("current"))], seq=10, rev="3lzzzzzzzzz2a")
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("stale"))], seq=11, rev="3laaaaaaaaa2a")
    assert store.get(f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a").value["name"] == "current"
    assert store.repo_rev(REPO) == "3lzzzzzzzzz2a"
    assert store.cursor("https://pds.test") == 11


def test_a_backfill_batch_leaves_the_cursor(store, make_op, commit):
    commit(store, [], seq=3)
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("x"))], seq=None)
    assert store.cursor("https://pds.test") == 3
    assert store.get(f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a") is not None
    store.advance("https://pds.test", 9)
    assert store.cursor("https://pds.test") == 9


def test_a_snapshot_removes_what_the_repository_no_longer_holds(store, make_op, commit):
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("a")), make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("b"))])
    commit(store, [make_op(ENTRY_NSID, "3kccccccccc2a", entry("c"), repo=OTHER)], repo=OTHER)
    commit(store, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("b2"))], seq=None, snapshot=True)
    assert [r.value["name"] for r in store.list_records(ENTRY_NSID).records] == ["c", "b2"]


def test_operations_on_another_repository_or_malformed_uris_are_skipped(store, make_op, commit):
    stranger = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("not yours"), repo=OTHER)
    malformed = make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("x"))
    malformed = type(malformed)(action="create", uri="at:/nonsense", cid=None, record=entry("x"), raw=None)
    commit(store, [stranger, malformed, make_op(ENTRY_NSID, "3kccccccccc2a", entry("mine"))], seq=4)
    assert [r.value["name"] for r in store.list_records(ENTRY_NSID).records] == ["mine"]
    assert store.cursor("https://pds.test") == 4


def test_handles(store):
    store.set_handle(REPO, "Alice.Test")
    assert store.did_for_handle("alice.test") == REPO
    assert store.did_for_handle("@ALICE.test") == REPO
    assert store.handle_of(REPO) == "Alice.Test"
    store.set_handle(OTHER, "alice.test")  # the handle moved to another account
    assert store.did_for_handle("alice.test") == OTHER
    assert store.handle_of(REPO) is None
    store.set_handle(OTHER, None)
    assert store.did_for_handle("alice.test") is None
    assert store.did_for_handle("") is None


def test_handles_set_together_apply_in_order(store):
    third = "did:plc:cccccccccccccccccccccccc"
    store.set_handles({REPO: "Alice.Test", OTHER: "bob.test", third: "carol\x00.test"})
    assert store.handle_of(REPO) == "Alice.Test" and store.did_for_handle("bob.test") == OTHER
    assert store.handle_of(third) == "carol.test"  # cleaned as set_handle cleans it
    store.set_handles({REPO: "bob.test", OTHER: "alice.test"})  # swapped: each claim takes the handle
    assert store.did_for_handle("bob.test") == REPO and store.did_for_handle("alice.test") == OTHER
    store.set_handles({REPO: "same.test", OTHER: "same.test"})  # the last claim wins
    assert store.did_for_handle("same.test") == OTHER and store.handle_of(REPO) is None


def test_an_inactive_account_is_hidden_until_active_again(store, make_op, commit):
    op = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("mnist", tags=["vision"]))
    commit(store, [op])
    store.set_account_active(REPO, False)
    assert store.get(op.uri) is None
    assert uris(store.list_records(ENTRY_NSID)) == []
    assert uris(store.search_entries(search_words("mnist"))) == []
    later = make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("later"))
    commit(store, [later])  # written while inactive: hidden too
    assert store.get(later.uri) is None
    assert store.record_counts() == {}
    store.set_account_active(REPO, True)
    assert set(uris(store.list_records(ENTRY_NSID))) == {op.uri, later.uri}


def test_quarantine(store, make_op, commit):
    op = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("valid first"))
    commit(store, [op], seq=1)
    store.quarantine("https://pds.test", 2, op.uri, "name: expected a string", b"\xa1")
    assert store.get(op.uri) is None  # the invalid version replaced it
    assert store.cursor("https://pds.test") == 2
    store.quarantine("https://pds.test", None, op.uri, "still invalid", None)
    assert store.cursor("https://pds.test") == 2
    assert store.quarantine_size() == 1
    assert store.quarantined()[0]["reason"] == "still invalid"
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("valid again"))], seq=3)
    assert store.quarantine_size() == 0
    store.quarantine("src\x00", 4, "at://x\x00", "reason with \x00 NUL", None)  # kept, without NULs
    assert store.quarantine_size() == 1


def test_counts(store):
    store.count("records_indexed", 3)
    store.count("records_indexed")
    store.count("bad_signature", 2)
    assert store.stats() == {"records_indexed": 4, "bad_signature": 2}


def test_reads_while_ingestion_writes(store, make_op):
    errors = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                store.search_entries(search_words("dataset"), limit=5)
                store.list_records(ENTRY_NSID, limit=5)
            except Exception as err:  # noqa: BLE001
                errors.append(err)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for i in range(60):
            store.apply(CommitBatch(source="s", seq=i, did=REPO, rev=f"3l{i:011d}",
                                    ops=(make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"dataset {i}")),)))
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
    assert errors == []
    assert len(every_page(lambda **kw: store.list_records(ENTRY_NSID, **kw), 25)) == 60


# ---------------------------------------------------------------------------- listing


@pytest.fixture
def population(store, make_op, commit):
    """Schemas, entries, lenses and labels of two accounts."""
    commit(store, [
        make_op(SCHEMA_NSID, "com.example.image:1.0.0", schema(created="2025-01-01T00:00:00Z", metadata={"tags": ["images"]})),
        make_op(SCHEMA_NSID, "com.example.image:1.10.0", schema(version="1.10.0", created="2025-01-02T00:00:00Z")),
        make_op(SCHEMA_NSID, "com.example.image:1.2.0", schema(version="1.2.0", created="2025-01-03T00:00:00Z")),
        make_op(SCHEMA_NSID, "3kschemaaaa2a", schema(name="com.example.audio", version="2.0.0", created="2025-01-04T00:00:00Z")),
        make_op(ENTRY_NSID, "3kentryaaaa2a", entry("MNIST train", "2025-02-01T00:00:00Z", ["vision", "digits"], "Handwritten digits")),
        make_op(ENTRY_NSID, "3kentrybbbb2a", entry("speech-commands", "2025-02-02T00:00:00Z", ["audio"], "Spoken digits, MNIST-like")),
        make_op(ENTRY_NSID, "3kentrycccc2a", entry("cifar-10", "2025-02-03T00:00:00Z", ["vision"])),
        make_op(LENS_NSID, "3klensaaaaa2a", {"$type": LENS_NSID, "name": "image to audio", "sourceSchema": SCHEMA_URI,
                                             "targetSchema": "at://did:plc:x/science.alt.dataset.schema/b:1.0.0",
                                             "createdAt": "2025-03-01T00:00:00Z"}),
        make_op(LABEL_NSID, "3klabelaaaa2a", {"$type": LABEL_NSID, "name": "stable", "version": "1.0.0",
                                              "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a", "createdAt": "2025-03-01T00:00:00Z"}),
        make_op(LABEL_NSID, "3klabelbbbb2a", {"$type": LABEL_NSID, "name": "stable", "version": "2.0.0",
                                              "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3kentrycccc2a", "createdAt": "2025-03-02T00:00:00Z"}),
    ])
    commit(store, [make_op(ENTRY_NSID, "3kentrydddd2a", entry("other people's digits", "2025-02-04T00:00:00Z", ["vision"], repo=OTHER), repo=OTHER)],
           repo=OTHER)
    return store


def names(records):
    return [record.value["name"] for record in records]


def test_listing_is_newest_first(population):
    assert names(population.list_records(ENTRY_NSID).records) == [
        "other people's digits", "cifar-10", "speech-commands", "MNIST train"]
    assert names(population.list_records(ENTRY_NSID, did=REPO).records) == ["cifar-10", "speech-commands", "MNIST train"]
    assert population.list_records(ENTRY_NSID, did="did:plc:nobody").records == ()


def test_listing_filters(population):
    assert names(population.list_records(ENTRY_NSID, tags=["vision", "digits"]).records) == ["MNIST train"]
    assert names(population.list_records(ENTRY_NSID, tags=["vision"], did=REPO).records) == ["cifar-10", "MNIST train"]
    assert names(population.list_records(SCHEMA_NSID, tags=["images"]).records) == ["com.example.image"]  # metadata.tags
    assert names(population.list_records(ENTRY_NSID, query="mnist").records) == ["speech-commands", "MNIST train"]
    assert names(population.list_records(ENTRY_NSID, query="DIGITS, mnist").records) == ["speech-commands"]  # a phrase
    assert names(population.list_records(LENS_NSID, ref_a=SCHEMA_URI).records) == ["image to audio"]
    assert names(population.list_records(LENS_NSID, ref_b=SCHEMA_URI).records) == []
    assert names(population.list_records(ENTRY_NSID, ref_a="at://nothing").records) == []


def test_listing_pages_return_every_record_once(store, make_op, commit):
    # Many records with the same createdAt: the URI breaks the tie, so no page boundary loses or repeats one.
    ops = [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}", "2025-05-05T00:00:00Z" if i % 3 else "2025-05-06T00:00:00Z"))
           for i in range(53)]
    commit(store, ops)
    for limit in (1, 7, 50, 100):
        seen = every_page(lambda **kw: store.list_records(ENTRY_NSID, **kw), limit)
        assert sorted(r.uri for r in seen) == sorted(op.uri for op in ops)
        assert len(seen) == 53


def test_times_in_other_zones_sort_by_the_moment(store, make_op, commit):
    commit(store, [
        make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("noon utc", "2025-01-01T12:00:00Z")),
        make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("earlier, east", "2025-01-01T13:00:00+02:00")),
        make_op(ENTRY_NSID, "3kccccccccc2a", entry("a fraction later", "2025-01-01T12:00:00.5Z")),
        make_op(ENTRY_NSID, "3kddddddddd2a", entry("no usable time", "yesterday")),
    ])
    assert names(store.list_records(ENTRY_NSID).records) == ["a fraction later", "noon utc", "earlier, east", "no usable time"]


def test_resolution_candidates(population):
    found = select_schema([r.indexed() for r in population.schema_candidates(REPO, "com.example.image")], REPO, "com.example.image")
    assert found.value["version"] == "1.10.0"  # semver, not string order
    audio = population.schema_candidates(REPO, "com.example.audio")
    assert [r.rkey for r in audio] == ["3kschemaaaa2a"]  # another client's key, found by name
    assert population.schema_candidates(OTHER, "com.example.image") == []
    labels = [r.indexed() for r in population.label_candidates(REPO, "stable")]
    assert select_label(labels, REPO, "stable").value["version"] == "2.0.0"
    with pytest.raises(RecordNotFound):
        select_label([r.indexed() for r in population.label_candidates(REPO, "nightly")], REPO, "nightly")


def test_record_counts(population):
    assert population.record_counts() == {ENTRY_NSID: 4, SCHEMA_NSID: 4, LENS_NSID: 1, LABEL_NSID: 2}


# ---------------------------------------------------------------------------- search


def test_search_matches_every_word_anywhere(population):
    # The name (10), then a tag and the description (5 + 1), then the description alone (1).
    assert names(population.search_entries(search_words("digits")).records) == [
        "other people's digits", "MNIST train", "speech-commands"]
    assert names(population.search_entries(search_words("digits hand")).records) == ["MNIST train"]
    assert names(population.search_entries(search_words("mnist")).records) == ["MNIST train", "speech-commands"]
    assert names(population.search_entries(search_words("nothing-like-this")).records) == []


def test_search_finds_substrings_and_short_words(population):
    assert names(population.search_entries(search_words("ifar")).records) == ["cifar-10"]
    assert names(population.search_entries(search_words("10")).records) == ["cifar-10"]
    assert names(population.search_entries(search_words("-1")).records) == ["cifar-10"]
    # Every entry's schema is com.example.image: a one-letter word of it matches them all.
    assert len(population.search_entries(search_words("x")).records) == 4


def test_search_by_tag_schema_and_author(population):
    assert names(population.search_entries(search_words("audio")).records) == ["speech-commands"]
    # The schema's name is searched: every entry of com.example.image.
    assert len(population.search_entries(search_words("com.example.image")).records) == 4
    assert names(population.search_entries([], tags=["vision"], did=REPO).records) == ["cifar-10", "MNIST train"]
    assert names(population.search_entries(search_words("digits"), did=OTHER).records) == ["other people's digits"]
    assert names(population.search_entries([], schema_ref="at://nothing").records) == []


def test_ranking(store, make_op, commit):
    commit(store, [
        make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("weather stations", description="global temperature readings")),
        make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("temperature", "2024-01-01T00:00:00Z")),
        make_op(ENTRY_NSID, "3kccccccccc2a", entry("temperatures of oceans")),
        make_op(ENTRY_NSID, "3kddddddddd2a", entry("ocean buoys", tags=["temperature"])),
        make_op(ENTRY_NSID, "3keeeeeeeee2a", entry("ocean floats", tags=["sea-temperature"])),
        make_op(ENTRY_NSID, "3kfffffffff2a", entry("climate", schema_ref=f"at://{REPO}/{SCHEMA_NSID}/org.temperature.reading:1.0.0")),
    ])
    ranked = store.search_entries(search_words("Temperature"))
    assert names(ranked.records) == [
        "temperature",             # the whole name (10 + 20), though the oldest
        "temperatures of oceans",  # within the name (6)
        "ocean buoys",             # a whole tag (5)
        "ocean floats",            # within a tag (3)
        "climate",                 # the schema's name (2)
        "weather stations",        # the description (1)
    ]
    assert [r.score for r in ranked.records] == [30, 6, 5, 3, 2, 1]
    # Word by word: a whole word of the name and a whole tag (10 + 5), a whole word and a piece of a
    # tag (10 + 3), two pieces of the name (6 + 6).
    both = store.search_entries(search_words("ocean temperature")).records
    assert names(both) == ["ocean buoys", "ocean floats", "temperatures of oceans"]
    assert [r.score for r in both] == [15, 13, 12]


def test_ranked_pages_return_every_match_once_while_records_arrive(store, make_op, commit):
    ops = []
    for i in range(40):
        name = ["galaxy survey", "galaxy", "survey of galaxies", "stars"][i % 4]
        ops.append(make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"{name} {i}", f"2025-0{1 + i % 5}-01T00:00:00Z",
                                                              tags=["galaxy"] if i % 3 == 0 else [])))
    commit(store, ops)
    expected = {r.uri for r in store.search_entries(search_words("galax"), limit=100).records}
    assert len(expected) == 34  # 30 by name, 4 "stars" by their tag
    seen, after, new = [], None, 0
    while True:
        page = store.search_entries(search_words("galax"), after=after, limit=4)
        seen.extend(r.uri for r in page.records)
        # Records arriving between pages, scoring above, between and below what was returned.
        commit(store, [make_op(ENTRY_NSID, f"3n{new:011d}", entry(f"galaxy {new}", "2026-01-01T00:00:00Z"))])
        new += 1
        if page.next is None:
            break
        after = decode_cursor(encode_cursor(page.next), ranked=True)
    assert len(seen) == len(set(seen))
    assert expected <= set(seen)


def test_words_too_common_to_score_page_newest_first(store, make_op, commit, monkeypatch):
    ops = [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"{'galaxy' if i % 2 else 'galaxy survey'} {i}",
                                                     f"2025-0{1 + i % 5}-01T00:00:00Z", tags=["sky"] if i % 3 else []))
           for i in range(30)]
    ops.append(make_op(ENTRY_NSID, "3kzzzzzzzzz2a", entry("stars", tags=["survey"])))
    commit(store, ops)
    monkeypatch.setattr(store, "scored_matches", 10)
    # "galaxy" is in 30 records, over the limit: newest first, as a search without words, each scoring 0.
    common = store.search_entries(search_words("galaxy"), limit=100).records
    assert [r.uri for r in common] == [r.uri for r in store.list_records(ENTRY_NSID, limit=100).records if "galaxy" in r.value["name"]]
    assert len(common) == 30 and all(r.score == 0 for r in common)
    ranked = store.search_entries(search_words("stars"), limit=100).records
    assert names(ranked) == ["stars"] and ranked[0].score == 30  # a rare word is still scored
    # Pages keep the order the first page was cut in, while records arrive between them.
    seen, after, new = [], None, 0
    while True:
        page = store.search_entries(search_words("galaxy"), tags=["sky"], after=after, limit=4)
        seen.extend(page.records)
        commit(store, [make_op(ENTRY_NSID, f"3n{new:011d}", entry(f"galaxy {new}", "2024-01-01T00:00:00Z", tags=["sky"]))])
        new += 1
        if page.next is None:
            break
        after = decode_cursor(encode_cursor(page.next), ranked=True)
    assert len({r.uri for r in seen}) == len(seen) and all(r.score == 0 for r in seen)
    assert [r.value["createdAt"] for r in seen] == sorted((r.value["createdAt"] for r in seen), reverse=True)
    assert {r.uri for r in seen} >= {r.uri for r in common if "sky" in r.value.get("tags", [])}


@pytest.mark.parametrize("text", [
    "%", "_", "\\", "%%", "a%b", "50%", "under_score", "\\%", "'", "''", "\"", "\"\"", "' OR 1=1 --", "\"; DROP TABLE records; --",
    "*", "mni*", "NEAR(a b)", "a AND b", "a OR b", "NOT a", "-a", "^a", "a:b", "name:mnist", "(", ")", "{a}", "[a]",
    "a\"b", "\u0000", "\ufffd", "\U0001f600", "é", "\u200b", "a" * 5000,
])
def test_hostile_search_text_is_only_text(store, make_op, commit, text):
    commit(store, [
        make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry(f"literal {text} inside")),
        make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("plain dataset")),
    ])
    words = search_words(text)
    found = names(store.search_entries(words).records)
    listed = names(store.list_records(ENTRY_NSID, query=text).records)
    if words:
        assert "plain dataset" not in found or all(w in "plain dataset" for w in words)
        assert f"literal {text} inside" in found or "\x00" in text
    assert "plain dataset" not in listed or text.replace("\x00", "").casefold() in "plain dataset"


def test_wildcards_do_not_match_anything_else(population):
    assert names(population.search_entries(search_words("%")).records) == []
    assert names(population.search_entries(search_words("_")).records) == []
    assert names(population.list_records(ENTRY_NSID, query="%").records) == []
    assert names(population.list_records(ENTRY_NSID, query="c_far").records) == []


def test_case_is_folded_in_every_script(store, make_op, commit):
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("ÄPFEL und Straße", description="ΣΟΦΊΑ"))])
    for text in ("äpfel", "STRASSE", "straße", "σοφία"):
        assert names(store.search_entries(search_words(text)).records) == ["ÄPFEL und Straße"], text
    assert names(store.list_records(ENTRY_NSID, query="äpfel UND").records) == ["ÄPFEL und Straße"]


def test_too_many_words():
    with pytest.raises(ValueError):
        search_words(" ".join(f"w{i}" for i in range(100)))
    assert search_words("a a a A") == ["a"]


def test_hostile_records_are_stored_and_searchable(store, make_op, commit):
    hostile = [
        entry(123, tags=[1, None, "ok"]),  # wrong types: kept, matched as nothing
        {"$type": ENTRY_NSID},  # nothing but a type
        entry("x" * 200_000, description="y" * 200_000),  # past every limit
        entry("tags galore", tags=[f"t{i}" for i in range(5000)] + ["z" * 10_000]),
        entry("nul\x00name", tags=["nul\x00tag"], description="\x00"),
        entry("weird time", created="9999-99-99T99:99:99Z"),
        entry("nested", metadata={"a": {"b": {"c": [[[[]]]]}}}),
    ]
    commit(store, [make_op(ENTRY_NSID, f"3k{i:011d}", record) for i, record in enumerate(hostile)])
    assert len(every_page(lambda **kw: store.list_records(ENTRY_NSID, **kw), 3)) == len(hostile)
    assert names(store.search_entries(search_words("galore")).records) == ["tags galore"]
    assert names(store.search_entries([], tags=["t0"]).records) == ["tags galore"]
    # At most 100 tags of a record are indexed (the lexicon allows 30): a flood of tags costs little.
    assert names(store.search_entries([], tags=["t4999"]).records) == []
    assert names(store.search_entries(search_words("nulname")).records) == ["nul\x00name"]
    assert names(store.search_entries([], tags=["ok"]).records) == [123]


def test_an_entry_is_found_by_the_name_of_its_schema_whenever_that_arrives(store, make_op, commit):
    ref = f"at://{REPO}/{SCHEMA_NSID}/3kschemaaaa2a"  # a TID key: the name only comes with the schema record
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("readings", schema_ref=ref))])
    assert names(store.search_entries(search_words("org.example.weather")).records) == []
    commit(store, [make_op(SCHEMA_NSID, "3kschemaaaa2a", schema(name="org.example.weather"))])
    assert names(store.search_entries(search_words("weather")).records) == ["readings"]
    commit(store, [make_op(SCHEMA_NSID, "3kschemaaaa2a", None)])
    assert names(store.search_entries(search_words("weather")).records) == []


def test_cursors_refuse_what_this_store_did_not_make():
    from atdata_index_appview.store import PageKey

    key = PageKey(sort_time="2025-01-01T00:00:00.000000Z", uri="at://x/y/z", score=3)
    assert decode_cursor(encode_cursor(key), ranked=True) == key
    listing = PageKey(sort_time="", uri="at://x/y/z")
    assert decode_cursor(encode_cursor(listing), ranked=False) == listing
    for bad in ("", "!!!", "a" * 20_000, "bnVsbA", "WzEsbnVsbF0", encode_cursor(key).upper()):
        with pytest.raises(ValueError):
            decode_cursor(bad, ranked=True)
    with pytest.raises(ValueError):
        decode_cursor(encode_cursor(key), ranked=False)
    with pytest.raises(ValueError):
        decode_cursor(encode_cursor(listing), ranked=True)
    import base64

    for body in ([1, -1, "", "u"], [1, True, "", "u"], [1, 2**40, "", "u"], [2, 0, "", "u"], [1, 0, 5, "u"], [1, 0, "", "\u0000"]):
        text = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        with pytest.raises(ValueError):
            decode_cursor(text, ranked=True)


def test_a_search_without_words_pages_in_time_order(store, make_op, commit):
    ops = [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}", f"2025-03-0{1 + i % 3}T00:00:00Z", tags=["t"] if i % 2 else []))
           for i in range(41)]
    commit(store, ops)
    seen = every_page(lambda **kw: store.search_entries([], tags=["t"], **kw), 6)
    assert [r.uri for r in seen] == [r.uri for r in store.list_records(ENTRY_NSID, tags=["t"], limit=100).records]
    assert len(seen) == 20 and all(r.score == 0 for r in seen)


def test_apply_many_is_one_transaction_of_several_commits(store, make_op, monkeypatch):
    batches = [CommitBatch(source="https://pds.test", seq=10 + i, did=REPO, rev=f"3l{i:011d}",
                           ops=(make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}")),)) for i in range(5)]
    store.apply_many(batches)
    assert store.cursor("https://pds.test") == 14 and store.repo_rev(REPO) == "3l00000000004"
    assert len(store.list_records(ENTRY_NSID).records) == 5
    original = type(store)._apply_op

    def failing(self, db, did, op, *rest):
        if op.uri.endswith("3n00000000002"):
            raise RuntimeError("the disk is gone")
        return original(self, db, did, op, *rest)

    monkeypatch.setattr(type(store), "_apply_op", failing)
    more = [CommitBatch(source="https://pds.test", seq=20 + i, did=REPO, rev=f"3m{i:011d}",
                        ops=(make_op(ENTRY_NSID, f"3n{i:011d}", entry(f"e{i}")),)) for i in range(4)]
    with pytest.raises(RuntimeError):
        store.apply_many(more)
    assert store.cursor("https://pds.test") == 14
    assert len(store.list_records(ENTRY_NSID).records) == 5


def test_a_word_is_found_within_any_word_of_the_text_however_long(store, make_op, commit):
    long_word = "x" * 3000 + "needle" + "y" * 3000  # longer than an index entry may be
    first = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("first", description=f"alpha\t{long_word}\nbeta"))
    commit(store, [first, make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("second needles"))])
    assert sorted(names(store.search_entries(search_words("needle")).records)) == ["first", "second needles"]
    assert names(store.search_entries(search_words("xneedley")).records) == ["first"]
    assert names(store.search_entries(search_words("needle alpha")).records) == ["first"]
    assert names(store.list_records(ENTRY_NSID, query="alpha\txxx").records) == ["first"]  # a phrase with white space
    assert names(store.search_entries(search_words("beta\txxx")).records) == ["first"]  # two words
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("first", description="nothing here"), action="update")])
    assert names(store.search_entries(search_words("needle")).records) == ["second needles"]
    commit(store, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", None)])
    assert names(store.search_entries(search_words("needle")).records) == []
    assert names(store.search_entries(search_words("nothing")).records) == ["first"]


def test_commits_written_together_read_as_written_one_at_a_time(store_url, make_op):
    """apply_many of commits that create, update, delete and recreate records, bring an entry's schema,
    and replay an older commit leaves what applying them one at a time leaves, change log included."""
    other = "did:plc:appviewtestsother00000000"
    ref = f"at://{other}/{SCHEMA_NSID}/org.example.weather:1.0.0"

    def batches():
        def batch(seq, did, rev, *ops, **extra):
            return CommitBatch(source="https://pds.test", seq=seq, did=did, rev=rev, ops=ops, **extra)

        return [
            batch(1, REPO, "3l00000000001", make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("alpha", tags=["x", "y"])),
                  make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("beta", tags=["y"]))),
            batch(2, REPO, "3l00000000002",
                  make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("alpha two", tags=["z"]), action="update"),
                  make_op(ENTRY_NSID, "3kbbbbbbbbb2a", None),
                  make_op(ENTRY_NSID, "3kccccccccc2a", entry("gamma", schema_ref=ref))),
            batch(3, other, "3l00000000003", make_op(SCHEMA_NSID, "org.example.weather:1.0.0",
                                                     schema(name="org.example.weather"), repo=other)),
            batch(4, REPO, "3l00000000004", make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("beta again", tags=["w"]))),
            batch(5, REPO, "3l00000000001", make_op(ENTRY_NSID, "3kddddddddd2a", entry("stale"))),  # older: skipped
            batch(6, other, "3l00000000006", make_op(ENTRY_NSID, "3keeeeeeeee2a", entry("epsilon", tags=["x"]), repo=other)),
            batch(None, other, "3l00000000007", make_op(ENTRY_NSID, "3keeeeeeeee2a", entry("epsilon", tags=["v"]),
                                                        repo=other), snapshot=True),
        ]

    def state(store):
        search = {word: sorted(names(store.search_entries(search_words(word)).records))
                  for word in ("alpha", "beta", "gamma", "weather", "stale", "epsilon")}
        tags = {tag: sorted(names(store.search_entries([], tags=[tag]).records)) for tag in "vwxyz"}
        changes = [(c.action, c.uri, c.value) for c in store.changes_after(0)]
        return (search, tags, changes, store.cursor("https://pds.test"), store.repo_state(REPO), store.repo_state(other),
                store.record_counts())

    with open_store(store_url) as one:
        for item in batches():
            one.apply(item)
        expected = state(one)
    with open_store(store_url) as store:
        with store._write() as db:
            for table in ("records", "record_tags", "changes", "accounts", "cursors"):
                db.run(f"DELETE FROM {table}")
        store.apply_many(batches())
        assert state(store) == expected
    assert expected[0]["weather"] == ["gamma"] and expected[1]["w"] == ["beta again"] and expected[1]["x"] == []
    assert expected[3] == 6 and expected[4][0] == "3l00000000004"


def test_a_schema_written_in_a_run_names_the_entries_before_and_after_it(store, make_op):
    """A schema new to the store goes out with the run's other new records; the entries of the run
    that name it, before it or after it, are searched by its name all the same."""
    ref = f"at://{REPO}/{SCHEMA_NSID}/org.example.tides:1.0.0"

    def batch(seq, *ops):
        return CommitBatch(source="https://pds.test", seq=seq, did=REPO, rev=f"3l0000000000{seq}", ops=ops)

    store.apply_many([
        batch(1, make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("first", schema_ref=ref))),
        batch(2, make_op(SCHEMA_NSID, "org.example.tides:1.0.0", schema(name="Ocean Tides"))),
        batch(3, make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("second", schema_ref=ref))),
    ])
    assert sorted(names(store.search_entries(search_words("ocean tides")).records)) == ["first", "second"]
    assert [c.uri.rsplit("/", 1)[1] for c in store.changes_after(0)] == [
        "3kaaaaaaaaa2a", "org.example.tides:1.0.0", "3kbbbbbbbbb2a"]
    if store.dialect == "sqlite":
        _fts_consistent(store)


# ---------------------------------------------------------------------------- SQLite's text index


def _fts_consistent(store) -> None:
    """FTS5's own check that the text index holds exactly the table's text (raises when not)."""
    with store._write() as db:
        db.run("INSERT INTO records_fts (records_fts) VALUES ('integrity-check')")


def test_the_sqlite_text_index_follows_every_write(store, make_op, commit):
    if store.dialect != "sqlite":
        pytest.skip("SQLite's FTS5 index")
    ref = f"at://{REPO}/{SCHEMA_NSID}/3kschemaaaa2a"
    first = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("alpha", tags=["x"], schema_ref=ref))
    # Written together: a create, an update and a delete of the same record in one transaction.
    last = CommitBatch(source="https://pds.test", seq=3, did=REPO, rev="3l00000000003",
                       ops=(make_op(ENTRY_NSID, "3kbbbbbbbbb2a", None), make_op(ENTRY_NSID, "3kccccccccc2a", entry("delta"))))
    store.apply_many([
        CommitBatch(source="https://pds.test", seq=1, did=REPO, rev="3l00000000001", ops=(first,)),
        CommitBatch(source="https://pds.test", seq=2, did=REPO, rev="3l00000000002",
                    ops=(make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("beta", schema_ref=ref), action="update"),
                         make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("gamma")))),
        last,
    ])
    _fts_consistent(store)
    assert names(store.search_entries(search_words("beta")).records) == ["beta"]
    assert names(store.search_entries(search_words("alpha")).records) == []
    assert names(store.search_entries(search_words("gamma")).records) == []
    store.apply(last)  # a replay: the same rows written again
    commit(store, [make_op(SCHEMA_NSID, "3kschemaaaa2a", schema(name="org.example.weather"))],
           rev="3l00000000004")  # the entry's schema arrives: its text changes
    _fts_consistent(store)
    assert names(store.search_entries(search_words("weather")).records) == ["beta"]
    store.quarantine("https://pds.test", 9, first.uri, "invalid now", None)
    commit(store, [make_op(ENTRY_NSID, "3kddddddddd2a", entry("epsilon"))], seq=None, snapshot=True, rev="3l00000000005")
    _fts_consistent(store)
    assert names(store.search_entries(search_words("delta")).records) == []
    assert names(store.search_entries(search_words("epsilon")).records) == ["epsilon"]


def test_a_sqlite_store_of_an_earlier_version_is_migrated_and_keeps_its_text_index(tmp_path, make_op, commit, monkeypatch):
    from atdata_index_appview.store import sqlite

    url = f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setattr(sqlite.SqliteStore, "migrations", sqlite.MIGRATIONS[:3])
    with open_store(url) as old, old._write() as db:  # rows as version 3 wrote them (its trigger indexed the text)
        for rkey, name, created, tags in (("3kaaaaaaaaa2a", "written before", "2025-02-02T00:00:00.000000Z", ["t"]),
                                          ("3kzzzzzzzzz2a", "older", "2025-01-01T00:00:00.000000Z", ["t", "u"])):
            uri = f"at://{REPO}/{ENTRY_NSID}/{rkey}"
            db.run("INSERT INTO records (uri, did, collection, rkey, value, indexed_at, sort_time, name, name_f, search_f) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (uri, REPO, ENTRY_NSID, rkey, json.dumps(entry(name, created, tags=tags)), created, created, name, name, name))
            db.many("INSERT INTO record_tags (uri, tag) VALUES (?, ?)", [(uri, tag) for tag in tags])
    with open_store(url) as old:
        assert old.schema_version() == 3
    monkeypatch.undo()
    with open_store(url) as new:
        assert new.schema_version() == new.migrations[-1][0]
        commit(new, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("written after")),
                     make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("written before, changed after"), action="update")])
        _fts_consistent(new)
        assert sorted(names(new.search_entries(search_words("written")).records)) == [
            "written after", "written before, changed after"]
        assert names(new.list_records(ENTRY_NSID, tags=["u"]).records) == ["older"]  # tag rows of before, timed
        assert names(every_page(lambda **kw: new.list_records(ENTRY_NSID, tags=["t"], **kw), 1)) == ["older"]


def _migrate_and_capture_look_ups(url, store_class, version, make_op, commit, monkeypatch):
    """Write schemas, a label and an entry named as the label with ``store_class`` at migration
    ``version``, open the store again at the latest (``version + 1``), check that its look-ups find
    what they found, and return it with the look-ups' statements ``(sql, params)``, as run."""
    from atdata_index_appview.store import _sql

    monkeypatch.setattr(store_class, "migrations", store_class.migrations[:version])
    with open_store(url) as old:
        commit(old, [
            make_op(SCHEMA_NSID, "com.example.image:1.0.0", schema()),
            make_op(SCHEMA_NSID, "3kschemaaaa2a", schema(name="com.example.audio", version="2.0.0")),
            make_op(LABEL_NSID, "3klabelaaaa2a", {"$type": LABEL_NSID, "name": "stable", "version": "1.0.0",
                                                  "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a",
                                                  "createdAt": "2025-03-01T00:00:00Z"}),
            make_op(ENTRY_NSID, "3kentryaaaa2a", entry("stable")),  # an entry named as the label is not one
        ])
        assert old.schema_version() == version
    monkeypatch.undo()
    new = open_store(url)
    assert new.schema_version() == version + 1
    commit(new, [make_op(SCHEMA_NSID, "3kschemabbb2a", schema(name="com.example.image", version="1.1.0"))])
    assert sorted(r.rkey for r in new.schema_candidates(REPO, "com.example.image")) == [
        "3kschemabbb2a", "com.example.image:1.0.0"]
    assert [r.rkey for r in new.schema_candidates(REPO, "com.example.audio")] == ["3kschemaaaa2a"]
    assert [r.rkey for r in new.label_candidates(REPO, "stable")] == ["3klabelaaaa2a"]

    statements = []
    real_all = _sql._Db.all
    monkeypatch.setattr(_sql._Db, "all", lambda db, sql, params=(): statements.append((db._sql(sql), params))
                        or real_all(db, sql, params))
    new.schema_candidates(REPO, "com.example.image")
    new.label_candidates(REPO, "stable")
    monkeypatch.undo()
    assert len(statements) == 2
    return new, statements


def test_sqlite_look_ups_by_schema_id_and_name_use_indexes_of_schemas_and_labels_alone(tmp_path, make_op, commit,
                                                                                       monkeypatch):
    """Version 6 makes the look-ups' indexes partial (entries, most of the records, are not in them): a
    store of version 5 migrates, finds what it found, and its look-ups still read only the account's
    records of the collection."""
    from atdata_index_appview.store import sqlite

    new, statements = _migrate_and_capture_look_ups(f"sqlite:///{tmp_path / 'v5.db'}", sqlite.SqliteStore, 5,
                                                    make_op, commit, monkeypatch)
    with new:
        with new._read() as db:
            plans = [" ".join(row[-1] for row in db.all("EXPLAIN QUERY PLAN " + sql, params)) for sql, params in statements]
            partial = [row[0] for row in db.all("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE collection%'")]
    assert sorted(partial) == ["records_by_label_name", "records_by_schema_id", "records_by_schema_name"]
    assert len(plans) == 2
    for plan in plans:  # an account's records of the collection, or the partial indexes: never every record
        assert "SEARCH records USING INDEX" in plan and "SCAN" not in plan, plan


def test_a_postgresql_store_of_an_earlier_version_is_migrated_and_its_text_searchable(pg_server, make_op, commit,
                                                                                        monkeypatch):
    from atdata_index_appview.store import postgres

    url = pg_server.create_database()
    try:
        monkeypatch.setattr(postgres.PostgresStore, "migrations", postgres.MIGRATIONS[:4])
        with open_store(url) as old:  # records written before the text had tables of its own
            commit(old, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("written before", description="alpha\tbeta")),
                         make_op(ENTRY_NSID, "3kzzzzzzzzz2a", entry("older"))])
            assert old.schema_version() == 4
        monkeypatch.undo()
        with open_store(url) as new:
            assert new.schema_version() == new.migrations[-1][0]
            assert names(new.search_entries(search_words("efore")).records) == ["written before"]
            assert names(new.search_entries(search_words("lph")).records) == ["written before"]
            commit(new, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", entry("written after")),
                         make_op(ENTRY_NSID, "3kaaaaaaaaa2a", entry("written before, changed after"), action="update")])
            assert sorted(names(new.search_entries(search_words("written")).records)) == [
                "written after", "written before, changed after"]
            assert names(new.search_entries(search_words("alpha")).records) == []
            assert names(new.search_entries(search_words("older")).records) == ["older"]
    finally:
        pg_server.drop_database(url)


def test_postgresql_look_ups_by_schema_id_and_name_use_indexes_of_schemas_and_labels_alone(pg_server, make_op, commit,
                                                                                           monkeypatch):
    """Version 7 makes the look-ups' indexes partial, as the SQLite store's version 6: a store of version
    6 migrates, finds what it found, and its look-ups read an index whether planned for their values or
    generically (a prepared statement), with or without statistics: never every record."""
    from atdata_index_appview.store import postgres

    url = pg_server.create_database()
    try:
        new, statements = _migrate_and_capture_look_ups(url, postgres.PostgresStore, 6, make_op, commit, monkeypatch)
        with new:
            with new._read() as db:
                # Enough entries of other accounts, and of this one, that reading every record costs
                # more than an index would (a table of a few rows is read whole whatever its indexes).
                db.run("INSERT INTO records (uri, did, collection, rkey, value, indexed_at, sort_time, name) "
                       "SELECT 'at://' || did || '/' || %s || '/e' || i, did, %s, 'e' || i, '{}', '2025', '2025', "
                       "'e' || i FROM generate_series(1, 20000) AS i, LATERAL (SELECT CASE WHEN i %% 40 = 0 "
                       "THEN %s ELSE 'did:plc:other' || (i %% 500) END AS did) AS a",
                       (ENTRY_NSID, ENTRY_NSID, REPO))
                indexes = [row[0] for row in db.all("SELECT indexname FROM pg_indexes WHERE tablename = 'records' "
                                                    "AND indexdef LIKE '%%WHERE%%collection%%'")]
                plans = {}
                for stats in ("without statistics", "with statistics"):
                    if stats == "with statistics":
                        db.run("ANALYZE records")
                    for n, (sql, params) in enumerate(statements):
                        plans[stats, n, "custom"] = "\n".join(
                            row[0] for row in db.all("EXPLAIN " + sql.replace("%s", "{}").format(
                                *(f"'{p}'" for p in params))))
                        numbered = sql
                        for k in range(1, len(params) + 1):
                            numbered = numbered.replace("%s", f"${k}", 1)
                        db.run("SET plan_cache_mode = force_generic_plan")
                        db.run(f"PREPARE look_up ({', '.join(['text'] * len(params))}) AS {numbered}")
                        plans[stats, n, "generic"] = "\n".join(
                            row[0] for row in db.all("EXPLAIN EXECUTE look_up ({})".format(
                                ", ".join(f"'{p}'" for p in params))))
                        db.run("DEALLOCATE look_up")
                        db.run("RESET plan_cache_mode")
        assert sorted(indexes) == ["records_by_label_name", "records_by_schema_id", "records_by_schema_name"]
        for key, plan in plans.items():  # the partial indexes, or an account's records of the collection
            assert "Index" in plan and "Seq Scan" not in plan, (key, plan)
        # Planned for its values, a look-up reads its partial index (schemas: by schema id or by name).
        for stats in ("without statistics", "with statistics"):
            assert any(f" records_by_schema_{by} " in plans[stats, 0, "custom"] for by in ("id", "name"))
            assert " records_by_label_name " in plans[stats, 1, "custom"]
    finally:
        pg_server.drop_database(url)


def test_a_listing_by_tags_follows_the_records_times_and_pages_once(store, make_op, commit):
    ops = [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}", f"2025-03-{1 + i % 9:02d}T00:00:00Z",
                                                    tags=["common"] + (["rare"] if i % 7 == 0 else [])))
           for i in range(40)]
    commit(store, ops)
    expected = [r.uri for r in store.list_records(ENTRY_NSID, limit=100).records]
    for tags, keep in ((["common"], lambda i: True), (["rare"], lambda i: i % 7 == 0),
                       (["common", "rare"], lambda i: i % 7 == 0), (["rare", "common", "rare"], lambda i: i % 7 == 0)):
        wanted = [uri for uri in expected if keep(int(uri.rsplit("/", 1)[1][2:]))]
        assert [r.uri for r in every_page(lambda **kw: store.list_records(ENTRY_NSID, tags=tags, **kw), 3)] == wanted
        assert [r.uri for r in every_page(lambda **kw: store.search_entries([], tags=tags, **kw), 4)] == wanted
    # A record moved in time (its createdAt changed) moves in the tag's listing too.
    commit(store, [make_op(ENTRY_NSID, "3k00000000014", entry("d14", "2030-01-01T00:00:00Z", tags=["rare"]), action="update")])
    assert names(store.list_records(ENTRY_NSID, tags=["rare"]).records)[0] == "d14"
    assert "d14" not in names(store.list_records(ENTRY_NSID, tags=["common"], limit=100).records)
    assert names(store.list_records(ENTRY_NSID, tags=["nothing"]).records) == []
    assert names(store.list_records(ENTRY_NSID, tags=["x" * 1000]).records) == []


def test_the_sqlite_log_is_copied_into_the_file_beside_the_writer(tmp_path, make_op, commit):
    import sqlite3
    import time

    path = tmp_path / "log.db"  # nothing but the store itself checkpoints it here
    store = open_store(f"sqlite:///{path}")
    try:
        commit(store, [make_op(ENTRY_NSID, f"3k{i:011d}", entry(f"d{i}")) for i in range(50)])
        assert store._checkpointer is not None and store._checkpointer.is_alive()
        probe = sqlite3.connect(str(path))
        pages, page_size = probe.execute("PRAGMA page_count").fetchone()[0], probe.execute("PRAGMA page_size").fetchone()[0]
        probe.close()
        assert path.stat().st_size < pages * page_size  # the records are in the log, not yet in the file
        deadline = time.monotonic() + 60  # a liveness bound, not a measurement
        while path.stat().st_size < pages * page_size:  # every page in the file: the log was copied
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        store.close()
    assert not store._checkpointer.is_alive()
    with open_store(f"sqlite:///{path}") as again:
        assert len(again.list_records(ENTRY_NSID, limit=100).records) == 50



def test_a_postgresql_store_searched_before_its_tables_are_analyzed_answers_as_after(pg_server, make_op, monkeypatch):
    """Right after a bulk write the tables have no statistics (autovacuum has not analyzed them):
    searches and listings then run under planner settings of their own, and answer exactly what
    they answer once the tables are analyzed; the settings end with the read."""
    import psycopg

    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    url = pg_server.create_database()
    try:
        with open_store(url) as store, psycopg.connect(url, autocommit=True) as admin:
            for table in ("records", "record_tags", "record_words", "search_words"):
                admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            batches = []
            for i in range(300):
                repo = REPO if i % 3 else OTHER
                record = entry(f"{words[i % 8]} {words[i * 5 % 8]} {i}", f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z",
                               tags=[f"t{i % 4}"] + (["rare"] if i % 50 == 0 else []),
                               description=" ".join(words[(i + k) % 8] for k in range(i % 4)))
                batches.append(CommitBatch(source="https://pds.test", seq=i + 1, did=repo, rev=f"3l{i:011d}",
                                           ops=(make_op(ENTRY_NSID, f"3k{i:011d}", record, repo=repo),)))
            store.apply_many(batches)  # one transaction, the rows copied in
            assert admin.execute("SELECT COUNT(*) FROM pg_stats WHERE tablename IN "
                                 "('records', 'record_tags', 'record_words', 'search_words')").fetchone()[0] == 0
            monkeypatch.setattr(store, "scored_matches", 60)  # "alpha" is then too common to score

            def answers():
                out = {}
                for word in ("alpha", "lima", "harli", "golf 7"):
                    out[word] = [(r.uri, r.score) for r in every_page(
                        lambda **kw: store.search_entries(search_words(word), **kw), 7)]
                    out[word, "author"] = [(r.uri, r.score) for r in every_page(
                        lambda **kw: store.search_entries(search_words(word), did=OTHER, **kw), 5)]
                    out[word, "tag"] = [(r.uri, r.score) for r in every_page(
                        lambda **kw: store.search_entries(search_words(word), tags=["t1"], **kw), 5)]
                for tags in (["t2"], ["rare"], ["t0", "rare"]):
                    out[tuple(tags)] = [r.uri for r in every_page(
                        lambda **kw: store.search_entries([], tags=tags, **kw), 9)]
                out["phrase"] = uris(store.list_records(ENTRY_NSID, query="bravo 1", limit=100))
                return out

            def holding(word):
                return [r.uri for r in listed if word in f"{r.value['name']} {r.value.get('description', '')}"]

            before = answers()
            listed = store.list_records(ENTRY_NSID, limit=300).records
            assert len(before["alpha"]) > 60 and all(score == 0 for _, score in before["alpha"])
            assert [uri for uri, _ in before["alpha"]] == holding("alpha")  # newest first
            assert sorted(uri for uri, _ in before["harli"]) == sorted(holding("harli"))
            assert before["lima"] == [] and before["phrase"]
            assert before[("t2",)] == [r.uri for r in listed if "t2" in r.value["tags"]]
            assert before[("t0", "rare")] == [r.uri for r in listed if {"t0", "rare"} <= set(r.value["tags"])]
            with store._read() as db:  # the connection the searches used: its settings are the server's again
                assert db.one("SHOW enable_sort") == ("on",) and db.one("SHOW enable_seqscan") == ("on",)
            admin.execute("ANALYZE")
            assert admin.execute("SELECT COUNT(*) FROM pg_stats WHERE tablename = 'records'").fetchone()[0] > 0
            assert answers() == before
            # With statistics, the words' trigger still probes the known words' index (migration 6),
            # and a bulk write after it is searchable as before.
            config = admin.execute("SELECT proconfig FROM pg_proc WHERE proname = 'record_words_inserted'").fetchone()[0]
            assert set(config) == {"enable_hashjoin=off", "enable_mergejoin=off"}
            store.apply_many([
                CommitBatch(source="https://pds.test", seq=1000 + i, did=REPO, rev=f"3m{i:011d}",
                            ops=(make_op(ENTRY_NSID, f"3m{i:011d}", entry(f"later {words[i % 8]}x{i}")),))
                for i in range(150)])
            assert len(store.search_entries(search_words("later"), limit=100).records) == 100
            assert sorted(names(store.search_entries(search_words("golfx"), limit=100).records)) == sorted(
                f"later golfx{i}" for i in range(150) if i % 8 == 6)
    finally:
        pg_server.drop_database(url)
