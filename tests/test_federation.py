"""Two accounts on the sandbox PDS: alice publishes, bob finds and loads, with nothing shared but the network.

Shards are served over HTTP by a loopback server; records live in the sandbox
PDS; identities resolve through its PLC directory. Nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.atproto import Client, Session, SessionStore, clear_identity_cache
from atdata_core.discover import list_datasets, list_labels, list_lenses, list_schemas
from atdata_core.errors import (
    ChecksumError,
    IncompatibleSchema,
    MissingImplementation,
    RecordNotFound,
    ValidationError,
)
from atdata_core.lenses import LensGraph
from atdata_core import load_lens
from atdata_core.plugins import reset_plugins
from atdata_core.publish import publish_dataset, publish_label, publish_lens, publish_schema
from tests.lens_example import RedChannel, RGBImage, red_channel

ENTRY = "science.alt.dataset.entry"
REPOSITORY = "https://example.com/atdata-core-lenses"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def bob_config(tmp_path, monkeypatch, pds_sandbox):
    """This process is bob's machine: his config folder, the sandbox's PLC directory, no handle resolver."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "bob-config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    monkeypatch.delenv("ATDATA_ATPROTO_RESOLVER", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    clear_identity_cache()
    reset_plugins()
    yield
    clear_identity_cache()
    reset_plugins()


@pytest.fixture
def alice(make_account, tmp_path):
    """Alice's account and her logged-in client, her session kept in a folder of her own."""
    account = make_account("alice")
    client = Client.login(
        account.handle, account.password, pds_url=account.pds_url, store=SessionStore(tmp_path / "alice-sessions")
    )
    return account, client


@pytest.fixture
def bob(make_account):
    """Bob, logged in on this machine (his session saved in his config folder)."""
    account = make_account("bob")
    Client.login(account.handle, account.password, pds_url=account.pds_url)
    return account


def rgb_samples(n: int = 7) -> list[RGBImage]:
    rng = np.random.default_rng(7)
    return [RGBImage(pixels=rng.integers(0, 255, (4, 5, 3), dtype=np.uint8), label=f"img-{i}") for i in range(n)]


def write_shards(folder: Path, base_url: str, samples, prefix: str = "rgb") -> list[tuple[str, str, int, int]]:
    """Write shards into the served folder; return them as published: (http url, sha256, count, size)."""
    with ShardWriter(str(folder / f"{prefix}-%06d.tar"), maxcount=3) as sink:
        for sample in samples:
            sink.write(sample)
    return [(f"{base_url}/{Path(info.url).name}", info.sha256, info.count, info.size) for info in sink.shards]


@pytest.fixture
def published(alice, shard_server):
    """Alice's schemas, dataset and lens."""
    account, client = alice
    folder, base_url = shard_server
    samples = rgb_samples()
    shards = write_shards(folder, base_url, samples)
    rgb = publish_schema(client, RGBImage, schema_id="com.example.rgb", version="1.0.0", tags=["vision"])
    red = publish_schema(client, RedChannel, schema_id="com.example.red", version="1.0.0")
    entry = publish_dataset(
        client, "tiny-rgb", shards, schema=rgb, description="seven random RGB images", tags=["vision", "toy"],
        license="CC0-1.0", metadata={"source": "numpy rng 7", "split": "train"},
    )
    lens = publish_lens(client, red_channel, source_schema=rgb, target_schema=red, repository=REPOSITORY)
    return {"account": account, "client": client, "samples": samples, "shards": shards, "folder": folder,
            "rgb": rgb, "red": red, "entry": entry, "lens": lens}


def assert_same_images(loaded, expected) -> None:
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected):
        assert got.label == want.label
        assert got.pixels.dtype == want.pixels.dtype
        np.testing.assert_array_equal(got.pixels, want.pixels)


# --------------------------------------------------------------------------- the story


def test_bob_finds_alices_dataset_by_listing_her_repo(published, bob):
    alice_handle = published["account"].handle
    found = list_datasets(alice_handle)
    assert [r.uri for r in found] == [published["entry"].uri]
    entry = found[0].value
    assert entry["name"] == "tiny-rgb"
    assert entry["size"] == {"samples": 7, "bytes": sum(s[3] for s in published["shards"]), "shards": 3}
    assert [s["checksum"]["digest"] for s in entry["storage"]["shards"]] == [s[1] for s in published["shards"]]
    # search by text and tag
    assert [r.uri for r in list_datasets(alice_handle, query="RGB images", tags=["toy"])] == [published["entry"].uri]
    assert list_datasets(alice_handle, tags=["audio"]) == []
    assert {r.value["name"] for r in list_schemas(alice_handle)} == {"com.example.rgb", "com.example.red"}
    assert [r.value["name"] for r in list_schemas(alice_handle, tags=["vision"])] == ["com.example.rgb"]
    assert [r.uri for r in list_lenses(published["account"].did)] == [published["lens"].uri]
    assert list_labels(alice_handle) == []


