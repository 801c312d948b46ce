"""WebDataset tar shards: a fast streaming reader and a crash-safe writer.

A shard is an uncompressed POSIX tar whose members ``{key}.msgpack`` each hold
one sample. Other members of a key are allowed and skipped.

The reader parses tar headers itself rather than going through :mod:`tarfile`:
it is the hot loop of every read, and a direct parse of 512-byte headers from
a buffered stream is both faster and able to say exactly what is wrong with a
damaged shard.

Shards are written by strangers, so the reader trusts none of their numbers:
every header field it uses is checked (octal digits only, no negative or
oversized base-256 sizes, well-formed pax records that always move forward),
a member may not claim more than :attr:`ShardLimits.max_member_bytes`, and no
read asks for more than a few MiB at a time, so memory follows the bytes that
actually arrive rather than the sizes a header claims. Reading stops at the
end-of-archive marker; checksum verification reads at most 1 MiB past it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import sys
import tempfile
import time
import warnings
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Literal, Union

from .codec import pack_map
from .errors import (
    AtdataError,
    ChecksumError,
    NetworkError,
    SampleDecodeError,
    SampleTypeError,
    ShardError,
    StorageError,
)
from .sample import DictSample, is_packable

__all__ = [
    "ShardInfo",
    "ShardLimits",
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

# Pax extended headers and GNU long names hold a few names and numbers; a bigger one is
# damage or an attack, and is refused before it is read.
_MAX_META_BYTES = 1 << 20
# After the end-of-archive marker a tar holds only padding (10 KiB records by default,
# 1 MiB with GNU tar's largest blocking factor): verification reads no more than this.
_MAX_TRAILING_BYTES = 1 << 20
# The writer writes (and hashes) members this many bytes at a time.
_WRITE_BATCH = 1 << 20
# No single read asks for more, so a size claimed by a header allocates only what arrives.
_READ_CHUNK = 1 << 24
# A stream that says how long it is (a regular file) is read this much at a time; any other
# exactly as far as its members say. Each read is a fresh buffer, never written to again. A
# buffer this size stays in a core's L2 cache while its members are parsed and unpacked.
_CHUNK = 1 << 20
# A shard to verify before use is read in larger buffers: each is read in one call and hashed
# in one call (on the hashing thread), so the threads doing it need the GIL only between calls.
# A network body of known length is read whole ahead in buffers this large too: each is one
# socket read that waits for its whole buffer (see atdata_core.storage.http), so one GIL
# hand-over per 8 MiB downloaded instead of one per few hundred KiB.
_HEAD_CHUNK = 8 << 20
# Network streams of known length are read this many chunks ahead, on a thread of their own.
_READ_AHEAD = 8
# Hashing: buffers of at least this size go to the hashing thread, at most this many waiting.
_HASH_ON_THREAD = 256 << 10
_HASH_BACKLOG = 32

# Member types: regular files yield their data; links, devices, directories and fifos
# carry none (whatever their size field says, as tarfile reads them); the rest is skipped.
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")
_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK = b"x", b"g", b"L", b"K"
_META = (_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK)
_SIGNED_HEADER = struct.Struct("148b8x356b")


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class ShardLimits:
    """How much the shard reader may hold for one shard: the ``[shards]`` configuration section.

    ``max_member_bytes``: the largest tar member accepted (default 4 GiB); a
    header claiming more raises :class:`~atdata_core.errors.ShardError`. The
    bytes of a member are read in chunks, so a claim is never allocated before
    the bytes arrive.

    ``verify_buffer_bytes``: a shard with a checksum up to this size (default
    64 MiB) is read whole and verified before its first sample is yielded, so a
    shard that fails verification yields nothing. Larger shards are verified
    as they stream, and a failure at their end raises whatever ``on_error``
    says (see :func:`iter_samples`). 0 streams every shard.

    ``remember_verified``: a local shard file whose checksum matched is not
    hashed again by a dataset's reads while the file is unchanged (same
    device, inode, size, modification and change times; see
    :mod:`atdata_core._verified`). Default True.

    >>> ShardLimits.from_config(Config({"shards": {"max_member_bytes": 1 << 20}}))  # doctest: +SKIP
    ShardLimits(max_member_bytes=1048576, verify_buffer_bytes=67108864, remember_verified=True)
    """

    max_member_bytes: int = 4 << 30
    verify_buffer_bytes: int = 64 << 20
    remember_verified: bool = True

    def __post_init__(self) -> None:
        for name in ("max_member_bytes", "verify_buffer_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ShardLimits.{name} must be an integer >= 0, not {value!r}")
        if not isinstance(self.remember_verified, bool):
            raise ValueError(f"ShardLimits.remember_verified must be True or False, not {self.remember_verified!r}")

    @classmethod
    def from_config(cls, config: Any = None) -> "ShardLimits":
        """Read ``[shards]`` from ``config`` (default: :func:`~atdata_core.config.load_config`).

        ``ATDATA_SHARDS_MAX_MEMBER_BYTES``, ``ATDATA_SHARDS_VERIFY_BUFFER_BYTES``
        and ``ATDATA_SHARDS_REMEMBER_VERIFIED`` set them from the environment. An invalid value raises
        :class:`~atdata_core.errors.ConfigError` naming where it was set.
        """
        from .config import ConfigError, load_config

        if config is None:
            config = load_config()
        values = {}
        for name in ("max_member_bytes", "verify_buffer_bytes"):
            key = f"shards.{name}"
            value = config.get_int(key, getattr(cls, name))
            if value < 0:
                raise ConfigError(f"{config.source(key)}: {key} should be an integer >= 0, not {value!r}")
            values[name] = value
        values["remember_verified"] = bool(config.get_bool("shards.remember_verified", cls.remember_verified))
        return cls(**values)


_DEFAULT_LIMITS = ShardLimits()


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


def _corrupt(offset: int, what: str, shard: str, member: str | None = None) -> ShardError:
    return ShardError(
        f"corrupt tar header at byte {offset}: {what} (the shard is damaged or not a tar file)",
        shard=shard,
        member=member,
    )


def _header_number(field: bytes, what: str, shard: str, offset: int, member: str | None = None) -> int:
    """A numeric header field: octal digits, or GNU base-256 (first byte 0x80) for large values."""
    first = field[0]
    if first & 0x80:
        if first == 0x80:
            return int.from_bytes(field[1:], "big")
        # 0xff marks a negative base-256 number; other high-bit bytes are no number at all
        raise _corrupt(offset, f"{what} field {field!r} is a negative or malformed binary number", shard, member)
    text = field.split(b"\0", 1)[0].strip()
    if text.isdigit():  # ASCII digits only: int() alone would take a sign, spaces and underscores
        try:
            return int(text, 8)
        except ValueError:
            pass
    elif not text:
        return 0
    raise _corrupt(offset, f"{what} field {field!r} is not octal", shard, member)


def _pax_records(data: bytes, shard: str, offset: int) -> tuple[str | None, int | None]:
    """The ``path`` and ``size`` of a pax extended header (records ``"%d %s=%s\\n"``).

    Every length is checked to cover at least a whole record inside the data, so
    parsing always moves forward and stays within the header.
    """
    path: str | None = None
    size: int | None = None
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0 and not data[pos:].strip(b"\0"):
            break  # NUL padding after the last record
        space = data.find(b" ", pos, min(end, pos + 21))
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise _corrupt(offset, f"pax record at byte {pos} has no decimal length", shard, "pax header")
        length = int(digits)
        # shortest record: "<digits> k=\n"
        if length < len(digits) + 4 or pos + length > end:
            raise _corrupt(
                offset, f"pax record at byte {pos} claims length {length} (header holds {end} bytes)", shard, "pax header"
            )
        record = data[space + 1 : pos + length]
        key, equals, value = record.partition(b"=")
        if not equals or not key or record[-1:] != b"\n":
            raise _corrupt(offset, f"pax record at byte {pos} is not 'length key=value\\n'", shard, "pax header")
        value = value[:-1]
        if not value:
            pass  # an empty value unsets a keyword (POSIX): the ustar field stands
        elif key == b"path":
            try:
                path = value.decode("utf-8")
            except UnicodeDecodeError:
                raise _corrupt(offset, f"pax path {value[:80]!r} is not UTF-8", shard, "pax header") from None
        elif key == b"size":
            if not value.isdigit():
                raise _corrupt(offset, f"pax size {value[:80]!r} is not a decimal number", shard, "pax header")
            size = int(value)
        pos += length
    return path, size


def _read_exact(read: Callable[[int], bytes], size: int, chunk: int = _READ_CHUNK) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the stream), never asking for more than ``chunk`` at once."""
    if size <= chunk:
        data = read(size)
        if len(data) == size or not data:
            return data if type(data) is bytes else bytes(data)
        parts = [data]
        remaining = size - len(data)
    else:
        parts = []
        remaining = size
    while remaining:
        part = read(min(remaining, chunk))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _known_length(stream: Any) -> int | None:
    """How many bytes ``stream`` still holds, when it can tell cheaply: a regular file, or a
    stream with a ``length`` (bytes left to read, such as an HTTP body's announced length)."""
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (io.UnsupportedOperation is an OSError)
        info = None
    if info is not None:
        return max(info.st_size - stream.tell(), 0) if stat.S_ISREG(info.st_mode) else None
    for holder in (stream, getattr(stream, "raw", None)):
        length = getattr(holder, "length", None)
        if type(length) is int and length >= 0:
            return length
    return None


