"""WebDataset tar shards: a fast streaming reader and a crash-safe writer.

A shard is an uncompressed POSIX tar whose members ``{key}.msgpack`` each hold
one sample. Other members of a key are allowed and skipped.

The reader parses tar headers itself rather than going through :mod:`tarfile`:
it is the hot loop of every read, and a direct parse of 512-byte headers from
a buffered stream is both faster and able to say exactly what is wrong with a
damaged shard.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, Literal, Union

from .codec import pack_map, unpack_map
from .errors import AtdataError, ChecksumError, SampleDecodeError, SampleTypeError, ShardError
from .sample import DictSample, is_packable

__all__ = [
    "ShardInfo",
    "ShardWriter",
    "iter_members",
    "iter_samples",
    "HashingReader",
    "OnError",
    "split_member_name",
]

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_RECORD = 20 * BLOCK  # tar pads archives to a multiple of this, as GNU tar and tarfile do

OnError = Union[Literal["raise", "skip"], Callable[[AtdataError], None]]


# --------------------------------------------------------------------------- reading


def split_member_name(name: str) -> tuple[str, str]:
    """Split a member name into WebDataset key and extension at the first dot of the basename.

    >>> split_member_name("train/000123.image.png")
    ('train/000123', 'image.png')
    """
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def _octal(field: bytes, what: str, shard: str, offset: int) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large values
        value = int.from_bytes(field[1:], "big")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ShardError(
            f"corrupt tar header at byte {offset}: {what} field {field!r} is not octal "
            "(the shard is damaged or not a tar file)",
            shard=shard,
        ) from None


def _pax_path(data: bytes) -> str | None:
    path = None
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        if key == b"path":
            path = value.decode("utf-8")
        pos += length
    return path


def iter_members(stream: BinaryIO, *, shard: str = "<stream>") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular file in a tar stream, in order.

    Raises :class:`ShardError` naming the shard (and member) when the archive
    is truncated, a header is corrupt, or the end-of-archive marker is missing.
    """
    read = stream.read
    offset = 0
    long_name: str | None = None
    while True:
        header = read(BLOCK)
        if len(header) < BLOCK:
            if not header and offset == 0:
                raise ShardError("empty file: not a tar archive", shard=shard)
            raise ShardError(
                f"truncated at byte {offset + len(header)}: the archive ends without its "
                "end-of-archive marker (an interrupted download or copy?)",
                shard=shard,
            )
        if header == _ZERO_BLOCK:
            return
        stored = _octal(header[148:156], "checksum", shard, offset)
        actual = sum(header) - sum(header[148:156]) + 256
        if stored != actual:
            raise ShardError(
                f"corrupt tar header at byte {offset}: checksum {stored} != computed {actual} "
                "(the shard is damaged or not a tar file)",
                shard=shard,
            )
        size = _octal(header[124:136], "size", shard, offset)
        kind = header[156:157]
        if long_name is not None:
            name = long_name
            long_name = None
        else:
            name_field = header[:100]
            nul = name_field.find(b"\0")
            raw = name_field if nul < 0 else name_field[:nul]
            if header[257:262] == b"ustar" and header[345] != 0:
                prefix = header[345:500]
                nul = prefix.find(b"\0")
                raw = (prefix if nul < 0 else prefix[:nul]) + b"/" + raw
            name = raw.decode("utf-8", "surrogateescape")
        data = read(size)
        if len(data) < size:
            raise ShardError(
                f"truncated: member declares {size} bytes but only {len(data)} remain",
                shard=shard,
                member=name,
            )
        pad = -size % BLOCK
        if pad and len(read(pad)) < pad:
            raise ShardError("truncated inside the padding after this member", shard=shard, member=name)
        offset += BLOCK + size + pad
        if kind in (b"0", b"\0", b"7"):
            yield name, data
        elif kind == b"x":
            long_name = _pax_path(data)
        elif kind == b"L":
            long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        # directories, links, global pax headers and others carry no samples


