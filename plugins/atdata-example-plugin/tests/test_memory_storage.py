"""The mem:// backend runs atdata-core's storage conformance suite against itself."""

from __future__ import annotations

import pytest

from atdata_core.errors import StorageNotFound
from atdata_core.plugins import plugin_report
from atdata_core.plugins.conformance import StorageBackendConformance
from atdata_core.storage import expand_source, open_shard, put_shard
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


def test_core_functions_reach_mem_urls(tmp_path):
    local = tmp_path / "shard.tar"
    for index in range(3):
        local.write_bytes(f"shard {index}".encode())
        put_shard(local, f"mem://bucket/data-{index:06d}.tar")
    assert expand_source("mem://bucket/data-*.tar") == [f"mem://bucket/data-{i:06d}.tar" for i in range(3)]
    with open_shard("mem://bucket/data-000001.tar") as stream:
        assert stream.read() == b"shard 1"
    with pytest.raises(StorageNotFound):
        open_shard("mem://bucket/data-000009.tar")
