"""The plugin as atdata sees it: discovered, configured, selected; and what it refuses without a PDS."""

from __future__ import annotations

import pytest

from atdata_core.errors import AuthError, ConfigError, MissingImplementation, RecordError
from atdata_core.plugins import (
    STORAGE_BLOBS_NSID,
    StorageBase,
    StorageRecordMapper,
    plugin_report,
    reset_plugins,
    storage_backend,
    storage_record_mapper,
)
from atdata_storage_blob.storage import BlobStorage

DID = "did:plc:abcdefghijklmnopqrstuvwx"


def test_the_plugin_is_found_through_its_entry_point_and_serves_atblob_urls_and_storage_blobs():
    info = {i.name: i for i in plugin_report()}["blob"]
    assert info.status == "loaded" and info.distribution == "atdata-storage-blob"
    assert any("atblob://" in line and STORAGE_BLOBS_NSID in line for line in info.provides)
    backend = storage_backend(f"atblob://{DID}/mnist/data-000000.tar")
    assert isinstance(backend, BlobStorage) and isinstance(backend, StorageBase)
    assert isinstance(backend, StorageRecordMapper)
    assert storage_record_mapper(STORAGE_BLOBS_NSID) is backend


def test_settings_come_from_the_blob_section(monkeypatch):
    monkeypatch.setenv("ATDATA_BLOB_RESUMES", "7")
    reset_plugins()
    assert storage_backend(name="blob").settings.resumes == 7
    monkeypatch.setenv("ATDATA_BLOB_RESUMES", "-1")
    reset_plugins()
    with pytest.raises(ConfigError, match="ATDATA_BLOB_RESUMES"):
        storage_backend(name="blob")


def test_deny_listed_the_error_names_the_distribution(monkeypatch):
    monkeypatch.setenv("ATDATA_PLUGINS_DENY", "blob")
    reset_plugins()
    with pytest.raises(MissingImplementation, match="atdata-storage-blob"):
        storage_backend(f"atblob://{DID}/{'a' * 10}.tar")
    with pytest.raises(MissingImplementation, match="atdata-storage-blob"):
        storage_record_mapper(STORAGE_BLOBS_NSID)


def test_writing_needs_the_repositorys_session(tmp_path):
    shard = tmp_path / "a.tar"
    shard.write_bytes(b"x" * 10240)
    with pytest.raises(AuthError, match="atdata login"):
        BlobStorage().put(shard, f"atblob://{DID}/set/a.tar")


def test_reading_a_record_needs_the_repository_it_is_in():
    record = {"$type": STORAGE_BLOBS_NSID, "blobs": [{"blob": {
        "$type": "blob", "ref": {"$link": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
        "mimeType": "application/x-tar", "size": 0}}]}
    with pytest.raises(RecordError, match="repository's DID"):
        BlobStorage().from_storage_record(record)
    shards = BlobStorage().from_storage_record(record, repo=DID)
    # No checksum recorded: the CID pins the sha256 anyway (here, of no bytes).
    assert shards[0].sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert shards[0].url == f"atblob://{DID}/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert shards[0].size == 0