class _Hasher:
    """The sha256 of a shard's bytes, computed on a thread of its own while the reading thread decodes.

    hashlib releases the GIL while it hashes a large buffer, so the hash runs
    on another core. Buffers are handed over as they are read, in order; at
    most :data:`_HASH_BACKLOG` of them wait, so a reader faster than the hash
    waits for it rather than piling up memory. :meth:`hexdigest` waits for
    every buffer to be hashed. Small amounts are hashed on the spot.
    """

    __slots__ = ("_hash", "_queue", "_room", "_thread")
    name = "sha256"

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: Any = None
        self._room: Any = None
        self._thread: Any = None

    def update(self, data: bytes) -> None:
        if self._thread is None:
            if len(data) < _HASH_ON_THREAD:
                self._hash.update(data)
                return
            import queue
            import threading

            self._queue = queue.SimpleQueue()
            self._room = threading.Semaphore(_HASH_BACKLOG)
            self._thread = threading.Thread(target=self._run, name="atdata-shard-sha256", daemon=True)
            self._thread.start()
        self._room.acquire()
        self._queue.put(data)

    def _run(self) -> None:
        take, update, done = self._queue.get, self._hash.update, self._room.release
        with quick_switches:
            while True:
                data = take()
                if data is None:
                    return
                update(data)
                done()

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Wait until the buffers handed over are hashed, and end the thread."""
        thread = self._thread
        if thread is not None:
            self._thread = None
            self._queue.put(None)
            thread.join()


class _ReadAhead:
    """A stream of known length read on a thread of its own, :data:`_CHUNK` bytes at a time.

    For network streams: the download goes on while the reading thread
    decodes (a socket read releases the GIL), instead of one after the other.
    The thread reads at most ``length`` bytes (the length the stream
    announced), and at most :data:`_READ_AHEAD` chunks wait to be taken;
    :meth:`read` hands them out in order, raises what reading raised, and
    past ``length`` reads the stream itself. :meth:`close` stops the thread
    before the stream may be closed.
    """

    __slots__ = ("_read", "_queue", "_stop", "_thread", "_chunk", "_start", "_ended")

    def __init__(self, read: Callable[[int], bytes], length: int):
        import queue
        import threading

        self._read = read
        self._queue: Any = queue.Queue(maxsize=_READ_AHEAD)
        self._stop = threading.Event()
        self._chunk = b""
        self._start = 0
        self._ended = False
        self._thread = threading.Thread(target=self._run, args=(length,), name="atdata-shard-read", daemon=True)
        self._thread.start()

    def _run(self, left: int) -> None:
        with quick_switches:
            try:
                while left > 0 and not self._stop.is_set():
                    data = _read_exact(self._read, min(_CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    self._put(data)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                self._put(exc)
                return
            self._put(None)

    def _put(self, item: Any) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def read(self, n: int) -> bytes:
        if self._start >= len(self._chunk):
            if self._ended:
                return self._read(n)
            item = self._queue.get()
            if item is None:
                self._ended = True
                return self._read(n)
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._chunk, self._start = item, 0
        chunk, start = self._chunk, self._start
        if start == 0 and len(chunk) <= n:
            self._chunk = b""
            return chunk
        self._start = start + n
        return chunk[start : start + n]

    def close(self) -> None:
        """Stop the thread. One still inside a read (a stalled connection) is not waited for
        long: it ends when the stream is closed under it, and whatever it read is dropped."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except Exception:  # queue.Empty: nothing left to unblock
            pass
        self._thread.join(timeout=1.0)


