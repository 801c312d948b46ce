"""On the local PDS sandbox: alice publishes a protobuf schema and a dataset; bob loads typed samples.

The schema record is validated by the core before it is written, against the
lexicon document this plugin registers; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

import atdata_core
from atdata_core import ShardWriter, publish_dataset, publish_schema
from atdata_core.errors import IncompatibleSchema, ValidationError
from atdata_core.plugins import SCHEMA_NSID, Client, reset_plugins

from protobuf_samples import AppendedOptional, Everything, InsertedOptional, V1, everything


@pytest.fixture
def federation(pds_sandbox, monkeypatch):
    """This machine on the local federation: the sandbox's PLC directory and hosts allowed for records."""
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    hosts = [h for h in __import__("os").environ.get("ATDATA_NETWORK_ALLOW_HOSTS", "").split(",") if h]
    hosts += sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    return pds_sandbox


@pytest.fixture
def alice(federation, make_account, shard_server):
    account = make_account("alice")
    return account, Client.login(account.handle, account.password, pds_url=account.pds_url)


def test_alice_publishes_a_protobuf_schema_and_bob_loads_typed_samples(alice, shard_server):
    account, client = alice
    folder, base = shard_server
    schema = publish_schema(client, Everything, schema_id="com.example.everything", version="1.0.0", format="protobuf")
    assert schema.record["schemaType"] == "protobuf"
    assert schema.record["schema"]["$type"] == "science.alt.dataset.protobufFormat"
    # publishing the same schema again is idempotent: the PDS gives the record back as it was written
    assert publish_schema(client, Everything, schema_id="com.example.everything", version="1.0.0",
                          format="protobuf").uri == schema.uri
    samples = [everything(seed) for seed in range(4)]
    with ShardWriter(str(folder / "everything-%03d.tar"), maxcount=3) as sink:
        for sample in samples:
            sink.write(sample)
    shards = [(f"{base}/{Path(s.url).name}", s.sha256, s.count, s.size) for s in sink.shards]
    entry = publish_dataset(client, "everything", shards, schema=schema)

    loaded = list(atdata_core.load(entry.uri))
    assert [s.label for s in loaded] == [s.label for s in samples]
    assert type(loaded[0]).__name__ == "Everything" and type(loaded[0]) is not Everything
    for got, want in zip(loaded, samples):
        np.testing.assert_array_equal(got.image, want.image)
        assert got.counts == want.counts and got.points[1].y == want.points[1].y


def test_versions_are_checked_with_protobuf_numbers(alice):
    _, client = alice
    publish_schema(client, V1, schema_id="com.example.v", version="1.0.0", format="protobuf")
    assert publish_schema(client, AppendedOptional, schema_id="com.example.v", version="1.1.0", format="protobuf")
    # the same fields as 1.1.0 in another order: renumbered, so a minor bump is refused
    with pytest.raises(IncompatibleSchema, match="protobuf number"):
        publish_schema(client, InsertedOptional, schema_id="com.example.v", version="1.2.0", format="protobuf")


def test_the_core_validates_the_member_against_the_plugins_lexicon(alice, fmt):
    _, client = alice
    member = fmt.schema_from_type(V1)
    record = {
        "$type": SCHEMA_NSID, "name": "com.example.bad", "version": "1.0.0", "schemaType": "protobuf",
        "schema": {**member, "fileDescriptor": "not bytes"}, "createdAt": "2025-01-01T00:00:00.000Z",
    }
    with pytest.raises(ValidationError, match="fileDescriptor"):
        client.create_record(SCHEMA_NSID, record, rkey="com.example.bad:1.0.0")
    without_name = {k: v for k, v in member.items() if k != "messageName"}
    with pytest.raises(ValidationError, match="messageName"):
        client.create_record(SCHEMA_NSID, dict(record, schema=without_name), rkey="com.example.bad:1.0.0")
