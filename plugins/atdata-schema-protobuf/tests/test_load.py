"""A dataset whose schema is a protobuf schema loads with typed samples; without the plugin, the error names it.

Records are answered by the core's embedded SQLite index, shards by a loopback HTTP server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atdata_core
from atdata_core import ShardWriter
from atdata_core.errors import SchemaError, UnknownSchemaFormat
from atdata_core.plugins import SCHEMA_NSID, index_provider, reset_plugins, schema_format

from protobuf_samples import Everything, everything

DID = "did:plc:abcdefghijklmnopqrstuvwx"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/com.example.everything:1.0.0"
ENTRY_URI = f"at://{DID}/science.alt.dataset.entry/3kaaaaaaaaa2a"


def schema_record(schema: dict) -> dict:
    return {
        "$type": SCHEMA_NSID,
        "name": "com.example.everything",
        "version": "1.0.0",
        "schemaType": "protobuf",
        "schema": schema,
        "atdataSchemaVersion": 1,
        "createdAt": "2025-01-01T00:00:00.000Z",
    }


@pytest.fixture
def catalog(tmp_path, shard_server, monkeypatch):
    """An embedded index holding a protobuf schema and an entry of three samples; shards on loopback."""
    folder, base = shard_server
    monkeypatch.setenv("ATDATA_INDEX_SQLITE_PATH", str(tmp_path / "catalog.sqlite"))
    reset_plugins()
    index = index_provider("sqlite")
    index.put_record(SCHEMA_URI, schema_record(schema_format("protobuf").schema_from_type(Everything)))
    samples = [everything(seed) for seed in range(3)]
    with ShardWriter(str(folder / "everything-%03d.tar"), maxcount=2) as sink:
        for sample in samples:
            sink.write(sample)
    index.put_record(ENTRY_URI, {
        "$type": "science.alt.dataset.entry",
        "name": "everything",
        "schemaRef": SCHEMA_URI,
        "storage": {
            "$type": "science.alt.dataset.storageHttp",
            "shards": [
                {"url": f"{base}/{Path(s.url).name}", "checksum": {"algorithm": "sha256", "digest": s.sha256}}
                for s in sink.shards
            ],
        },
        "createdAt": "2025-01-02T00:00:00.000Z",
    })
    return index, samples


def test_a_protobuf_schema_loads_typed_samples(catalog):
    index, samples = catalog
    loaded = list(atdata_core.load(ENTRY_URI, index=index))
    assert len(loaded) == 3
    first = loaded[0]
    assert type(first).__name__ == "Everything" and type(first) is not Everything
    assert type(first.center).__name__ == "Point"
    np.testing.assert_array_equal(first.image, samples[0].image)
    assert first.grid == samples[0].grid and first.maybe == samples[0].maybe
    assert first.series == samples[0].series and first.origin.x == 1.0
    # the class the sample was written with reads the dataset too (the schema's fields fit it)
    assert [s.label for s in atdata_core.load(ENTRY_URI, Everything, index=index)] == ["cat"] * 3


def test_without_the_plugin_the_error_names_the_distribution(catalog, monkeypatch):
    index, _ = catalog
    monkeypatch.setenv("ATDATA_PLUGINS_DENY", "atdata-schema-protobuf")
    reset_plugins()
    with pytest.raises(UnknownSchemaFormat, match="atdata-schema-protobuf is installed but its plugin 'protobuf' is deny-listed"):
        atdata_core.load(ENTRY_URI, index=index)


def test_a_hostile_schema_record_is_a_schema_error_when_loading(catalog):
    index, _ = catalog
    schema = schema_format("protobuf").schema_from_type(Everything)
    index.put_record(SCHEMA_URI, schema_record({**schema, "messageName": "atdata.samples.Everything { }"}))
    with pytest.raises(SchemaError, match="names no message"):
        list(atdata_core.load(ENTRY_URI, index=index))