class _QuickSwitches:
    """The interpreter's thread switch interval, lowered while a read's helper threads work.

    A thread back from a socket read or a hash needs the GIL to go on, and
    while the decoding thread runs Python code it gets it only once the
    switch interval has passed (5 ms by default): a download or a hash beside
    the decoding would stand still most of that time. While at least one
    helper thread (fetching, reading ahead, hashing) works, the interval is
    at most :attr:`INTERVAL`; when the last one stops, the interval it found
    is put back, unless something else changed it meanwhile. A pause of the
    decoding thread (``time.sleep(0)``) does not do the same: it is over
    before the waiting thread wakes, and takes the GIL back.

    Used as ``with quick_switches:`` on a helper thread.
    """

    INTERVAL = 0.001

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._users = 0
        self._found: float | None = None  # the interval before ours, to put back
        self._ours = 0.0

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                found = sys.getswitchinterval()
                if found > self.INTERVAL:
                    sys.setswitchinterval(self.INTERVAL)
                    self._found, self._ours = found, sys.getswitchinterval()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._found is not None:
                if sys.getswitchinterval() == self._ours:
                    sys.setswitchinterval(self._found)
                self._found = None


quick_switches = _QuickSwitches()

_DEFAULT: Any = object()  # an argument left out


def _network_length(stream: Any) -> int | None:
    """The announced length of a stream that is not a regular file (a network body), if it has one."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
    except (AttributeError, OSError, ValueError):
        pass
    length = _known_length(stream)
    return length if length else None


_freed_memory_kept = False


def _keep_freed_shard_memory() -> None:
    """Let the C allocator keep the memory of shards read whole, for the shards after them (glibc; once per process).

    A shard read whole ahead of its turn is up to ``[shards]
    verify_buffer_bytes`` of 1 MiB buffers, freed together once its turn is
    over. glibc hands free memory at the top of its heap back to the system
    once more than its trim threshold is free (128 KiB at start; twice its
    mmap threshold once it raised that after a large block was freed, as
    below), so each shard would be read into fresh pages: a page fault per 4 KiB, about 1 ms
    of CPU per MB measured here, more than decoding the shard costs. Freeing
    one block of 31 MiB raises both thresholds, by glibc's own rule for any
    large block freed (mmap threshold 31 MiB, trim threshold 62 MiB), and
    from then on a shard's buffers reuse the memory the shard before freed.
    The block comes from ``calloc``: none of its pages is touched.
    """
    global _freed_memory_kept
    if _freed_memory_kept:
        return
    _freed_memory_kept = True
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        libc = ""
    if libc.startswith("glibc"):
        block = bytes(31 << 20)
        del block


class _Head:
    """The start of a shard, read a chunk at a time (and hashed on the way, unless ``hasher`` is None).

    It holds the whole shard when that is at most ``limit`` bytes (or exactly
    ``size`` bytes, the recorded size, when that is within the limit), else
    its first ``limit + 1`` bytes. A stream that says how much it holds (a
    regular file) is read no further than that; any other a chunk at a time,
    so memory follows the bytes that arrive. A failure to read is kept and
    raised by :meth:`finish`, in the shard's turn.
    """

    __slots__ = ("_read", "_want", "chunks", "total", "hasher", "_done", "_error")

    def __init__(self, stream: BinaryIO, limit: int, size: int | None, hasher: Any = _DEFAULT):
        known = size if size is not None else _known_length(stream)
        self._read = stream.read
        self._want = limit + 1 if known is None or known > limit else known
        self.chunks: list[bytes] = []
        self.total = 0
        self.hasher = _Hasher() if hasher is _DEFAULT else hasher
        self._done = self._want == 0
        self._error: BaseException | None = None

    def step(self) -> None:
        """Read (and hand to the hash) one more chunk, unless all is read."""
        if self._done:
            return
        try:
            part = _read_exact(self._read, min(self._want - self.total, _HEAD_CHUNK))
        except _SHARD_FAULTS as exc:
            self._error, self._done = exc, True
            return
        if not part:
            self._done = True
            return
        self.chunks.append(part)
        self.total += len(part)
        if self.hasher is not None:
            self.hasher.update(part)
        if self.total >= self._want:
            self._done = True

    def read(self, stopped: Callable[[], bool]) -> None:
        """Read all of it, keeping any failure for :meth:`finish`, unless ``stopped()`` says to give up."""
        while not self._done and not stopped():
            self.step()

    def finish(self) -> None:
        while not self._done:
            self.step()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self.hasher is not None:
            self.hasher.close()
        self.chunks = []


class _KnownDigest:
    """The digest of a shard its stream verified itself (see :func:`_declared_sha256`): nothing to hash again."""

    __slots__ = ("_hex",)
    name = "sha256"

    def __init__(self, hex_digest: str):
        self._hex = hex_digest

    def hexdigest(self) -> str:
        return self._hex

    def close(self) -> None:
        pass


def _declared_sha256(stream: Any) -> str | None:
    """The sha256 (hex) a storage stream says it verifies itself, if it says so.

    A stream with ``verifies_sha256`` raises instead of handing out its last
    byte unless all its bytes hash to that digest (a PDS blob checked against
    its CID does). See :class:`~atdata_core.storage.StorageBase`.
    """
    for holder in (stream, getattr(stream, "raw", None)):
        digest = getattr(holder, "verifies_sha256", None)
        if isinstance(digest, str) and len(digest) == 64:
            return digest.lower()
    return None


def _fetch_ahead(
    stream: BinaryIO,
    checksum: str | None,
    size: int | None,
    limits: ShardLimits,
    stopped: Callable[[], bool],
    ahead: bool = True,
) -> _Head | None:
    """A shard read into memory before its turn, on a thread beside the decoding; None to stream it in its turn.

    Read whole: a shard to verify before its first sample is used (hashed on
    a hashing thread as its buffers arrive, beside both this thread's reads
    and the decoding: see :func:`iter_samples`),
    and, when another shard decodes meanwhile (``ahead``), a network body of
    announced length of at most ``[shards] verify_buffer_bytes``, so the
    download goes on while the shard before it decodes (the first shard is
    streamed: its samples decode as its bytes arrive). A stream that
    verifies the same sha256 itself is not hashed again, once it has been
    read to its end (its check is then done).
    """
    limit = limits.verify_buffer_bytes
    length = _network_length(stream)
    if checksum:
        if size is not None and size > limit:
            return None  # verified as it streams, in its turn
        expected = checksum.lower()
        declared = _declared_sha256(stream) == expected
        head = _Head(stream, limit, size, hasher=None if declared else _Hasher())
        head.read(stopped)
        if declared:
            whole = head._error is None and (size is not None or head.total <= limit)
            if whole and _at_end(stream):
                head.hasher = _KnownDigest(expected)
            else:  # the stream's own check may not cover exactly these bytes: hash them here
                head.hasher = _Hasher()
                for part in head.chunks:
                    head.hasher.update(part)
        return head
    if not ahead or length is None or length > limit:
        return None
    head = _Head(stream, limit, length if size is None else min(size, length), hasher=None)
    head.read(stopped)
    return head


def _at_end(stream: BinaryIO) -> bool:
    try:
        return not stream.read(1)
    except _SHARD_FAULTS:
        return False


class _Source:
    """The bytes of one shard as the tar scanner asks for them, in buffers that are never reused.

    ``window(buf, pos, need)`` returns a buffer holding the next ``need``
    bytes from ``pos`` (fewer only at the end of the stream). A stream whose
    length is known (``hint``: a regular file, a recorded size) is read
    :data:`_CHUNK` bytes at a time; past that length, and for any other
    stream, exactly as far as the members say, so that nothing is read past
    the end-of-archive marker. Every buffer is a fresh ``bytes`` object that
    nothing writes to again, so a decoded array may stay a view of it.
    """

    __slots__ = ("_read", "_hint", "_queue", "_hash", "taken", "end")

    def __init__(
        self,
        read: Callable[[int], bytes] | None,
        hint: int | None = None,
        chunks: Iterable[bytes] = (),
        hasher: Any = None,
    ):
        self._read = read
        self._hint = hint
        self._queue: deque[tuple[bytes, int]] = deque((chunk, 0) for chunk in chunks if chunk)
        self._hash = hasher
        self.taken = sum(len(chunk) for chunk, _ in self._queue)  # bytes taken from the stream so far
        self.end = 0  # the stream offset just past the first end-of-archive block, once found

    def _fetch(self, want: int, exact: bool = False) -> bytes:
        """The next bytes of the stream: ``want`` of them, or a whole chunk when the stream's
        length is known and ``exact`` is not asked for (fewer only at its end)."""
        read = self._read
        if read is None:
            return b""
        hint = self._hint
        if hint:
            data = _read_exact(read, want if exact else max(want, min(_CHUNK, hint)))
            self._hint = hint - len(data) if hint > len(data) else 0
        else:
            data = _read_exact(read, want)
        if data:
            self.taken += len(data)
            if self._hash is not None:
                self._hash.update(data)
        return data

    def window(self, buf: bytes, pos: int, need: int, ahead: int = 0) -> tuple[bytes, int]:
        """``(buffer, start)`` holding the ``need`` bytes that follow ``buf[pos:]`` in the stream, starting
        with those; fewer only at its end. ``ahead`` more are asked for when the stream is read exactly
        (the next member's header, with a member's data)."""
        have = len(buf) - pos
        queue = self._queue
        if not have:
            if queue:
                buf, pos = queue.popleft()
            else:
                buf, pos = self._fetch(need + ahead), 0
            have = len(buf) - pos
            if have >= need or not have:
                return buf, pos
        # the bytes asked for run over the end of this buffer: join them (only these, not the next buffer)
        parts = [buf[pos:] if pos else buf]
        while have < need:
            if queue:
                more, start = queue.popleft()
            else:
                # the rest of a member as large as a chunk comes alone (with the next header): the
                # members after it are then read one buffer each, never joined again
                more, start = self._fetch(need - have + ahead, need >= _CHUNK), 0
                if not more:
                    break
            take = need - have
            if len(more) - start > take:
                parts.append(more[start : start + take])
                queue.appendleft((more, start + take))
                have = need
            else:
                parts.append(more[start:] if start else more)
                have += len(more) - start
        return b"".join(parts), 0

    def skip(self, count: int) -> int:
        """Pass over ``count`` bytes (after the current window) without keeping them; how many there were."""
        skipped = 0
        queue = self._queue
        while skipped < count:
            if queue:
                data, start = queue.popleft()
            else:
                data, start = self._fetch(min(count - skipped, 1 << 20)), 0
                if not data:
                    break
            left = count - skipped
            if len(data) - start > left:
                queue.appendleft((data, start + left))
                return count
            skipped += len(data) - start
        return skipped

    def drain(self, *, shard: str, limit: int = _MAX_TRAILING_BYTES) -> None:
        """Take what is left of the stream (hashing it), which may be at most ``limit`` bytes past
        the end-of-archive marker; more is :class:`ShardError`, not padding."""
        self._queue.clear()
        self._hint = None  # read exactly: past the marker only the padding is expected
        beyond = self.taken - self.end
        while beyond <= limit:
            data = self._fetch(min(limit + 1 - beyond, 1 << 20))
            if not data:
                return
            beyond += len(data)
        raise ShardError(
            f"more than {limit:,} bytes follow the end-of-archive marker: not tar padding "
            "(data appended to the shard, or endless input); the shard cannot be verified",
            shard=shard,
        )


# Header fields repeat from member to member (a writer's sizes, checksums of same-shaped
# headers): their parsed values are kept, up to a bound, so each is parsed and checked once.
_CHECKSUM_FIELDS: dict[bytes, tuple[int, int]] = {}
_SIZE_FIELDS: dict[bytes, int] = {}
_FIELD_CACHE_BOUND = 4096

_REGULAR_KIND = (0x30, 0x00, 0x37)  # b"0", b"\0", b"7"
_NO_DATA_KIND = (0x31, 0x32, 0x33, 0x34, 0x35, 0x36)  # b"1" to b"6"
_META_KIND = (0x78, 0x67, 0x4C, 0x4B)  # b"x", b"g", b"L", b"K"


def _checksum_field(field: bytes, shard: str, offset: int) -> tuple[int, int]:
    """The stored checksum of a header and the sum of the field's own bytes (which the checksum counts as spaces)."""
    value = (_header_number(field, "checksum", shard, offset), sum(field))
    if len(_CHECKSUM_FIELDS) >= _FIELD_CACHE_BOUND:
        _CHECKSUM_FIELDS.clear()
    _CHECKSUM_FIELDS[field] = value
    return value