def test_what_alice_published_is_kept_in_her_local_index(published):
    from atdata_core.index.sqlite import SqliteIndex, default_path

    local = SqliteIndex(default_path())
    kept = local.list_records(ENTRY, repo=published["account"].did)
    assert [(r.uri, r.cid) for r in kept] == [(published["entry"].uri, published["entry"].cid)]
    assert kept[0].value["storage"] == published["entry"].record["storage"]
    assert local.resolve_schema(published["account"].did, "com.example.rgb").uri == published["rgb"].uri


def test_bob_loads_by_uri_with_a_class_built_from_the_schema(published, bob):
    ds = atdata_core.load(published["entry"].uri)
    assert len(ds) == 7  # the recorded count, known before reading
    assert ds.size_bytes == sum(s[3] for s in published["shards"])
    samples = list(ds)
    assert type(samples[0]).__name__ == "Rgb"
    assert type(samples[0]) is not RGBImage
    assert_same_images(samples, published["samples"])


def test_bob_loads_by_handle_and_name_with_his_own_class(published, bob):
    ref = f"@{published['account'].handle}/tiny-rgb"
    samples = list(atdata_core.load(ref, RGBImage))
    assert all(type(s) is RGBImage for s in samples)
    assert_same_images(samples, published["samples"])


def test_bob_applies_alices_lens(published, bob):
    lens = load_lens(published["lens"].uri, trust=True)  # bob passes it explicitly: he trusts no one yet
    assert lens.source is RGBImage and lens.view is RedChannel
    # through the lens graph, on his own class
    red = list(atdata_core.load(published["entry"].uri, RGBImage).as_type(RedChannel, graph=LensGraph([lens])))
    assert all(type(r) is RedChannel for r in red)
    for got, want in zip(red, published["samples"]):
        assert got.label == want.label
        np.testing.assert_array_equal(got.pixels, want.pixels[..., 0])
    # and as a plain function on the class built from the schema
    built = list(atdata_core.load(published["entry"].uri).map(lens.get))
    np.testing.assert_array_equal(built[3].pixels, published["samples"][3].pixels[..., 0])
    # the lens record names code, and bob's executor ran the installed code at the pinned commit
    getter = published["lens"].record["getterCode"]
    assert getter["path"] == "tests/lens_example.py:red_channel"
    assert getter["repository"] == REPOSITORY and len(getter["commit"]) == 40


def test_labels_and_newest_entry_by_name(published, bob, shard_server):
    client = published["client"]
    folder, base_url = shard_server
    newer_samples = rgb_samples(2)
    newer = publish_dataset(client, "tiny-rgb", write_shards(folder, base_url, newer_samples, "v2"),
                            schema=published["rgb"])
    publish_label(client, "tiny-rgb", published["entry"], version="v1", description="the first cut")
    handle = published["account"].handle
    assert len(atdata_core.load(f"@{handle}/tiny-rgb")) == 2  # newest entry of that name
    assert_same_images(list(atdata_core.load(f"@{handle}/tiny-rgb@v1", RGBImage)), published["samples"])
    assert newer.uri != published["entry"].uri
    with pytest.raises(RecordNotFound, match="v9"):
        atdata_core.load(f"@{handle}/tiny-rgb@v9")
    with pytest.raises(RecordNotFound, match="no dataset named 'nothing-here'"):
        atdata_core.load(f"@{handle}/nothing-here")


def test_a_shard_altered_after_publishing_fails_its_checksum(published, bob):
    victim = published["folder"] / "rgb-000001.tar"
    data = bytearray(victim.read_bytes())
    data[-2000] ^= 0xFF  # inside the tar padding: still a readable tar, different bytes
    victim.write_bytes(bytes(data))
    ds = atdata_core.load(published["entry"].uri, RGBImage)
    with pytest.raises(ChecksumError) as caught:
        list(ds)
    assert caught.value.shard == published["shards"][1][0]
    assert published["shards"][1][0] in str(caught.value)
    # verify=False reads it anyway, on request
    assert len(list(atdata_core.load(published["entry"].uri, RGBImage, verify=False))) == 7


def test_a_class_that_does_not_fit_the_schema_is_refused(published, bob):
    @packable
    class Caption:
        text: str

    with pytest.raises(IncompatibleSchema, match="text"):
        atdata_core.load(published["entry"].uri, Caption)


# --------------------------------------------------------------------------- publishing rules


