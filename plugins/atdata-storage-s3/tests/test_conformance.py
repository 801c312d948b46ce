"""The S3 backend runs atdata-core's storage and record-mapping conformance suites against moto.

Like the plugin itself, these tests use only the core's public names.
"""

from __future__ import annotations

import pytest

from atdata_core.plugins import STORAGE_S3_NSID, StorageBase, StorageRecordMapper, plugin_report, storage_backend
from atdata_core.plugins.conformance import StorageBackendConformance, StorageRecordMapperConformance
from atdata_storage_s3.storage import S3Storage

BUCKET = "atdata-tests"


class TestS3Storage(StorageBackendConformance, StorageRecordMapperConformance):
    # Installed with `pip install -e`: s3:// URLs and storageS3 records route to it.
    check_registry = True
    record_type = STORAGE_S3_NSID

    @pytest.fixture
    def backend(self, s3_config):
        # The registry's own instance, built from the [s3] section of the test configuration.
        return storage_backend("s3://any-bucket/x.tar")

    @pytest.fixture
    def base_url(self, prefix):
        return f"s3://{BUCKET}/{prefix}"


def test_the_plugin_is_discovered_through_its_entry_point(s3_config):
    info = {i.name: i for i in plugin_report()}["s3"]
    assert info.status == "loaded"
    assert info.distribution == "atdata-storage-s3"
    assert "atdata_storage_backends" in info.hooks


def test_the_registry_builds_it_from_the_s3_section(s3_config, moto_endpoint):
    backend = storage_backend("s3://bucket/x.tar")
    assert isinstance(backend, S3Storage)
    assert isinstance(backend, StorageBase) and isinstance(backend, StorageRecordMapper)
    assert backend.settings.endpoint == moto_endpoint
    assert backend.settings.part_size == 5 * 1024 * 1024
    assert storage_backend(record_type=STORAGE_S3_NSID) is backend
    assert storage_backend("s3+https://storage.example.org/bucket/x.tar") is backend


# The test process runs the S3 server's threads; forking it is what data loaders do all the same.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_worker_reads_with_connections_of_its_own(s3_config, admin, prefix):
    """Data-loader workers fork from a process whose backend already holds pooled connections."""
    import multiprocessing

    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/a.tar", Body=b"shard bytes")
    backend = storage_backend("s3://x/y")
    url = f"s3://{BUCKET}/{prefix}/a.tar"
    with backend.open(url) as stream:  # the parent's client and its connection pool exist now
        assert stream.read() == b"shard bytes"
    parent_client = next(iter(backend._clients.values()))

    def child(queue):
        with backend.open(url) as stream:
            data = stream.read()
        queue.put((data, next(iter(backend._clients.values())) is parent_client))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=child, args=(queue,))
    worker.start()
    data, shared = queue.get(timeout=30)
    worker.join(timeout=30)
    assert data == b"shard bytes"
    assert shared is False