def _size_field(field: bytes, shard: str, offset: int, member: str) -> int:
    size = _header_number(field, "size", shard, offset, member)
    if len(_SIZE_FIELDS) >= _FIELD_CACHE_BOUND:
        _SIZE_FIELDS.clear()
    _SIZE_FIELDS[field] = size
    return size


def iter_members(
    stream: BinaryIO, *, shard: str = "<stream>", max_member_bytes: int = _DEFAULT_LIMITS.max_member_bytes
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular file in a tar stream, in order.

    Raises :class:`ShardError` naming the shard (and member) when the archive
    is truncated, a header is corrupt, a member claims more than
    ``max_member_bytes``, or the end-of-archive marker is missing. Nothing is
    read past the end-of-archive marker, except from a stream that says how
    long it is (a regular file), which may be read a few MiB ahead, never
    past its end.
    """
    source = _Source(stream.read, _known_length(stream))
    return ((name, bytes(data)) for name, data in _scan(source, shard, max_member_bytes, None))


def _count_samples(
    stream: BinaryIO, *, shard: str = "<stream>", max_member_bytes: int = _DEFAULT_LIMITS.max_member_bytes
) -> int:
    """How many ``.msgpack`` members a tar stream holds, every header checked as :func:`iter_members`
    checks it; their bytes are read but neither copied nor decoded."""
    count = 0
    for _ in _scan(_Source(stream.read, _known_length(stream)), shard, max_member_bytes, ".msgpack"):
        count += 1
    return count


def _scan(source: _Source, shard: str, max_member_bytes: int, suffix: str | None) -> Iterator[tuple[str, memoryview]]:
    """The members of a tar stream as ``(name, view of its data)``; with ``suffix``, only the names
    ending with it (the others are passed over).

    Every header is checked as :mod:`tarfile` would (checksum, octal fields, types), and the
    whole header sum is taken in two C calls: ``zlib.adler32`` of 256 bytes is one plus their
    sum exactly, as 256 bytes sum to at most 65,280, below its modulus.
    """
    adler = zlib.adler32
    checksums = _CHECKSUM_FIELDS
    sizes = _SIZE_FIELDS
    buf = b""
    pos = 0
    view: memoryview | None = None
    offset = 0
    long_name: str | None = None  # from a pax header or a GNU long name, for the next member
    long_size: int | None = None  # from a pax header, for the next member
    while True:
        if len(buf) - pos < BLOCK:
            buf, pos = source.window(buf, pos, BLOCK)
            view = None
            if len(buf) - pos < BLOCK:
                got = len(buf) - pos
                if not got and offset == 0:
                    raise ShardError("empty file: not a tar archive", shard=shard)
                raise ShardError(
                    f"truncated at byte {offset + got}: the archive ends without its "
                    "end-of-archive marker (an interrupted download or copy?)",
                    shard=shard,
                )
        header = buf[pos : pos + BLOCK]
        if header[0] == 0 and header == _ZERO_BLOCK:
            source.end = offset + BLOCK
            return
        field = header[148:156]
        stored = checksums.get(field)
        if stored is None:
            stored = _checksum_field(field, shard, offset)
        if (adler(header[:256]) & 0xFFFF) + (adler(header[256:]) & 0xFFFF) - stored[1] + 254 != stored[0]:
            _check_signed_sum(header, stored[0], shard, offset)
        kind = header[156]
        regular = kind in _REGULAR_KIND
        if not regular and kind in _META_KIND:
            size = _header_number(header[124:136], "size", shard, offset)
            if size > _MAX_META_BYTES:
                raise ShardError(
                    f"tar metadata member (pax header or long name) at byte {offset} claims {size:,} bytes, "
                    f"more than the {_MAX_META_BYTES:,} allowed: the shard is damaged or hostile",
                    shard=shard,
                )
            pos += BLOCK
            span = size + (-size % BLOCK)
            if kind == 0x78 or kind == 0x4C:  # a pax header or a GNU long name: read it
                if len(buf) - pos < span:
                    buf, pos = source.window(buf, pos, span)
                    view = None
                    if len(buf) - pos < span:
                        raise ShardError(f"truncated inside the tar metadata member at byte {offset}", shard=shard)
                data = buf[pos : pos + size]
                pos += span
                if kind == 0x78:
                    path, pax_size = _pax_records(data, shard, offset)
                    if path is not None:
                        long_name = path
                    if pax_size is not None:
                        long_size = pax_size
                else:
                    nul = data.find(b"\0")
                    long_name = (data if nul < 0 else data[:nul]).decode("utf-8", "surrogateescape")
            elif len(buf) - pos >= span:
                pos += span
            else:
                have = len(buf) - pos
                buf, pos, view = b"", 0, None
                if have + source.skip(span - have) < span:
                    raise ShardError(f"truncated inside the tar metadata member at byte {offset}", shard=shard)
            offset += BLOCK + span
            continue
        if long_name is None:
            nul = header.find(b"\0", 0, 100)
            raw = header[: nul if nul >= 0 else 100]
            if header[345] != 0 and header[257:262] == b"ustar":
                nul = header.find(b"\0", 345, 500)
                raw = header[345 : nul if nul >= 0 else 500] + b"/" + raw
            name = raw.decode("utf-8", "surrogateescape")
        else:
            name, long_name = long_name, None
        if long_size is None:
            field = header[124:136]
            known = sizes.get(field)
            size = _size_field(field, shard, offset, name) if known is None else known
        else:
            size, long_size = long_size, None
        if not regular and kind in _NO_DATA_KIND:
            pos += BLOCK
            offset += BLOCK
            continue
        if size > max_member_bytes:
            raise ShardError(
                f"member at byte {offset} claims {size:,} bytes, more than the {max_member_bytes:,} "
                "allowed ([shards] max_member_bytes): the shard is damaged or hostile",
                shard=shard,
                member=name,
            )
        pos += BLOCK
        span = size + (-size % BLOCK)
        if regular and (suffix is None or name.endswith(suffix)):
            if len(buf) - pos < span:
                buf, pos = source.window(buf, pos, span, BLOCK)
                view = None
                got = len(buf) - pos
                if got < span:
                    if got < size:
                        raise ShardError(
                            f"truncated: member declares {size} bytes but only {got} remain", shard=shard, member=name
                        )
                    raise ShardError("truncated inside the padding after this member", shard=shard, member=name)
            if view is None:
                view = memoryview(buf)
            data_view = view[pos : pos + size]
            pos += span
            offset += BLOCK + span
            yield name, data_view
            continue
        # directories, links and members of other types or names carry no samples
        if len(buf) - pos >= span:
            pos += span
        else:
            have = len(buf) - pos
            buf, pos, view = b"", 0, None
            got = have + source.skip(span - have)
            if got < span:
                raise ShardError(
                    f"truncated: member declares {size} bytes but only {min(got, size)} remain", shard=shard, member=name
                )
        offset += BLOCK + span


def _check_signed_sum(header: bytes, stored: int, shard: str, offset: int) -> None:
    # Some old tars summed the header as signed bytes; tarfile accepts either sum, and so do we.
    if stored != sum(_SIGNED_HEADER.unpack(header)) + 256:
        actual = sum(header) - sum(header[148:156]) + 256
        raise _corrupt(offset, f"checksum {stored} != computed {actual}", shard)


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

    def drain(self, *, shard: str, limit: int = _MAX_TRAILING_BYTES) -> None:
        """Hash what is left of the stream, which may be at most ``limit`` bytes (the archive's padding).

        An archive has ended when this is called, so more than ``limit`` bytes
        left is not padding (endless input, or data appended to the shard):
        :class:`ShardError` instead of reading on.
        """
        left = limit + 1
        while left > 0:
            part = self.read(min(left, 1 << 20))
            if not part:
                return
            left -= len(part)
        raise ShardError(
            f"more than {limit:,} bytes follow the end-of-archive marker: not tar padding "
            "(data appended to the shard, or endless input); the shard cannot be verified",
            shard=shard,
        )

    def verify(self, expected: str, *, shard: str, limit: int = _MAX_TRAILING_BYTES) -> None:
        """Hash the rest of the stream (at most ``limit`` bytes, see :meth:`drain`) and compare with ``expected`` (hex)."""
        self.drain(shard=shard, limit=limit)
        actual = self._hash.hexdigest()
        if actual.lower() != expected.lower():
            raise ChecksumError(shard, expected.lower(), actual, self._hash.name)

    def close(self) -> None:
        self._stream.close()


class _Bounded:
    """Read at most ``limit`` bytes of ``stream``: a shard of recorded size is never read past it."""

    __slots__ = ("_stream", "_left")

    def __init__(self, stream: BinaryIO, limit: int):
        self._stream = stream
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        if n == 0:
            return b""
        data = self._stream.read(n)
        self._left -= len(data)
        return data


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


# What a decoder may raise on bytes it cannot make sense of, besides SampleDecodeError: a
# user's __post_init__, a recursion too deep, a value too large. Each becomes a
# SampleDecodeError naming the shard and member.
_DECODE_FAULTS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError, MemoryError)


def _decoded(
    members: Iterator[tuple[str, Any]], decode: Callable[[Any], Any], shard: str, on_error: OnError
) -> Iterator[Any]:
    """Decode the members with ``decode`` (member bytes to sample); one that does not decode goes to ``on_error``."""
    for name, data in members:
        try:
            sample = decode(data)
        except _DECODE_FAULTS + (SampleDecodeError,) as exc:
            handle_error(_decode_failure(exc, shard, name), on_error)
            continue
        yield sample


def _decode_failure(exc: BaseException, shard: str, name: str) -> AtdataError:
    """The error to report for a member that did not decode (an atdata error other than a sample's is re-raised)."""
    if isinstance(exc, SampleDecodeError):
        return exc.located(shard, name)
    if isinstance(exc, AtdataError):
        raise exc
    error = SampleDecodeError(f"cannot decode the sample ({type(exc).__name__}: {exc})", shard=shard, member=name)
    error.__cause__ = exc
    return error


_SKIPPED = object()  # what _decode_member returns for a member that went to on_error


def _decode_member(decode: Callable[[Any], Any], data: Any, shard: str, name: str, on_error: OnError) -> Any:
    """``decode(data)``, or :data:`_SKIPPED` once a failure went to ``on_error``, as :func:`iter_samples` does."""
    try:
        return decode(data)
    except _DECODE_FAULTS + (SampleDecodeError,) as exc:
        handle_error(_decode_failure(exc, shard, name), on_error)
        return _SKIPPED


def _read_failure(exc: BaseException, shard: str) -> AtdataError:
    """The atdata error for a failure while reading a shard's bytes."""
    if isinstance(exc, AtdataError):
        return exc
    error = ShardError(f"reading failed: {type(exc).__name__}: {exc}", shard=shard)
    error.__cause__ = exc
    return error


# Failures of the bytes of a shard (as opposed to one sample's): they end the shard.
_SHARD_FAULTS = (ShardError, StorageError, NetworkError, OSError)


def iter_samples(
    stream: BinaryIO,
    decode: Callable[[dict[str, Any]], Any] = DictSample.from_map,
    *,
    shard: str = "<stream>",
    on_error: OnError = "raise",
    checksum: str | None = None,
    size: int | None = None,
    limits: ShardLimits | None = None,
) -> Iterator[Any]:
    """Decode every ``.msgpack`` member of a shard stream with ``decode``.

    Bad samples raise :class:`SampleDecodeError` naming the shard and member;
    a truncated, corrupt or unreadable shard raises :class:`ShardError`. Under
    ``on_error="skip"`` each is skipped with a warning (the rest of a shard
    after a shard error), or a callable ``on_error`` receives it.

    With ``checksum`` (sha256 hex) the shard is verified, and a shard that
    fails verification is never consumed silently:

    - a shard up to ``limits.verify_buffer_bytes`` (64 MiB by default; ``size``,
      when the shard's size is recorded, says so without reading) is read whole
      and verified before its first sample is yielded. A mismatch raises
      :class:`ChecksumError`, or under ``on_error="skip"`` skips the whole shard
      with a warning (a callable receives the error, and the shard is skipped);
    - a larger shard is verified as it streams. A mismatch, or any failure to
      read it to its end, found after some of its samples were yielded raises
      :class:`ChecksumError` (or :class:`ShardError`) whatever ``on_error``
      says, and the message says how many samples had been yielded.

    Nothing past the end-of-archive marker is read without ``checksum`` (from
    a regular file, at most a few MiB past it, never past the file's end);
    with it, at most 1 MiB (the archive's padding), or up to ``size`` when given.

    Decoded into a sample class, a member of at least 512 KiB keeps its
    arrays as read-only views of the bytes read for it (see
    :func:`atdata_core.codec.unpack_member`); other arrays view bytes of their own.
    """
    from ._codec_compiler import member_decoder

    members = _shard_members(stream, shard, on_error, checksum, size, limits or _DEFAULT_LIMITS)
    return _decoded(members, member_decoder(decode), shard, on_error)


def _shard_members(
    stream: BinaryIO,
    shard: str,
    on_error: OnError,
    checksum: str | None,
    size: int | None,
    limits: ShardLimits,
    *,
    head: _Head | None = None,
    hold: bool = False,
    on_verified: Callable[[], None] | None = None,
) -> Iterator[tuple[str, memoryview]]:
    """The ``.msgpack`` members of one shard under the checksum policy of :func:`iter_samples`.

    ``head``: the start of this shard, read before its turn (:func:`_fetch_ahead`).

    ``hold`` (with a checksum, and a shard of known length of at most
    ``[shards] verify_buffer_bytes``): the members are scanned while the
    shard is read and hashed, and :data:`_VERIFIED` follows them once the
    digest matched (:func:`_members_while_hashed`). The caller hands out
    nothing made of them before it comes.

    ``on_verified`` is called once the shard's digest matched its checksum.
    """
    if hold:
        yield from _members_while_hashed(stream, shard, on_error, checksum, size, limits, on_verified)  # type: ignore[arg-type]
        return
    read: Callable[[int], bytes] = stream.read
    hint: int | None
    if not checksum:
        ahead = None
        try:
            if head is not None:  # read whole before its turn: any bytes after it, exactly as needed
                head.finish()
                source = _Source(read, None, chunks=head.chunks)
                head.chunks.clear()  # each buffer is freed once scanned
            else:
                hint = size if size is not None else _known_length(stream)
                length = _network_length(stream)
                if length is not None:
                    ahead = _ReadAhead(read, length if size is None else min(size, length))
                    read = ahead.read
                source = _Source(read, hint)
            yield from _scan(source, shard, limits.max_member_bytes, ".msgpack")
        except _SHARD_FAULTS as exc:
            handle_error(_read_failure(exc, shard), on_error)
        finally:
            if ahead is not None:
                ahead.close()
        return
    expected = checksum.lower()
    buffered = limits.verify_buffer_bytes
    chunks: list[bytes] = []
    if head is None and (size is None or size <= buffered):
        head = _Head(stream, buffered, size)
    hasher = head.hasher if head is not None else _Hasher()
    try:
        if head is not None:
            # small enough to verify before anything is handed out
            try:
                head.finish()
            except _SHARD_FAULTS as exc:
                handle_error(_read_failure(exc, shard), on_error)
                return
            chunks, total = head.chunks, head.total
            if size is not None or total <= buffered:
                actual = hasher.hexdigest()
                if actual != expected:
                    handle_error(ChecksumError(shard, expected, actual), on_error)
                    return
                if on_verified is not None:
                    on_verified()
                source = _Source(None, chunks=chunks)
                chunks.clear()  # each buffer is freed once scanned: the next shard's reads take its memory
                try:
                    yield from _scan(source, shard, limits.max_member_bytes, ".msgpack")
                except ShardError as exc:  # verified, but not a readable tar: the publisher's shard is bad
                    handle_error(exc, on_error)
                return
        if size is not None:
            read = _Bounded(stream, size).read
            hint = size
        else:
            hint = _known_length(stream)
        source = _Source(read, hint, chunks=chunks, hasher=hasher)
        del chunks
        yielded = 0
        try:
            for member in _scan(source, shard, limits.max_member_bytes, ".msgpack"):
                yielded += 1
                yield member
            source.drain(shard=shard)
            actual = hasher.hexdigest()
            if actual != expected:
                raise ChecksumError(shard, expected, actual, hasher.name)
            if on_verified is not None:
                on_verified()
        except _SHARD_FAULTS as exc:
            error = _read_failure(exc, shard)
            if not yielded:
                handle_error(error, on_error)
                return
            note = (
                f"{yielded} of its samples were yielded before this was found: the shard is larger than "
                f"[shards] verify_buffer_bytes ({buffered:,} bytes), so it was verified as it streamed. "
                "Discard what was read from it"
            )
            if isinstance(error, ChecksumError):
                raise ChecksumError(shard, error.expected, error.actual, error.algorithm, note=note) from None
            reason = error.reason if isinstance(error, ShardError) else str(error)
            late = ShardError(f"{reason}. {note}", shard=shard, member=getattr(error, "member", None))
            raise late from exc
    finally:
        hasher.close()


# What the members of a held shard end with once its checksum matched (see :func:`_members_while_hashed`).
_VERIFIED: Any = ("", None)


def _members_while_hashed(
    stream: BinaryIO,
    shard: str,
    on_error: OnError,
    checksum: str,
    size: int | None,
    limits: ShardLimits,
    on_verified: Callable[[], None] | None = None,
) -> Iterator[tuple[str, Any]]:
    """The members of a shard scanned as it is read and hashed, then :data:`_VERIFIED` if its digest matched.

    For a read whose caller holds back everything it makes of the members
    until :data:`_VERIFIED` comes (no sample object is built, no user code
    runs on them before): the decoding then overlaps the read and the hash
    instead of waiting for both. The shard is at most
    ``[shards] verify_buffer_bytes`` long (its recorded size, else its
    file's): what the caller holds is bounded as for a shard read whole
    before use. On a checksum mismatch or a failure to read, the error goes
    to ``on_error`` and :data:`_VERIFIED` never comes. A shard whose bytes
    are the publisher's but not a readable tar ends after :data:`_VERIFIED`
    with the :class:`ShardError`, as a shard verified before use does.
    """
    expected = checksum.lower()
    hasher = _Hasher()
    try:
        read = _Bounded(stream, size).read if size is not None else stream.read
        limit = limits.verify_buffer_bytes
        source = _Source(read, size if size is not None else _known_length(stream), hasher=hasher)
        malformed: ShardError | None = None
        try:
            try:
                yield from _scan(source, shard, limits.max_member_bytes, ".msgpack")
                source.drain(shard=shard)
            except ShardError as exc:  # the bytes may not be the publisher's: the digest tells
                malformed = exc
                while source.taken <= limit and source._fetch(_CHUNK):
                    pass  # hash the rest
                if source.taken > limit:
                    raise ShardError(
                        f"{exc.reason}; the shard is longer than [shards] verify_buffer_bytes "
                        f"({limit:,} bytes) and cannot be verified",
                        shard=shard,
                    ) from exc
        except _SHARD_FAULTS as exc:
            handle_error(_read_failure(exc, shard), on_error)
            return
        actual = hasher.hexdigest()
        if actual != expected:
            handle_error(ChecksumError(shard, expected, actual, hasher.name), on_error)
            return
        if on_verified is not None:
            on_verified()
        yield _VERIFIED
        if malformed is not None:
            handle_error(malformed, on_error)
    finally:
        hasher.close()


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


def _header_base() -> bytes:
    header = bytearray(BLOCK)
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[148:156] = b"        "  # the checksum counts its own field as spaces
    header[257:265] = b"ustar\x0000"
    return bytes(header)


_HEADER_BASE = _header_base()


def _tar_header(name: bytes, size: int, mtime: int, kind: bytes = b"0") -> bytes:
    header = bytearray(_HEADER_BASE)
    header[: len(name)] = name
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % mtime
    header[156:157] = kind
    # the exact sum of the 512 bytes, in two C calls (see _scan)
    total = (zlib.adler32(header[:256]) & 0xFFFF) + (zlib.adler32(header[256:]) & 0xFFFF) - 2
    header[148:156] = b"%06o\0 " % total
    return bytes(header)


_PADDING = [bytes(n) for n in range(BLOCK)]


def _member(name: str, data: bytes, mtime: int) -> tuple[bytes, ...]:
    """One tar member: its headers (a pax header first for a long name), its data, its padding."""
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
    header = _tar_header(raw, len(data), mtime)
    return (prefix + header if prefix else header, data, _PADDING[-len(data) % BLOCK])


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

    Samples written without a key are numbered ``0000000000``, ``0000000001``...
    Keys must be unique within a dataset, so writers filling one dataset in
    parallel each give a ``key_prefix`` of their own (a task number): keys
    are then ``{key_prefix}0000000000``... (the prefix may not contain ``.``)::

        ShardWriter(f"out/part-{task:05d}-%06d.tar", key_prefix=f"{task:05d}-")
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
        key_prefix: str = "",
    ):
        if maxcount < 1:
            raise ValueError("maxcount must be at least 1")
        if not isinstance(key_prefix, str) or "." in key_prefix:
            raise ValueError(
                f"key_prefix {key_prefix!r} must be a string without '.', which would split the keys; use '_' or '-'"
            )
        self.key_prefix = key_prefix
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
        self._parts: list[bytes] = []  # members of the current shard not written yet
        self._buffered = 0
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
            self._hash.close()
            self._parts = []
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
            key = f"{self.key_prefix}{self._total:010d}"
        elif "." in key[key.rfind("/") + 1 :]:
            raise ValueError(f"sample key {key!r} contains '.', which would split it; use '_' or '-'")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r}: keys must be unique within a dataset")
        self._keys.add(key)
        member = _member(key + ".msgpack", payload, self._mtime)
        nbytes = len(member[0]) + len(payload) + len(member[2])
        if self._file is not None and (
            self._count >= self.maxcount
            or (self.maxsize is not None and self._size + nbytes + 2 * BLOCK > self.maxsize)
        ):
            self._finish()
        if self._file is None:
            self._start()
        self._parts += member
        self._buffered += nbytes
        if self._buffered >= _WRITE_BATCH:
            self._flush()
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
        self._hash = _Hasher()
        self._parts = []
        self._buffered = 0
        self._size = 0
        self._count = 0

    def _flush(self) -> None:
        """Write the members gathered so far, and hand them to the hash (on its own thread)."""
        parts = self._parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self._buffered = 0
        self._hash.update(data)
        self._file.write(data)

    def _finish(self) -> None:
        if self._file is None:
            return
        trailer = bytes(2 * BLOCK)
        total = self._size + len(trailer)
        trailer += bytes(-total % _RECORD)
        self._parts.append(trailer)
        self._flush()
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
    from ._netpolicy import url_credentials

    secrets = url_credentials(base_url)
    if secrets:
        raise ValueError(
            f"base_url carries {' and '.join(secrets)}; the shard URLs are meant to be published, and a "
            "published record is public. Name the shards by a URL that needs no credentials"
        )
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
