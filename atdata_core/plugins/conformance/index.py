"""The index provider conformance suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from atdata_core._nsids import ENTRY_NSID as ENTRY
from atdata_core._nsids import JSON_SCHEMA_FORMAT_NSID, STORAGE_HTTP_NSID
from atdata_core._nsids import LABEL_NSID as LABEL
from atdata_core._nsids import SCHEMA_NSID as SCHEMA
from atdata_core.errors import RecordNotFound
_DIGEST = "ab" * 32


def _schema_record(name: str, version: str, created: str, tags: list[str] | None = None) -> dict[str, Any]:
    record = {
        "$type": SCHEMA,
        "name": name,
        "version": version,
        "schemaType": "jsonSchema",
        "schema": {
            "$type": JSON_SCHEMA_FORMAT_NSID,
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"label": {"type": "string"}},
            "required": ["label"],
        },
        "createdAt": created,
    }
    if tags:
        record["metadata"] = {"tags": tags}
    return record


def _entry_record(name: str, schema_uri: str, tags: list[str], created: str, description: str = "") -> dict[str, Any]:
    record = {
        "$type": ENTRY,
        "name": name,
        "schemaRef": schema_uri,
        "storage": {
            "$type": STORAGE_HTTP_NSID,
            "shards": [
                {"url": f"https://data.example.com/{name}/data-000000.tar", "checksum": {"algorithm": "sha256", "digest": _DIGEST}}
            ],
        },
        "tags": tags,
        "createdAt": created,
    }
    if description:
        record["description"] = description
    return record


class IndexProviderConformance:
    """Checks an :class:`~atdata_core.plugins.IndexProvider` against its contract.

    Fixtures to provide:

    ``index_provider``
        The provider under test, empty at the start of each test.
    ``publish``
        A callable ``publish(collection, rkey, record) -> at-uri`` that makes a
        record of the ``repo`` account visible to the provider (insert it into
        an embedded store, write it to the account's PDS, ingest it...).
    ``repo`` (optional)
        The DID the records belong to; default ``did:plc:conformance00000000000000``.
    """

    @pytest.fixture
    def index_provider(self) -> Any:
        pytest.fail("provide an `index_provider` fixture returning the provider under test")

    @pytest.fixture
    def publish(self) -> Callable[[str, str, dict[str, Any]], str]:
        pytest.fail("provide a `publish(collection, rkey, record) -> uri` fixture")

    @pytest.fixture
    def repo(self) -> str:
        return "did:plc:conformance00000000000000"

    @pytest.fixture
    def seeded(self, publish, repo) -> dict[str, str]:
        uris = {
            "image-1.2.0": publish(SCHEMA, "com.example.image:1.2.0", _schema_record("com.example.image", "1.2.0", "2025-01-01T00:00:00Z", ["images"])),
            "image-1.10.0": publish(SCHEMA, "com.example.image:1.10.0", _schema_record("com.example.image", "1.10.0", "2025-01-02T00:00:00Z")),
            "image-1.11.0-rc.1": publish(
                SCHEMA, "com.example.image:1.11.0-rc.1", _schema_record("com.example.image", "1.11.0-rc.1", "2025-01-03T00:00:00Z")
            ),
            # Another client's schema under a TID key: found by name and version.
            "audio-2.0.0": publish(SCHEMA, "3kabcdefgh22a", _schema_record("com.example.audio", "2.0.0", "2025-01-04T00:00:00Z")),
        }
        schema_uri = uris["image-1.10.0"]
        uris["mnist"] = publish(
            ENTRY, "3kabcdefgh23a", _entry_record("mnist-train", schema_uri, ["vision", "digits"], "2025-02-01T00:00:00Z")
        )
        uris["speech"] = publish(
            ENTRY,
            "3kabcdefgh24a",
            _entry_record("speech-commands", schema_uri, ["audio"], "2025-02-02T00:00:00Z", "Spoken digits, MNIST-like"),
        )
        uris["cifar"] = publish(
            ENTRY, "3kabcdefgh25a", _entry_record("cifar-10", schema_uri, ["vision"], "2025-02-03T00:00:00Z")
        )
        label = {"$type": LABEL, "name": "stable", "datasetUri": uris["mnist"], "version": "1.0.0", "createdAt": "2025-03-01T00:00:00Z"}
        uris["stable-1"] = publish(LABEL, "3kabcdefgh26a", label)
        label2 = dict(label, datasetUri=uris["cifar"], version="2.0.0", createdAt="2025-03-02T00:00:00Z")
        uris["stable-2"] = publish(LABEL, "3kabcdefgh27a", label2)
        return uris

    def test_get_record_returns_what_was_published(self, index_provider, seeded):
        found = index_provider.get_record(seeded["mnist"])
        assert found.uri == seeded["mnist"]
        assert found.value["name"] == "mnist-train"
        assert found.value["$type"] == ENTRY
        assert list(found.value["tags"]) == ["vision", "digits"]

    def test_get_missing_record(self, index_provider, seeded, repo):
        with pytest.raises(RecordNotFound):
            index_provider.get_record(f"at://{repo}/{ENTRY}/3kzzzzzzzzz2a")

    def test_list_records_of_a_collection_newest_first(self, index_provider, seeded, repo):
        entries = index_provider.list_records(ENTRY, repo=repo)
        assert [r.uri for r in entries] == [seeded["cifar"], seeded["speech"], seeded["mnist"]]
        labels = index_provider.list_records(LABEL, repo=repo)
        assert {r.uri for r in labels} == {seeded["stable-1"], seeded["stable-2"]}

    def test_list_records_of_another_repo_is_empty(self, index_provider, seeded):
        assert index_provider.list_records(ENTRY, repo="did:plc:nobodyhere0000000000000") == []

    def test_query_matches_name_or_description_ignoring_case(self, index_provider, seeded, repo):
        found = index_provider.list_records(ENTRY, repo=repo, query="MNIST")
        assert {r.uri for r in found} == {seeded["mnist"], seeded["speech"]}

    def test_tags_keep_records_with_every_tag(self, index_provider, seeded, repo):
        vision = index_provider.list_records(ENTRY, repo=repo, tags=["vision"])
        assert {r.uri for r in vision} == {seeded["mnist"], seeded["cifar"]}
        both = index_provider.list_records(ENTRY, repo=repo, tags=["vision", "digits"])
        assert [r.uri for r in both] == [seeded["mnist"]]

    def test_schema_tags_are_its_metadata_tags(self, index_provider, seeded, repo):
        found = index_provider.list_records(SCHEMA, repo=repo, tags=["images"])
        assert [r.uri for r in found] == [seeded["image-1.2.0"]]

    def test_resolve_repo_of_a_did_is_that_did(self, index_provider, repo):
        assert index_provider.resolve_repo(repo) == repo
        assert index_provider.resolve_repo(f"@{repo}") == repo

    def test_limit(self, index_provider, seeded, repo):
        assert [r.uri for r in index_provider.list_records(ENTRY, repo=repo, limit=2)] == [seeded["cifar"], seeded["speech"]]

    def test_resolve_schema_by_version(self, index_provider, seeded, repo):
        found = index_provider.resolve_schema(repo, "com.example.image", "1.2.0")
        assert found.uri == seeded["image-1.2.0"]
        assert found.value["version"] == "1.2.0"

    def test_resolve_schema_latest_is_the_highest_release(self, index_provider, seeded, repo):
        # 1.10.0 > 1.2.0 (not string order), and a prerelease ranks below releases.
        assert index_provider.resolve_schema(repo, "com.example.image").uri == seeded["image-1.10.0"]

    def test_resolve_schema_with_another_clients_record_key(self, index_provider, seeded, repo):
        assert index_provider.resolve_schema(repo, "com.example.audio").uri == seeded["audio-2.0.0"]
        assert index_provider.resolve_schema(repo, "com.example.audio", "2.0.0").uri == seeded["audio-2.0.0"]

    def test_resolve_missing_schema(self, index_provider, seeded, repo):
        with pytest.raises(RecordNotFound):
            index_provider.resolve_schema(repo, "com.example.image", "9.9.9")
        with pytest.raises(RecordNotFound):
            index_provider.resolve_schema(repo, "com.example.nothing")

    def test_resolve_label(self, index_provider, seeded, repo):
        assert index_provider.resolve_label(repo, "stable").uri == seeded["stable-2"]
        assert index_provider.resolve_label(repo, "stable", "1.0.0").uri == seeded["stable-1"]
        with pytest.raises(RecordNotFound):
            index_provider.resolve_label(repo, "nightly")
