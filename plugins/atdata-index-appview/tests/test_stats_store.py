"""The counts entry statistics are made of, the same on each store (SQLite and PostgreSQL)."""

from __future__ import annotations

from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID

REPO = "did:plc:appviewtests0000000000000"
OTHER = "did:plc:someoneelse00000000000000"
QUIET = "did:plc:quietaccount0000000000000"
SCHEMA_URI = f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0"
AUDIO_URI = f"at://{REPO}/{SCHEMA_NSID}/com.example.audio:1.0.0"


def lens(source, target, created="2025-03-01T00:00:00Z"):
    code = {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:get"}
    return {"$type": LENS_NSID, "name": "a lens", "sourceSchema": source, "targetSchema": target,
            "getterCode": code, "putterCode": code, "createdAt": created}


def label(name, dataset):
    return {"$type": LABEL_NSID, "name": name, "datasetUri": dataset, "createdAt": "2025-03-01T00:00:00Z"}


def entry(name):
    return {"$type": ENTRY_NSID, "name": name, "schemaRef": SCHEMA_URI,
            "storage": {"$type": "science.alt.dataset.storageHttp", "shards": []}, "createdAt": "2025-02-01T00:00:00Z"}


def test_count_records_counts_what_a_listing_holds(store, make_op, commit):
    dataset = f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a"
    commit(store, [
        make_op(ENTRY_NSID, "3kentryaaaa2a", entry("one")),
        make_op(LENS_NSID, "3klensaaaaa2a", lens(SCHEMA_URI, AUDIO_URI)),
        make_op(LENS_NSID, "3klensbbbbb2a", lens(SCHEMA_URI, f"at://{REPO}/{SCHEMA_NSID}/com.example.text:1.0.0")),
        make_op(LENS_NSID, "3klenscccc2a", lens(AUDIO_URI, SCHEMA_URI)),
        make_op(LABEL_NSID, "3klabelaaaa2a", label("stable", dataset)),
        make_op(LABEL_NSID, "3klabelbbbb2a", label("v1", dataset)),
    ])
    commit(store, [make_op(LENS_NSID, "3klensdddd2a", lens(SCHEMA_URI, AUDIO_URI), repo=OTHER)], repo=OTHER)

    assert store.count_records(LENS_NSID) == 4
    assert store.count_records(LENS_NSID, ref_a=SCHEMA_URI) == 3
    assert store.count_records(LENS_NSID, ref_b=SCHEMA_URI) == 1
    assert store.count_records(LENS_NSID, ref_a=SCHEMA_URI, ref_b=AUDIO_URI) == 2
    assert store.count_records(LENS_NSID, did=OTHER) == 1
    assert store.count_records(LABEL_NSID, ref_a=dataset) == 2
    assert store.count_records(LABEL_NSID, ref_a=dataset + "x") == 0
    for kind, filters in ((LENS_NSID, {"ref_a": SCHEMA_URI}), (LABEL_NSID, {"ref_a": dataset})):
        assert store.count_records(kind, **filters) == len(store.list_records(kind, limit=100, **filters).records)
    assert store.count_records(LENS_NSID, ref_a="at://x\x00y") == 0  # never stored, and no error

    commit(store, [make_op(LENS_NSID, "3klensaaaaa2a", None)])
    assert store.count_records(LENS_NSID, ref_a=SCHEMA_URI) == 2


def test_account_count_counts_accounts_whose_records_are_shown(store, make_op, commit):
    assert store.account_count() == 0
    commit(store, [make_op(ENTRY_NSID, "3kentryaaaa2a", entry("one")), make_op(ENTRY_NSID, "3kentrybbbb2a", entry("two"))])
    commit(store, [make_op(SCHEMA_NSID, "com.example.audio:1.0.0", {"$type": SCHEMA_NSID}, repo=OTHER)], repo=OTHER)
    store.set_handle(QUIET, "quiet.test")  # an account the index knows but that published nothing
    assert store.account_count() == 2

    store.set_account_active(OTHER, False)
    assert store.account_count() == 1
    store.set_account_active(OTHER, True)
    assert store.account_count() == 2

    commit(store, [make_op(SCHEMA_NSID, "com.example.audio:1.0.0", None, repo=OTHER)], repo=OTHER)
    assert store.account_count() == 1