def test_invalid_records_are_refused_before_any_network_call(alice):
    account, _ = alice
    # A client whose PDS is a closed port: any request would fail with a network error instead.
    offline = Client(session=Session(did=account.did, handle=account.handle, pds_url="http://127.0.0.1:9",
                                     access_jwt="x", refresh_jwt="y"))
    schema_uri = f"at://{account.did}/science.alt.dataset.schema/com.example.rgb:1.0.0"
    good_shard = ("https://example.com/a.tar", "ab" * 32, 3, 100)
    cases = [
        (lambda: publish_dataset(offline, "x" * 201, [good_shard], schema=schema_uri), "$.name"),
        (lambda: publish_dataset(offline, "ok", [good_shard], schema="not-a-uri"), "$.schemaRef"),
        (lambda: publish_dataset(offline, "ok", [("https://example.com/a.tar", "nothex", 1, 1)], schema=schema_uri),
         "$.storage.shards[0].checksum.digest"),
        (lambda: publish_dataset(offline, "ok", [good_shard], schema=schema_uri, tags=["t" * 151]), "$.tags[0]"),
        (lambda: publish_label(offline, "stable", "https://example.com/not-at-uri"), "$.datasetUri"),
        (lambda: publish_schema(offline, RGBImage, schema_id="com.example.rgb", version="1.0"), "$.version"),
        (lambda: publish_schema(offline, RGBImage, schema_id="not an nsid", version="1.0.0"), "$.schemaId"),
    ]
    for publish, path in cases:
        with pytest.raises(ValidationError) as caught:
            publish()
        assert caught.value.path == path, caught.value
        assert path in str(caught.value)


def test_schema_versions_are_immutable_and_bumps_honest(alice):
    _, client = alice

    @packable
    class V1:
        label: str

    @packable
    class V1Again:
        label: str

    @packable
    class WithCaption:
        label: str
        caption: str | None = None

    @packable
    class Renamed:
        name: str

    first = publish_schema(client, V1, schema_id="com.example.thing", version="1.0.0")
    again = publish_schema(client, V1Again, schema_id="com.example.thing", version="1.0.0")
    assert (again.uri, again.cid) == (first.uri, first.cid)  # idempotent
    assert first.uri.endswith("/science.alt.dataset.schema/com.example.thing:1.0.0")
    with pytest.raises(IncompatibleSchema, match="already published") as caught:
        publish_schema(client, WithCaption, schema_id="com.example.thing", version="1.0.0")
    assert "caption" in str(caught.value)  # the changes are listed
    with pytest.raises(IncompatibleSchema, match="2.0.0"):
        publish_schema(client, Renamed, schema_id="com.example.thing", version="1.1.0")
    assert publish_schema(client, WithCaption, schema_id="com.example.thing", version="1.1.0").uri.endswith(":1.1.0")
    # the breaking change is compared with the highest version below it (1.1.0), and goes in under a major bump
    with pytest.raises(IncompatibleSchema):
        publish_schema(client, Renamed, schema_id="com.example.thing", version="1.2.0")
    assert publish_schema(client, Renamed, schema_id="com.example.thing", version="2.0.0").uri.endswith(":2.0.0")


def test_shards_of_a_storage_kind_nobody_installed_name_the_distribution(alice, bob, monkeypatch):
    account, client = alice
    monkeypatch.setenv("ATDATA_PLUGINS_DENY", "atdata-storage-s3")
    reset_plugins()
    schema = publish_schema(client, RGBImage, schema_id="com.example.rgb", version="1.0.0")
    record = {
        "$type": ENTRY,
        "name": "in-a-bucket",
        "schemaRef": schema.uri,
        "storage": {
            "$type": "science.alt.dataset.storageS3",
            "bucket": "datasets",
            "shards": [{"key": "rgb/data-000000.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}],
        },
        "createdAt": "2025-01-01T00:00:00.000Z",
    }
    uri, _ = client.create_record(ENTRY, record)
    with pytest.raises(MissingImplementation, match="atdata-storage-s3"):
        atdata_core.load(uri)


def test_entries_written_by_other_clients_are_read_tolerantly(alice, bob, shard_server):
    """Metadata as a JSON object (not msgpack bytes) is a known deviation in the wild: it still loads."""
    account, client = alice
    folder, base_url = shard_server
    shards = write_shards(folder, base_url, rgb_samples(3))
    schema = publish_schema(client, RGBImage, schema_id="com.example.rgb", version="1.0.0")
    record = {
        "$type": ENTRY,
        "name": "from-elsewhere",
        "schemaRef": schema.uri,
        "storage": {
            "$type": "science.alt.dataset.storageHttp",
            "shards": [{"url": url, "checksum": {"algorithm": "sha256", "digest": sha}} for url, sha, _, _ in shards],
        },
        "metadata": {"source": "another client"},
        "createdAt": "2025-01-01T00:00:00.000Z",
    }
    uri, _ = client.create_record(ENTRY, record, validate=False)
    loaded = list(atdata_core.load(uri, RGBImage))
    assert [s.label for s in loaded] == ["img-0", "img-1", "img-2"]
