"""The storage conformance suites: one for backends, one for the record mapping capability."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from atdata_core._shardref import ShardRef
from atdata_core.errors import RecordError, StorageError, StorageNotFound
from atdata_core.plugins._contracts import StorageBackend, StorageRecordMapper

__all__ = ["StorageBackendConformance", "StorageRecordMapperConformance"]


def _payload(size: int, seed: int) -> bytes:
    # Not all zeros, so offsets and chunk boundaries matter.
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


class _StorageFixtures:
    """The fixtures both storage suites use; a test class inheriting both suites provides them once."""

    #: False if ``list`` (and so ``glob``) cannot work for this store (plain HTTP).
    supports_listing: bool = True
    #: True if the backend is installed as a plugin, so the registry can be checked.
    check_registry: bool = False

    @pytest.fixture
    def backend(self) -> Any:
        pytest.fail("provide a `backend` fixture returning the storage backend under test")

    @pytest.fixture
    def base_url(self) -> str:
        pytest.fail("provide a `base_url` fixture: a writable, empty URL folder unique to the test")

    @pytest.fixture
    def put_bytes(self, backend: Any, tmp_path: Any) -> Callable[[str, bytes], str]:
        counter = iter(range(1_000_000))
        counter_lock = threading.Lock()

        def put(url: str, data: bytes) -> str:
            with counter_lock:
                number = next(counter)
            local = os.path.join(tmp_path, f"upload-{number}.bin")
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


class StorageBackendConformance(_StorageFixtures):
    """Checks a :class:`~atdata_core.plugins.StorageBackend` against its contract.

    Fixtures to provide:

    ``backend``
        The backend under test.
    ``base_url``
        A URL "folder" (no trailing slash) where the test may write, empty at
        the start and unique to the test, e.g. ``f"mem://bucket/{request.node.name}"``.

    Class attributes to set:

    ``supports_listing`` (default True)
        False if ``list`` cannot work for this store (plain HTTP); the suite
        then checks that ``list`` and pattern ``glob`` raise :class:`StorageError`.
    ``check_registry`` (default False)
        True if the backend is installed as a plugin: the suite then checks that
        :func:`atdata_core.plugins.storage_backend` routes ``base_url`` to it,
        and that it maps storage records if it registered record types.

    Covered: the primitives, the derived ``exists``, ``glob`` and ``expand``
    (inherited from :class:`~atdata_core.plugins.StorageBase` or written by
    hand), ``list`` semantics, and use from several threads at once. A
    backend with a storage record type runs
    :class:`StorageRecordMapperConformance` as well.
    """

    #: Big enough that a streaming read takes many chunks.
    payload_size: int = 300_000

    def test_fulfils_the_storage_backend_contract(self, backend):
        assert isinstance(backend, StorageBackend), (
            "a storage backend needs open, size, put, delete, list, exists, glob and expand; "
            "subclass atdata_core.plugins.StorageBase to inherit the last three"
        )

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

    def test_a_folder_is_not_an_object(self, backend, base_url, put_bytes):
        put_bytes(f"{base_url}/folder/inside.tar", b"x")
        assert backend.exists(f"{base_url}/folder") is False

    def test_delete_removes_the_object(self, backend, base_url, put_bytes):
        url = put_bytes(f"{base_url}/doomed.tar", b"bye")
        backend.delete(url)
        assert backend.exists(url) is False
        with pytest.raises(StorageNotFound):
            backend.open(url)

    # -- listing -------------------------------------------------------------

    def test_list_returns_everything_below_a_folder_sorted(self, backend, base_url, put_bytes):
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
        assert backend.list(f"{base_url}/") == sorted(urls), "a trailing / on the prefix changes nothing"
        assert backend.list(f"{base_url}/sub") == [urls[2]]
        assert backend.list(f"{base_url}/nothing-here") == []

    def test_list_prefix_names_a_folder_not_a_name_prefix(self, backend, base_url, put_bytes):
        inside = [put_bytes(f"{base_url}/set/a.tar", b"a"), put_bytes(f"{base_url}/set/deeper/b.tar", b"b")]
        put_bytes(f"{base_url}/set2/x.tar", b"x")
        put_bytes(f"{base_url}/settle.tar", b"s")
        if not self.supports_listing:
            with pytest.raises(StorageError):
                backend.list(f"{base_url}/set")
            return
        assert backend.list(f"{base_url}/set") == sorted(inside)
        # Not the first letters of a name either: "a" is no folder here.
        assert backend.list(f"{base_url}/set/a") == []

    def test_list_of_an_object_is_that_object(self, backend, base_url, put_bytes):
        url = put_bytes(f"{base_url}/only.tar", b"o")
        if not self.supports_listing:
            pytest.skip("this store cannot list")
        assert backend.list(url) == [url]

    # -- glob and expand ------------------------------------------------------

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
        assert backend.glob(f"{base_url}/data-[!2].tar") == [a]
        assert backend.glob(f"{base_url}/*.parquet") == []

    def test_glob_stars_never_cross_a_slash(self, backend, base_url, put_bytes):
        top = put_bytes(f"{base_url}/x.tar", b"1")
        nested = put_bytes(f"{base_url}/one/x.tar", b"2")
        deeper = put_bytes(f"{base_url}/one/two/x.tar", b"3")
        put_bytes(f"{base_url}/set2/x.tar", b"4")
        if not self.supports_listing:
            pytest.skip("this store cannot list")
        assert backend.glob(f"{base_url}/*.tar") == [top]
        assert backend.glob(f"{base_url}/one/*/x.tar") == [deeper]
        assert backend.glob(f"{base_url}/o?e/x.tar") == [nested]
        assert backend.glob(f"{base_url}/set/*") == []

    def test_glob_without_a_pattern_is_that_url_if_it_exists(self, backend, base_url, put_bytes):
        url = put_bytes(f"{base_url}/plain.tar", b"p")
        assert backend.glob(url) == [url]
        assert backend.glob(f"{base_url}/absent.tar") == []

    def test_expand_braces_names_shards_without_asking_the_store(self, backend, base_url, put_bytes):
        for index in range(2):
            put_bytes(f"{base_url}/data-{index:06d}.tar", b"d")
        expected = [f"{base_url}/data-{index:06d}.tar" for index in range(3)]
        # The third shard does not exist: ranges are not checked (a remote range costs no requests).
        assert backend.expand(f"{base_url}/data-{{000000..000002}}.tar") == expected
        assert backend.expand(f"{base_url}/{{train,test}}.tar") == [f"{base_url}/train.tar", f"{base_url}/test.tar"]

    def test_expand_globs_each_brace_option(self, backend, base_url, put_bytes):
        train = [put_bytes(f"{base_url}/train/{index}.tar", b"t") for index in (2, 1)]
        test = put_bytes(f"{base_url}/test/0.tar", b"v")
        pattern = f"{base_url}/{{train,test}}/*.tar"
        if not self.supports_listing:
            with pytest.raises(StorageError):
                backend.expand(pattern)
            return
        assert backend.expand(pattern) == [*sorted(train), test]

    # -- threads ---------------------------------------------------------------

    def test_threads_can_put_and_open_at_once(self, backend, base_url, put_bytes):
        """The registry shares one backend between threads; ShardWriter puts from a background thread."""
        shared_versions = [_payload(20_000, 100 + version) for version in range(2)]
        shared = put_bytes(f"{base_url}/shared.tar", shared_versions[0])

        def work(index: int) -> None:
            data = _payload(10_000 + index, 200 + index)
            url = put_bytes(f"{base_url}/thread-{index:02d}.tar", data)
            assert self.read_all(backend, url) == data
            if index % 4 == 0:
                put_bytes(shared, shared_versions[index % 8 // 4])
            # A reader sees one whole version or the other, never a mix.
            assert self.read_all(backend, shared) in shared_versions

        with ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(work, index) for index in range(24)]:
                future.result()
        for index in range(24):
            assert backend.exists(f"{base_url}/thread-{index:02d}.tar")

    # -- routing ---------------------------------------------------------------

    def test_registry_routes_the_url_to_this_backend(self, backend, base_url):
        if not self.check_registry:
            pytest.skip("check_registry is False: the backend is not installed as a plugin here")
        from atdata_core.plugins import get_registry

        registry = get_registry().storage
        spec = registry.spec_for_url(f"{base_url}/x.tar")
        routed = registry.instance(spec)
        assert type(routed) is type(backend)
        if spec.record_types:
            assert isinstance(routed, StorageRecordMapper), (
                f"the backend registers record types {spec.record_types} but does not map storage "
                "records: implement to_storage_record and from_storage_record, and run "
                "StorageRecordMapperConformance"
            )


class StorageRecordMapperConformance(_StorageFixtures):
    """Checks a :class:`~atdata_core.plugins.StorageRecordMapper`: a storage backend
    that maps shards to and from the entry record's ``storage`` member.

    Provide the same ``backend`` and ``base_url`` fixtures as for
    :class:`StorageBackendConformance` (``put`` must work: the shards are
    written, recorded, then read back through the record), and set:

    ``record_type``
        The storage-union ``$type`` ``to_storage_record`` writes
        (``"science.alt.dataset.storageHttp"``).
    ``check_registry`` (default False)
        True if the backend is installed as a plugin: the suite then checks
        that the registry routes ``record_type`` to it.
    ``records_keep_urls`` (default True)
        False for a record type that names shards by content rather than by
        URL (PDS blobs: a blob CID): the shards read back then have other
        URLs than the ones written, and the suite checks that they come in
        the same order, with the same checksums, and open to the same bytes.

    and, when ``from_storage_record`` needs to know where the entry is, the
    fixture ``record_context``: the keyword arguments the core passes along
    when it reads an entry (``{"repo": did}``, the DID of the repository
    holding the entry). Default: none.

    One class may inherit both suites::

        class TestMyStorage(StorageBackendConformance, StorageRecordMapperConformance):
            record_type = "com.example.storageZip"
            ...
    """

    record_type: str = ""
    records_keep_urls: bool = True

    @pytest.fixture
    def record_context(self) -> dict[str, Any]:
        """Keyword arguments for ``from_storage_record`` (``{"repo": did}``); none by default."""
        return {}

    @pytest.fixture
    def written(self, base_url, put_bytes) -> list[tuple[ShardRef, bytes]]:
        """Three shards in the store, as ShardRefs with their sha256."""
        out = []
        for index in range(3):
            data = _payload(1_000 + index, 10 + index)
            url = put_bytes(f"{base_url}/rec-{index:06d}.tar", data)
            out.append((ShardRef(url, hashlib.sha256(data).hexdigest()), data))
        return out

    def test_fulfils_the_record_mapper_contract(self, backend):
        assert self.record_type, "set the class attribute record_type to the $type your backend writes"
        assert isinstance(backend, StorageRecordMapper)

    def test_record_round_trip_keeps_urls_checksums_and_order(self, backend, written, record_context):
        refs = [ref for ref, _ in reversed(written)]
        record = backend.to_storage_record(refs)
        assert record["$type"] == self.record_type
        read = backend.from_storage_record(json.loads(json.dumps(record)), **record_context)  # records travel as JSON
        for ref in read:
            assert isinstance(ref, ShardRef)
        if self.records_keep_urls:
            assert [(ref.url, ref.sha256) for ref in read] == [(ref.url, ref.sha256) for ref in refs]
            return
        assert [ref.sha256 for ref in read] == [ref.sha256 for ref in refs]
        data_of = {ref.url: data for ref, data in written}
        assert [self.read_all(backend, ref.url) for ref in read] == [data_of[ref.url] for ref in refs]

    def test_recorded_urls_open_to_bytes_that_match_their_checksum(self, backend, written, record_context):
        record = backend.to_storage_record([ref for ref, _ in written])
        for (ref, data), read in zip(written, backend.from_storage_record(record, **record_context), strict=True):
            opened = self.read_all(backend, read.url)
            assert opened == data
            assert hashlib.sha256(opened).hexdigest() == read.sha256 == ref.sha256

    def test_a_shard_without_a_checksum_cannot_be_recorded(self, backend, written):
        ref, _ = written[0]
        with pytest.raises(StorageError):
            backend.to_storage_record([ref._replace(sha256=None)])
        with pytest.raises(StorageError):
            backend.to_storage_record([])

    def test_from_storage_record_refuses_another_type(self, backend):
        with pytest.raises(RecordError):
            backend.from_storage_record({"$type": "com.example.notStorage", "shards": []})

    def test_registry_routes_the_record_type_to_this_backend(self, backend):
        if not self.check_registry:
            pytest.skip("check_registry is False: the backend is not installed as a plugin here")
        from atdata_core.plugins import get_registry

        assert type(get_registry().storage.for_record_type(self.record_type)) is type(backend)
