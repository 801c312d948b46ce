"""Blob downloads checked against their CID, restarted when they drop; CIDs and URLs.

A PDS cannot be made to drop a connection half-way on request, so these
downloads are fakes that do (the real PDS is in the other test files).
"""

from __future__ import annotations

import hashlib
import io

import pytest
import urllib3.exceptions

from atdata_core.errors import ChecksumError, StorageError
from atdata_storage_blob._cid import blob_cid, cid_digest, is_blob_cid
from atdata_storage_blob._stream import VerifiedBlob
from atdata_storage_blob.storage import BlobUrl

DATA = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB, not all one byte
CID = blob_cid(hashlib.sha256(DATA).digest())
URL = f"atblob://did:plc:abcdefghijklmnopqrstuvwx/{CID}"


class Download(io.RawIOBase):
    """One download of ``body``, dropping with a connection error after ``drop_at`` bytes."""

    def __init__(self, body: bytes, drop_at: int | None = None, size: int | None = None):
        super().__init__()
        self.body = io.BytesIO(body)
        self.drop_at = drop_at
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        position = self.body.tell()
        if self.drop_at is not None and position >= self.drop_at:
            raise urllib3.exceptions.ProtocolError("Connection broken: connection reset by peer")
        limit = len(buffer) if self.drop_at is None else min(len(buffer), self.drop_at - position)
        data = self.body.read(limit)
        buffer[: len(data)] = data
        return len(data)


def blob(downloads: list, **options) -> tuple[VerifiedBlob, list]:
    """A VerifiedBlob over successive downloads; the list records how many were started."""
    started = []

    def fetch():
        started.append(1)
        return downloads[len(started) - 1]

    settings = dict(digest=cid_digest(CID), cid=CID, url=URL, resumes=3, max_bytes=1 << 30, backoff=0.0,
                    chunk=100_000)
    settings.update(options)
    return VerifiedBlob(fetch, **settings), started


def read_all(stream, n: int = 65_536) -> bytes:
    out = bytearray()
    while chunk := stream.read(n):
        out += chunk
    return bytes(out)


def test_a_whole_download_reads_through():
    stream, started = blob([Download(DATA, size=len(DATA))])
    assert read_all(io.BufferedReader(stream)) == DATA
    assert len(started) == 1


def test_a_dropped_download_starts_again_from_the_first_byte_and_skips_what_was_received():
    stream, started = blob([Download(DATA, drop_at=300_001), Download(DATA, drop_at=900_000), Download(DATA)])
    assert read_all(stream, 4093) == DATA
    assert len(started) == 3


def test_too_many_drops_in_a_row_fail_naming_the_shard_and_the_byte():
    stream, _ = blob([Download(DATA, drop_at=200_000)] + [Download(DATA, drop_at=100_000)] * 3, resumes=2)
    with pytest.raises(StorageError) as failed:
        read_all(stream)
    assert URL in str(failed.value) and "200,000" in str(failed.value) and "2 restarts" in str(failed.value)


def test_a_body_that_ends_short_of_its_length_is_started_again():
    stream, started = blob([Download(DATA[:500_000], size=len(DATA)), Download(DATA, size=len(DATA))])
    assert read_all(stream) == DATA
    assert len(started) == 2


def test_wrong_bytes_raise_before_the_last_chunk_even_for_a_reader_that_stops_at_the_size():
    tampered = bytearray(DATA)
    tampered[700_000] ^= 1
    stream, _ = blob([Download(bytes(tampered))])
    reader = io.BufferedReader(stream)
    with pytest.raises(ChecksumError) as caught:
        received = b""
        while len(received) < len(DATA):  # never asks past the recorded size
            received += reader.read(len(DATA) - len(received))
    assert URL in str(caught.value) and f"blob CID {CID}" in str(caught.value)
    assert hashlib.sha256(bytes(tampered)).hexdigest() in str(caught.value)


def test_a_restart_that_serves_other_bytes_is_caught():
    other = bytearray(DATA)
    other[1_000_000] ^= 1
    stream, _ = blob([Download(DATA, drop_at=600_000), Download(bytes(other))])
    with pytest.raises(ChecksumError):
        read_all(stream)


def test_an_endless_body_is_stopped():
    stream, _ = blob([Download(DATA)], max_bytes=1_000_000)
    with pytest.raises(StorageError, match="more than 1,000,000 bytes"):
        read_all(stream)


def test_an_empty_blob_verifies():
    empty = blob_cid(hashlib.sha256(b"").digest())
    stream, _ = blob([Download(b"", size=0)], digest=cid_digest(empty), cid=empty)
    assert read_all(stream) == b""


# --------------------------------------------------------------------------- CIDs and URLs


def test_a_blob_cid_is_the_sha256_behind_the_raw_codec_prefix():
    digest = hashlib.sha256(b"hello").digest()
    cid = blob_cid(digest)
    assert cid.startswith("bafkrei") and len(cid) == 59
    assert cid_digest(cid) == digest
    # Another codec (dag-cbor, 0x71) or hash is not a blob whose bytes can be checked.
    assert not is_blob_cid("bafyreiaze2oa4roio4m6uinujiop7jnim42veafgzveqh2i42gph3l6d3q")
    assert not is_blob_cid("not-a-cid") and not is_blob_cid(cid.upper())


def test_urls_name_a_repository_by_did_and_a_blob_or_a_path_below_it():
    did = "did:plc:abcdefghijklmnopqrstuvwx"
    assert BlobUrl.parse(f"atblob://{did}/{CID}").cid == CID
    shard = BlobUrl.parse(f"atblob://{did}/mnist/{CID}")
    assert shard.cid is None and shard.path == f"mnist/{CID}"
    assert str(BlobUrl.parse(f"atblob://{did}/a/", folder=True)) == f"atblob://{did}/a"
    for bad in ("atblob://alice.test/a.tar", f"atblob://{did}", f"atblob://{did}/a/../b.tar",
                f"atblob://{did}/a//b.tar", f"s3://{did}/a.tar", f"atblob://{did}/a\nb.tar"):
        with pytest.raises(StorageError):
            BlobUrl.parse(bad)
