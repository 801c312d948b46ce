"""The mem:// backend runs atdata-core's storage conformance suite against itself.

Like the plugin itself, these tests use only the core's public names.
"""

from __future__ import annotations

import pytest

import atdata_core
from atdata_core.errors import StorageError
from atdata_core.plugins import StorageBase, StorageRecordMapper, plugin_report, storage_backend
from atdata_core.plugins.conformance import StorageBackendConformance
from atdata_example_plugin.memory import MemoryStorage


@pytest.fixture(autouse=True)
def empty_store():
    MemoryStorage.clear()
    yield
    MemoryStorage.clear()


class TestMemoryStorage(StorageBackendConformance):
    # Installed with `pip install -e`, so atdata routes mem:// URLs to it.
    check_registry = True

    @pytest.fixture
    def backend(self):
        return MemoryStorage()

    @pytest.fixture
    def base_url(self, request):
        return f"mem://conformance/{request.node.name}"


def test_the_plugin_is_discovered_through_its_entry_point():
    info = {i.name: i for i in plugin_report()}["example"]
    assert info.status == "loaded"
    assert info.distribution == "atdata-example-plugin"
    assert "atdata_storage_backends" in info.hooks


def test_it_inherits_glob_and_expand_and_maps_no_records():
    backend = storage_backend("mem://bucket/x.tar")
    assert isinstance(backend, StorageBase)
    assert not isinstance(backend, StorageRecordMapper)


@atdata_core.packable
class Note:
    text: str


def test_datasets_are_written_to_and_read_from_mem_urls():
    with atdata_core.ShardWriter("mem://bucket/notes-%06d.tar", maxcount=2) as sink:
        for index in range(5):
            sink.write(Note(f"note {index}"))
    assert [shard.url for shard in sink.shards] == [f"mem://bucket/notes-{i:06d}.tar" for i in range(3)]
    dataset = atdata_core.Dataset("mem://bucket/notes-*.tar", sample_type=Note)
    assert sorted(note.text for note in dataset) == [f"note {i}" for i in range(5)]


def test_mem_shards_cannot_be_published():
    with atdata_core.ShardWriter("mem://bucket/notes-%06d.tar") as sink:
        sink.write(Note("private"))
    with pytest.raises(StorageError, match="cannot be published"):
        atdata_core.publish_dataset(None, "notes", sink.shards, schema="at://did:plc:abc/science.alt.dataset.schema/x:1.0.0")
