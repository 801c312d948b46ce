"""The storage backend conformance suite."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from atdata_core.errors import RecordError, StorageError, StorageNotFound


def _payload(size: int, seed: int) -> bytes:
    # Not all zeros, so offsets and chunk boundaries matter.
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


class StorageBackendConformance:
    """Checks a :class:`~atdata_core.plugins.StorageBackend` against its contract.

    Fixtures to provide:

    ``backend``
        The backend under test.
    ``base_url``
        A URL "folder" (no trailing slash) where the test may write, empty at
        the start and unique to the test, e.g. ``f"mem://bucket/{request.node.name}"``.

    Class attributes to set:

    ``supports_listing`` (default True)
        False if ``list`` and ``glob`` cannot work for this store (plain HTTP);
        the suite then checks that they raise :class:`StorageError`.
    ``record_type`` (default None)
        The storage-union ``$type`` ``to_storage_record`` produces, or None if
        the backend's shards cannot be published (the suite then checks that it
        raises :class:`StorageError`).
    ``check_registry`` (default False)
        True if the backend is installed as a plugin: the suite then checks that
        :func:`atdata_core.plugins.storage_backend` routes ``base_url`` to it.
    """

    supports_listing: bool = True
    record_type: str | None = None
    check_registry: bool = False
    #: Big enough that a streaming read takes many chunks.
    payload_size: int = 300_000

    @pytest.fixture
    def backend(self) -> Any:
        pytest.fail("provide a `backend` fixture returning the storage backend under test")

    @pytest.fixture
    def base_url(self) -> str:
        pytest.fail("provide a `base_url` fixture: a writable, empty URL folder unique to the test")

    @pytest.fixture
    def put_bytes(self, backend: Any, tmp_path: Any) -> Callable[[str, bytes], str]:
        counter = iter(range(1_000_000))

        def put(url: str, data: bytes) -> str:
            local = os.path.join(tmp_path, f"upload-{next(counter)}.bin")
            with open(local, "wb") as handle:
                handle.write(data)
            returned = backend.put(local, url)
            assert isinstance(returned, str), "put() must return the object's URL"
            return returned

        return put

    @staticmethod
    def read_all(backend: Any, url: str) -> bytes:
        with backend.open(url) as stream:
            return stream.read()

    # -- reading and writing ----------------------------------------------

    def test_put_then_open_returns_the_same_bytes(self, backend, base_url, put_bytes):
        data = _payload(self.payload_size, 1)
        url = put_bytes(f"{base_url}/data-000000.tar", data)
        assert self.read_all(backend, url) == data

    def test_open_streams_in_chunks_that_add_up_to_the_whole(self, backend, base_url, put_bytes):
        data = _payload(self.payload_size, 2)
        url = put_bytes(f"{base_url}/chunks.tar", data)
        stream = backend.open(url)
        try:
            assert stream.readable()
            chunks = []
            while True:
                chunk = stream.read(4093)
                assert len(chunk) <= 4093, "read(n) must return at most n bytes"
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            stream.close()
        assert len(chunks) > 1
        assert b"".join(chunks) == data
        assert stream.closed

    def test_put_replaces_an_existing_object_whole(self, backend, base_url, put_bytes):
        url = f"{base_url}/replaced.tar"
        put_bytes(url, _payload(50_000, 3))
        smaller = _payload(1_000, 4)
        put_bytes(url, smaller)
        assert self.read_all(backend, url) == smaller

    def test_empty_object_round_trips(self, backend, base_url, put_bytes):
        url = put_bytes(f"{base_url}/empty.tar", b"")
        assert self.read_all(backend, url) == b""
        assert backend.size(url) in (0, None)

    def test_size_and_exists(self, backend, base_url, put_bytes):
        data = _payload(12_345, 5)
        url = put_bytes(f"{base_url}/sized.tar", data)
        assert backend.exists(url) is True
        assert backend.size(url) in (len(data), None)

    def test_missing_object(self, backend, base_url):
        url = f"{base_url}/no-such-shard.tar"
        assert backend.exists(url) is False
        with pytest.raises(StorageNotFound):
            backend.open(url)
        with pytest.raises(StorageNotFound):
            backend.size(url)
        with pytest.raises(StorageNotFound):
            backend.delete(url)

    def test_delete_removes_the_object(self, backend, base_url, put_bytes):
        url = put_bytes(f"{base_url}/doomed.tar", b"bye")
        backend.delete(url)
        assert backend.exists(url) is False
        with pytest.raises(StorageNotFound):
            backend.open(url)

    # -- listing -------------------------------------------------------------

    def test_list_returns_everything_under_a_prefix_sorted(self, backend, base_url, put_bytes):
        urls = [
            put_bytes(f"{base_url}/b.tar", b"b"),
            put_bytes(f"{base_url}/a.tar", b"a"),
            put_bytes(f"{base_url}/sub/c.tar", b"c"),
        ]
        if not self.supports_listing:
            with pytest.raises(StorageError):
                backend.list(base_url)
            return
        assert backend.list(base_url) == sorted(urls)
        assert backend.list(f"{base_url}/a") == [urls[1]]
        assert backend.list(f"{base_url}/nothing-here") == []

    def test_glob_matches_one_level_sorted(self, backend, base_url, put_bytes):
        a = put_bytes(f"{base_url}/data-1.tar", b"1")
        b = put_bytes(f"{base_url}/data-2.tar", b"2")
        put_bytes(f"{base_url}/data-3.idx", b"3")
        put_bytes(f"{base_url}/sub/data-4.tar", b"4")
        if not self.supports_listing:
            with pytest.raises(StorageError):
                backend.glob(f"{base_url}/*.tar")
            return
        assert backend.glob(f"{base_url}/*.tar") == sorted([a, b])
        assert backend.glob(f"{base_url}/data-?.tar") == sorted([a, b])
        assert backend.glob(f"{base_url}/data-[2].tar") == [b]
        assert backend.glob(f"{base_url}/*.parquet") == []

    # -- storage records ------------------------------------------------------

    def test_storage_record_round_trip(self, backend, base_url, put_bytes):
        shards = []
        for index in range(2):
            data = _payload(1_000 + index, 10 + index)
            url = put_bytes(f"{base_url}/rec-{index}.tar", data)
            shards.append((url, hashlib.sha256(data).hexdigest()))
        if self.record_type is None:
            with pytest.raises(StorageError):
                backend.to_storage_record(shards)
            return
        record = backend.to_storage_record(shards)
        assert record["$type"] == self.record_type
        json.dumps(record)  # records are JSON
        assert backend.from_storage_record(record) == shards
        # A record read back from JSON names the same shards.
        assert backend.from_storage_record(json.loads(json.dumps(record))) == shards

    def test_from_storage_record_refuses_another_type(self, backend):
        if self.record_type is None:
            pytest.skip("this backend reads no storage records")
        with pytest.raises(RecordError):
            backend.from_storage_record({"$type": "com.example.notStorage", "shards": []})

    def test_registry_routes_the_url_to_this_backend(self, backend, base_url):
        if not self.check_registry:
            pytest.skip("check_registry is False: the backend is not installed as a plugin here")
        from atdata_core.plugins import get_registry

        routed = get_registry().storage.for_url(f"{base_url}/x.tar")
        assert type(routed) is type(backend)
        if self.record_type is not None:
            assert type(get_registry().storage.for_record_type(self.record_type)) is type(backend)