class HashingReader:
    """Wrap a binary stream, hashing every byte read; :meth:`verify` checks the digest."""

    __slots__ = ("_stream", "_hash", "read")

    def __init__(self, stream: BinaryIO, algorithm: str = "sha256"):
        self._stream = stream
        self._hash = hashlib.new(algorithm)
        update = self._hash.update
        raw_read = stream.read

        def read(n: int = -1) -> bytes:
            data = raw_read(n)
            update(data)
            return data

        self.read = read

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def verify(self, expected: str, *, shard: str) -> None:
        """Drain the stream and compare the digest with ``expected`` (hex)."""
        while self.read(1 << 20):
            pass
        actual = self._hash.hexdigest()
        if actual.lower() != expected.lower():
            raise ChecksumError(shard, expected.lower(), actual, self._hash.name)

    def close(self) -> None:
        self._stream.close()


def handle_error(error: AtdataError, on_error: OnError) -> None:
    """Apply an ``on_error`` policy: re-raise, warn and skip, or hand to a callable."""
    if on_error == "raise":
        raise error
    if on_error == "skip":
        warnings.warn(f"skipping: {error}", stacklevel=3)
        return
    if callable(on_error):
        on_error(error)
        return
    raise ValueError(f"on_error must be 'raise', 'skip' or a callable, not {on_error!r}")


def iter_samples(
    stream: BinaryIO,
    decode: Callable[[dict[str, Any]], Any] = DictSample.from_map,
    *,
    shard: str = "<stream>",
    on_error: OnError = "raise",
    checksum: str | None = None,
) -> Iterator[Any]:
    """Decode every ``.msgpack`` member of a shard stream with ``decode``.

    With ``checksum`` (sha256 hex), the whole stream is hashed as it is read and
    compared at the end; a mismatch raises :class:`ChecksumError` (or is passed
    to ``on_error``). Bad samples raise :class:`SampleDecodeError` naming the
    shard and member, or are skipped with a warning under ``on_error="skip"``.
    """
    reader: Any = HashingReader(stream) if checksum else stream
    unpack = unpack_map
    try:
        for name, data in iter_members(reader, shard=shard):
            if not name.endswith(".msgpack"):
                continue
            try:
                yield decode(unpack(data))
            except SampleDecodeError as exc:
                handle_error(exc.located(shard, name), on_error)
    except ShardError as exc:
        handle_error(exc, on_error)
        return
    if checksum:
        try:
            reader.verify(checksum, shard=shard)
        except ChecksumError as exc:
            handle_error(exc, on_error)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ShardInfo:
    """One finished shard: its URL, how many samples, how many bytes, its sha256 (hex).

    ``url`` is where readers find the shard: the URL it will be served from
    when the writer was given a ``base_url``, else where it was written.
    ``path`` is where the writer put the bytes (a local path, or the URL of
    a remote pattern), for copying the shard to where ``url`` points.
    """

    url: str
    count: int
    size: int
    sha256: str
    path: str | None = None

    def __post_init__(self) -> None:
        if self.path is None:
            object.__setattr__(self, "path", self.url)


