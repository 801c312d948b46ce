"""Publishing refuses what it cannot write before any network call.

The client here is logged in to a PDS at a closed loopback port: had anything
been sent, the error would be a network error, not the validation error
asserted. (The same rules against a live PDS: tests/test_federation.py.)
"""

from __future__ import annotations

import pytest

from atdata_core import ShardWriter, packable
from atdata_core.atproto import Client, Session
from atdata_core.errors import AuthError, StorageError, ValidationError
from atdata_core.publish import Published, publish_dataset, publish_label, publish_lens, publish_schema
from tests.lens_example import RGBImage, red_channel

DID = "did:plc:abcdefghijklmnopqrstuvwx"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/com.example.rgb:1.0.0"
SHARD = ("https://data.example.com/rgb-000000.tar", "ab" * 32, 3, 10240)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "0")
    session = Session(did=DID, handle="alice.test", pds_url="http://127.0.0.1:9", access_jwt="a", refresh_jwt="r")
    return Client(session=session)


def refused(call) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


def test_shards_of_mixed_storage_kinds_are_refused(offline):
    err = refused(lambda: publish_dataset(
        offline, "mixed", [SHARD, ("s3://bucket/rgb-000001.tar", "cd" * 32, 3, 10240)], schema=SCHEMA_URI
    ))
    assert err.path == "$.storage" and "mix URL schemes" in str(err)


def test_local_files_cannot_be_published(offline, tmp_path):
    with ShardWriter(str(tmp_path / "rgb-%06d.tar")) as sink:
        sink.write(RGBImage(pixels=__import__("numpy").zeros((1, 1, 3), "uint8"), label="x"))
    with pytest.raises(StorageError, match="local files cannot be published"):
        publish_dataset(offline, "local", sink.shards, schema=SCHEMA_URI)


def test_every_shard_needs_a_url_and_a_sha256(offline):
    assert refused(lambda: publish_dataset(offline, "x", [], schema=SCHEMA_URI)).path == "$.storage"
    err = refused(lambda: publish_dataset(offline, "x", [SHARD, ("https://h/b.tar", None, 1, 1)], schema=SCHEMA_URI))
    assert err.path == "$.storage.shards[1].checksum.digest"
    assert refused(lambda: publish_dataset(offline, "x", [("", "ab" * 32)], schema=SCHEMA_URI)).path == \
        "$.storage.shards[0].url"
    assert refused(lambda: publish_dataset(offline, "x", [SHARD[:2] + (-1,)], schema=SCHEMA_URI)).rule == "count"
    assert refused(lambda: publish_dataset(offline, "x", [SHARD], schema=42)).path == "$.schemaRef"


def test_lexicon_rules_carry_the_json_path(offline):
    long_description = "d" * 5001
    assert refused(lambda: publish_dataset(offline, "x", [SHARD], schema=SCHEMA_URI,
                                           description=long_description)).path == "$.description"
    assert refused(lambda: publish_dataset(offline, "x", [SHARD], schema=SCHEMA_URI,
                                           tags=[str(i) for i in range(31)])).path == "$.tags"
    assert refused(lambda: publish_label(offline, "", SCHEMA_URI)).path == "$.name"
    assert refused(lambda: publish_lens(offline, red_channel, source_schema="nope", target_schema=SCHEMA_URI,
                                        repository="https://example.com/r")).path == "$.sourceSchema"
    assert refused(lambda: publish_schema(offline, RGBImage, schema_id="com.example.rgb",
                                          version="1.0.0+build5")).path == "$.version"


def test_publishing_needs_a_logged_in_client(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(AuthError, match="log"):
        publish_label(Client.anonymous(), "tiny", f"at://{DID}/science.alt.dataset.entry/3kabcdefgh22a")


def test_published_values_print_as_their_uri():
    published = Published("at://did:plc:x/science.alt.dataset.label/3k", "bafy", {"name": "n"})
    assert str(published) == published.uri
