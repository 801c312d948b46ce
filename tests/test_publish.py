"""Publishing refuses what it cannot write before any network call, and places local shards first.

The client here is logged in to a PDS at a closed loopback port: had anything
been sent, the error would be a network error, not the validation error
asserted. (The same rules against a live PDS: tests/test_federation.py.)
"""

from __future__ import annotations

import pytest

from atdata_core import ShardWriter, packable
from atdata_core.atproto import Client, Session
from atdata_core.errors import AuthError, StorageError, StorageNotFound, ValidationError
from atdata_core.plugins import StorageBackendSpec, StorageBase, hookimpl, plugin_registered
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


# --------------------------------------------------------------------------- placing local shards


class _ToyStore(StorageBase):
    """A store that publishes (it maps records) and says where a publisher's shards go."""

    def __init__(self, fail_at: int | None = None):
        self.puts: list[tuple[str, str]] = []
        self.checked: list[str] = []
        self.fail_at = fail_at

    def open(self, url):
        raise StorageNotFound(url)

    def size(self, url):
        raise StorageNotFound(url)

    def put(self, local_path, url):
        if self.fail_at is not None and len(self.puts) + 1 == self.fail_at:
            raise StorageError(f"toy store refused {url}")
        self.puts.append((local_path, url))
        return url

    def delete(self, url):
        raise StorageNotFound(url)

    def list(self, prefix):
        return []

    def check_put(self, local_path, url):
        self.checked.append(url)
        if "big" in url:
            raise StorageError(f"{local_path} is too big for the toy store")

    def default_prefix(self, did, dataset):
        return f"toy://bucket/{did}/{dataset}"

    def to_storage_record(self, shards):
        return {"$type": "com.example.storageToy", "shards": [{"url": s.url} for s in shards]}

    def from_storage_record(self, record):
        return []


class _ToyPlugin:
    def __init__(self, store):
        self.store = store

    @hookimpl
    def atdata_storage_backends(self):
        return [StorageBackendSpec(name="toy", schemes=("toy",), record_types=("com.example.storageToy",),
                                   factory=lambda config: self.store)]


def _local_shards(folder, names):
    folder.mkdir(exist_ok=True)
    shards = []
    for name in names:
        with ShardWriter(str(folder / f"{name}-%06d.tar")) as sink:
            sink.write(RGBImage(pixels=__import__("numpy").zeros((1, 1, 3), "uint8"), label=name))
        shards.extend(sink.shards)
    return shards


def test_local_shards_need_a_storage_and_the_refusal_lists_the_backends_that_can_publish(offline, tmp_path):
    shards = _local_shards(tmp_path, ["a"])
    with plugin_registered(_ToyPlugin(_ToyStore()), name="toy-plugin"):
        with pytest.raises(StorageError) as refused:
            publish_dataset(offline, "local", shards, schema=SCHEMA_URI)
    message = str(refused.value)
    assert "local files cannot be published" in message and "[publish] storage" in message
    assert 'toy (toy://; storage="toy")' in message
    assert "http (http://, https://; a URL prefix)" in message


def test_a_backend_that_cannot_publish_or_place_by_name_is_refused(offline, tmp_path):
    shards = _local_shards(tmp_path, ["a"])
    with pytest.raises(StorageError, match="other people cannot read"):
        publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="file")
    with pytest.raises(StorageError, match=r"give a URL prefix instead \(http://\.\.\. or https://\.\.\./folder/\)"):
        publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="http")
    with pytest.raises(ValidationError, match="already at https:// URLs"):
        publish_dataset(offline, "remote", [SHARD], schema=SCHEMA_URI, storage="http")


def test_the_entry_is_checked_and_every_shard_before_any_is_placed(offline, tmp_path):
    store = _ToyStore()
    shards = _local_shards(tmp_path, ["a", "big", "c"])
    with plugin_registered(_ToyPlugin(store), name="toy-plugin"):
        assert refused(lambda: publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="toy",
                                               tags=["t"] * 31)).path == "$.tags"
        assert store.checked == []
        with pytest.raises(StorageError) as caught:
            publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="toy")
    assert "1 of 3 shards cannot be placed" in str(caught.value) and "too big" in str(caught.value)
    assert store.checked == [f"toy://bucket/{DID}/local/{name}-000000.tar" for name in ("a", "big", "c")]
    assert store.puts == []


def test_a_failure_part_way_says_which_shards_were_placed_and_publishes_nothing(offline, tmp_path):
    store = _ToyStore(fail_at=2)
    shards = _local_shards(tmp_path, ["a", "b", "c"])
    with plugin_registered(_ToyPlugin(store), name="toy-plugin"):
        with pytest.raises(StorageError) as caught:
            # The offline client would answer a network error had the entry been written.
            publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="toy")
    placed_url = f"toy://bucket/{DID}/local/a-000000.tar"
    assert [ref.url for ref in caught.value.placed] == [placed_url]
    assert caught.value.placed[0].sha256 == shards[0].sha256
    message = str(caught.value)
    assert "toy store refused" in message and "Placed before it (1 of 3)" in message and placed_url in message
    assert "Nothing was published" in message


def test_local_shards_with_the_same_file_name_are_refused(offline, tmp_path):
    shards = [*_local_shards(tmp_path / "x", ["a"]), *_local_shards(tmp_path / "y", ["a"])]
    with plugin_registered(_ToyPlugin(_ToyStore()), name="toy-plugin"):
        with pytest.raises(StorageError, match="share a file name"):
            publish_dataset(offline, "local", shards, schema=SCHEMA_URI, storage="toy")