def _tar_header(name: bytes, size: int, mtime: int, kind: bytes = b"0") -> bytes:
    header = bytearray(BLOCK)
    header[: len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b"        "
    header[156:157] = kind
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _member(name: str, data: bytes, mtime: int) -> bytes:
    """One tar member (header, data, padding) as a single bytes object."""
    raw = name.encode("utf-8")
    prefix = b""
    if len(raw) > 100:
        # a pax extended header carries the long name
        record_body = b" path=" + raw + b"\n"
        length = len(record_body) + 1
        while len(str(length).encode()) + len(record_body) != length:
            length = len(str(length).encode()) + len(record_body)
        pax = str(length).encode() + record_body
        prefix = _tar_header(b"././@PaxHeader", len(pax), mtime, b"x") + pax + bytes(-len(pax) % BLOCK)
        raw = raw[-100:]
    return b"".join((prefix, _tar_header(raw, len(data), mtime), data, bytes(-len(data) % BLOCK)))


_PERCENT = re.compile(r"%0?\d*d")
_BRACE = re.compile(r"\{[^{}]*\}")


def _shard_name(pattern: str, index: int) -> str:
    if _PERCENT.search(pattern):
        return pattern % index
    if _BRACE.search(pattern):
        return pattern.format(index, shard=index, index=index)
    return pattern


class ShardWriter:
    """Write samples into numbered tar shards, rolling over at ``maxcount`` / ``maxsize``.

    ``pattern`` names the shards: ``"out/train-%06d.tar"`` or
    ``"out/train-{shard:06d}.tar"``. A local path or ``file://`` URL is written
    in place; any other URL (``s3://...``) is written to a local temporary file
    and handed to that scheme's storage backend when the shard is complete.

    ``base_url`` is the public URL prefix the shards will be served from, when
    that is not where they are written: each shard's ``url`` is then
    ``base_url`` plus the shard's file name, ready for
    :func:`~atdata_core.publish_dataset`, while ``path`` says where the bytes
    are::

        with ShardWriter("site/data/train-%06d.tar", base_url="https://example.org/data/") as sink:
            ...
        sink.shards[0].url   # 'https://example.org/data/train-000000.tar'
        sink.shards[0].path  # 'site/data/train-000000.tar'

    Each shard is written under a temporary name and renamed when complete, so
    an interrupted run never leaves a half shard under a final name::

        with ShardWriter("out/data-%06d.tar", maxcount=1000) as sink:
            for sample in samples:
                sink.write(sample)
        sink.shards  # [ShardInfo(url, count, size, sha256, path), ...]

    A finished shard is fsynced and renamed (or uploaded) in a background
    thread while the next one is written; ``shards`` is complete once
    :meth:`close` (or the ``with`` block) returns.
    """

    def __init__(
        self,
        pattern: str | os.PathLike[str],
        *,
        maxcount: int = 10_000,
        maxsize: int | None = 3_000_000_000,
        start_shard: int = 0,
        progress: bool = False,
        base_url: str | None = None,
    ):
        if maxcount < 1:
            raise ValueError("maxcount must be at least 1")
        self.pattern = os.fspath(pattern)
        self.base_url = _check_base_url(base_url) if base_url is not None else None
        self.maxcount = maxcount
        self.maxsize = maxsize
        self.shards: list[ShardInfo] = []
        self._index = start_shard
        self._mtime = int(time.time())
        self._total = 0
        self._file: BinaryIO | None = None
        self._keys: set[str] = set()
        self._remote = "://" in self.pattern and not self.pattern.startswith("file://")
        self._sealer: Any = None
        self._pending: list[tuple[Any, str, int, int, str]] = []
        self._progress = None
        if progress:
            from tqdm import tqdm

            self._progress = tqdm(unit=" samples", desc="writing shards")

    # -- lifecycle

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> list[ShardInfo]:
        """Finish the current shard, wait until every shard is stored, and return them all."""
        self._finish()
        try:
            self._collect(wait=True)
        finally:
            self._shutdown()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        return self.shards

    def _shutdown(self) -> None:
        if self._sealer is not None:
            self._sealer.shutdown(wait=True)
            self._sealer = None

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file); finished shards stay."""
        try:
            self._collect(wait=True)
        except Exception:
            pass  # the error that made us abort matters more
        finally:
            self._shutdown()
        if self._file is not None:
            self._file.close()
            self._file = None
            try:
                os.unlink(self._tmp_path)
            except FileNotFoundError:
                pass
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    # -- writing

    def write(self, sample: Any, key: str | None = None) -> str:
        """Append one sample (packable instance, DictSample or plain map); returns its key."""
        if is_packable(type(sample)) or isinstance(sample, DictSample):
            payload = sample.to_bytes()
        elif isinstance(sample, dict):
            payload = pack_map(sample)
        else:
            raise SampleTypeError(
                f"cannot write a {type(sample).__name__}: pass a @packable sample, a DictSample or a dict"
            )
        if key is None:
            key = f"{self._total:010d}"
        elif "." in key[key.rfind("/") + 1 :]:
            raise ValueError(f"sample key {key!r} contains '.', which would split it; use '_' or '-'")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r}: keys must be unique within a dataset")
        self._keys.add(key)
        member = _member(key + ".msgpack", payload, self._mtime)
        nbytes = len(member)
        if self._file is not None and (
            self._count >= self.maxcount
            or (self.maxsize is not None and self._size + nbytes + 2 * BLOCK > self.maxsize)
        ):
            self._finish()
        if self._file is None:
            self._start()
        self._hash.update(member)
        self._file.write(member)
        self._size += nbytes
        self._count += 1
        self._total += 1
        if self._progress is not None:
            self._progress.update(1)
        return key

    # -- shard lifecycle

    def _start(self) -> None:
        if (self.shards or self._pending) and _shard_name(self.pattern, 0) == _shard_name(self.pattern, 1):
            raise ValueError(
                f"pattern {self.pattern!r} has no shard number (like %06d or {{shard:06d}}), "
                "so a second shard would overwrite the first; add one or raise maxcount/maxsize"
            )
        self._url = _shard_name(self.pattern, self._index)
        if self._remote:
            fd, self._tmp_path = tempfile.mkstemp(suffix=".tar", prefix="atdata-shard-")
            self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        else:
            from .storage.file import local_path

            final = local_path(self._url)
            directory = os.path.dirname(final) or "."
            os.makedirs(directory, exist_ok=True)
            self._final_path = final
            self._tmp_path = f"{final}.tmp-{os.getpid()}"
            self._file = open(self._tmp_path, "wb", buffering=1 << 20)
        self._hash = hashlib.sha256()
        self._size = 0
        self._count = 0

    def _finish(self) -> None:
        if self._file is None:
            return
        trailer = bytes(2 * BLOCK)
        total = self._size + len(trailer)
        trailer += bytes(-total % _RECORD)
        self._file.write(trailer)
        self._hash.update(trailer)
        self._size += len(trailer)
        self._file.flush()
        file, self._file = self._file, None
        # fsync + rename (or upload) run in a background thread, overlapping the next shard.
        if self._sealer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atdata-shard-seal")
        target = self._url if self._remote else self._final_path
        future = self._sealer.submit(_seal, file, self._tmp_path, target, self._remote)
        self._pending.append((future, self._url, self._count, self._size, self._hash.hexdigest()))
        self._index += 1
        self._collect(wait=False)

    def _collect(self, *, wait: bool) -> None:
        """Move sealed shards into ``self.shards`` in order; re-raise a sealing failure."""
        while self._pending and (wait or self._pending[0][0].done()):
            future, url, count, size, digest = self._pending.pop(0)
            stored = future.result() or url
            public = self._public_url(url) if self.base_url is not None else stored
            self.shards.append(ShardInfo(public, count, size, digest, stored))

    def _public_url(self, url: str) -> str:
        """``base_url`` plus the shard's file name (percent-encoded when it came from a local path)."""
        if self._remote:
            name = url.rsplit("/", 1)[-1]
        else:
            from urllib.parse import quote

            from .storage.file import local_path

            name = quote(os.path.basename(local_path(url)))
        return f"{self.base_url}/{name}"


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]", base_url):
        raise ValueError(
            f"base_url must be the URL the shards will be served from, like https://example.org/data/, not {base_url!r}"
        )
    if "?" in base_url or "#" in base_url:
        raise ValueError(f"base_url {base_url!r} has a query or fragment; shard names are appended to its path")
    return base_url.rstrip("/")


def _seal(file: BinaryIO, tmp_path: str, target: str, remote: bool) -> str:
    """Make a finished shard durable and give it its final name (or hand it to its storage)."""
    try:
        os.fsync(file.fileno())
    finally:
        file.close()
    if not remote:
        os.replace(tmp_path, target)
        return target
    from .storage import storage_for

    try:
        url = storage_for(target).put(tmp_path, target) or target
    except Exception as exc:
        raise ShardError(
            f"could not store the finished shard ({exc}); its bytes are kept at {tmp_path}",
            shard=target,
        ) from exc
    os.unlink(tmp_path)
    return url
