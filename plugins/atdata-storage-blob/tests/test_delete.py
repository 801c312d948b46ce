"""Deleting a dataset removes its entry, and its blobs when no other record references them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.errors import AuthError, RecordNotFound, StorageNotFound
from atdata_core.plugins import ENTRY_NSID, storage_backend
from atdata_storage_blob import SHARD_BLOB_NSID, delete_dataset


@packable
class Note:
    text: str
    values: NDArray[np.float32]


def write(folder: Path, prefix: str, texts: list[str]) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    with ShardWriter(str(folder / f"{prefix}-%06d.tar"), maxcount=1) as sink:
        for text in texts:
            sink.write(Note(text=text, values=np.arange(4, dtype=np.float32)))
    return sink.shards


def blob_of(entry, index: int) -> str:
    return entry.record["storage"]["blobs"][index]["blob"]["ref"]["$link"]


def test_deleting_a_dataset_removes_the_blobs_only_it_used(login, tmp_path):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Note, schema_id="com.example.note", version="1.0.0")
    first = write(tmp_path / "a", "notes", ["a", "b", "c"])
    # The second dataset shares shard 0 (the same bytes, so the same blob) and adds one of its own.
    second = [first[0], *write(tmp_path / "b", "more", ["d"])]
    one = atdata_core.publish_dataset(alice, "one", first, schema=schema, storage="blob")
    two = atdata_core.publish_dataset(alice, "two", second, schema=schema, storage="blob")
    backend = storage_backend(name="blob")

    done = delete_dataset(alice, one.uri)
    assert done.entry == one.uri
    assert done.removed == (blob_of(one, 1), blob_of(one, 2))
    assert done.kept == (blob_of(one, 0),)
    with pytest.raises(RecordNotFound):
        alice.get_record_at(one.uri)
    for cid in done.removed:
        with pytest.raises(StorageNotFound):
            backend.open(f"atblob://{alice.did}/{cid}")
    # What the other dataset uses is untouched, its placements included.
    assert [n.text for n in atdata_core.load(two.uri, Note)] == ["a", "d"]
    assert backend.list(f"atblob://{alice.did}/one") == [f"atblob://{alice.did}/one/notes-000000.tar"]

    done = delete_dataset(alice, two.uri)
    assert set(done.removed) == {blob_of(two, 0), blob_of(two, 1)} and done.kept == ()
    assert list(alice.list_records(alice.did, SHARD_BLOB_NSID)) == []
    assert list(alice.list_records(alice.did, ENTRY_NSID)) == []
    assert alice.call("com.atproto.sync.listBlobs", params={"did": alice.did}).json()["cids"] == []


def test_only_your_own_entries_can_be_deleted(login, tmp_path):
    _, alice = login("alice")
    _, bob = login("bob")
    schema = atdata_core.publish_schema(alice, Note, schema_id="com.example.note", version="1.0.0")
    entry = atdata_core.publish_dataset(alice, "one", write(tmp_path, "notes", ["a"]), schema=schema, storage="blob")
    with pytest.raises(AuthError, match="repository of"):
        delete_dataset(bob, entry.uri)
    assert alice.get_record_at(entry.uri)["value"]["name"] == "one"
