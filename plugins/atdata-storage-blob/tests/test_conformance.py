"""Blob storage passes the core's storage suites, against the local PDS sandbox.

Each test gets a fresh account, so its repository starts empty.
"""

from __future__ import annotations

import pytest

from atdata_core.plugins import STORAGE_BLOBS_NSID
from atdata_core.plugins.conformance import StorageBackendConformance, StorageRecordMapperConformance
from atdata_storage_blob.storage import BlobStorage


class TestBlobStorage(StorageBackendConformance, StorageRecordMapperConformance):
    check_registry = True
    record_type = STORAGE_BLOBS_NSID
    # An entry lists blobs by CID, not by the paths they were placed under.
    records_keep_urls = False

    @pytest.fixture
    def alice(self, login):
        return login("alice")[1]

    @pytest.fixture
    def backend(self, alice):
        return BlobStorage(clients=[alice])

    @pytest.fixture
    def base_url(self, alice, request):
        return f"atblob://{alice.did}/conformance/{request.node.name}"

    @pytest.fixture
    def record_context(self, alice):
        return {"repo": alice.did}
