"""The direct-from-PDS index runs the index-provider conformance suite against a real sandbox PDS."""

from __future__ import annotations

import pytest

from atdata_core.atproto import Client, clear_identity_cache
from atdata_core.errors import MissingImplementation
from atdata_core.index.pds import PdsIndex
from atdata_core.plugins import index_provider
from atdata_core.plugins.conformance import IndexProviderConformance

ENTRY = "science.alt.dataset.entry"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch, pds_sandbox):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_ATPROTO_RESOLVER", pds_sandbox.pds_url)
    monkeypatch.chdir(tmp_path)
    clear_identity_cache()
    yield
    clear_identity_cache()


@pytest.fixture
def account(make_account):
    return make_account("index")


@pytest.fixture
def writer(account):
    return Client.login(account.handle, account.password, pds_url=account.pds_url, save=False)


class TestPdsIndexConformance(IndexProviderConformance):
    @pytest.fixture
    def index_provider(self):
        return PdsIndex()

    @pytest.fixture
    def repo(self, account):
        return account.did

    @pytest.fixture
    def publish(self, writer):
        def publish(collection, rkey, record):
            uri, _ = writer.put_record(collection, rkey, record)
            return uri

        return publish


def test_accounts_are_named_by_handle_too(writer, account):
    uri, _ = writer.put_record(ENTRY, "3kabcdefgh23a", _entry("by-handle"))
    index = PdsIndex()
    assert [r.uri for r in index.list_records(ENTRY, repo=account.handle)] == [uri]
    assert [r.uri for r in index.list_records(ENTRY, repo="@" + account.handle)] == [uri]
    assert index.get_record(uri.replace(account.did, account.handle)).value["name"] == "by-handle"


def test_listing_without_a_repo_points_at_the_appview():
    with pytest.raises(MissingImplementation) as caught:
        PdsIndex().list_records(ENTRY)
    assert "atdata-index-appview" in str(caught.value)
    assert "repo=" in str(caught.value)


def test_default_repo_given_at_construction(writer, account):
    uri, _ = writer.put_record(ENTRY, "3kabcdefgh24a", _entry("default-repo"))
    assert [r.uri for r in PdsIndex(repo=account.did).list_records(ENTRY)] == [uri]


def test_registered_as_the_pds_provider_and_the_default():
    assert type(index_provider("pds")).__name__ == "PdsIndex"
    assert type(index_provider()).__name__ == "PdsIndex"
    assert type(index_provider("sqlite")).__name__ == "SqliteIndex"


def _entry(name: str) -> dict:
    return {
        "$type": ENTRY,
        "name": name,
        "schemaRef": "at://did:plc:abcdefghijklmnopqrstuvwx/science.alt.dataset.schema/com.example.a:1.0.0",
        "storage": {
            "$type": "science.alt.dataset.storageHttp",
            "shards": [{"url": "https://example.com/a.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}],
        },
        "createdAt": "2025-01-01T00:00:00.000Z",
    }


def test_a_record_of_an_account_nobody_registered_is_not_found():
    from atdata_core.errors import RecordNotFound

    with pytest.raises(RecordNotFound, match="did:plc:nobodyhere0000000000000"):
        PdsIndex().get_record(f"at://did:plc:nobodyhere0000000000000/{ENTRY}/3kabcdefgh23a")
