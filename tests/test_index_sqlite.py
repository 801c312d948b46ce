"""The embedded SQLite index runs the index-provider conformance suite, and keeps bytes intact."""

import pytest

from atdata_core.errors import ValidationError
from atdata_core.index.sqlite import SqliteIndex
from atdata_core.plugins.conformance import IndexProviderConformance


class TestSqliteIndexConformance(IndexProviderConformance):
    @pytest.fixture
    def index_provider(self, tmp_path):
        index = SqliteIndex(tmp_path / "index.sqlite")
        yield index
        index.close()

    @pytest.fixture
    def publish(self, index_provider, repo):
        def publish(collection, rkey, record):
            uri = f"at://{repo}/{collection}/{rkey}"
            index_provider.put_record(uri, record)
            return uri

        return publish


def test_records_survive_a_reopen_with_bytes_intact(tmp_path):
    path = tmp_path / "index.sqlite"
    uri = "at://did:plc:abc/science.alt.dataset.entry/3kabc"
    record = {"$type": "science.alt.dataset.entry", "name": "x", "metadata": b"\x81\xa1a\x01", "createdAt": "2025-01-01T00:00:00Z"}
    SqliteIndex(path).put_record(uri, record, cid="bafyfake")
    found = SqliteIndex(path).get_record(uri)
    assert found.value == record and found.cid == "bafyfake"


def test_bad_uri_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="at://"):
        SqliteIndex(tmp_path / "i.sqlite").get_record("https://example.com/x")
