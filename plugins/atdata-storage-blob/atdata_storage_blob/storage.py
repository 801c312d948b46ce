"""``BlobStorage``: shards as blobs of an ATProto repository, ``atblob://`` URLs.

Two kinds of URL (the DID is always the repository's; handles are not taken,
so a URL keeps naming the same repository when its handle changes):

``atblob://<did>/<cid>``
    One blob, by its CID (``bafkrei...``). ``from_storage_record`` gives these
    for an entry's shards. Read with ``com.atproto.sync.getBlob`` from the PDS
    the DID document names, and checked against the CID while streaming.
``atblob://<did>/<path>``
    A shard placed under a path by :meth:`BlobStorage.put`: its blob, plus a
    ``science.alt.dataset.shardBlob`` record at a key derived from the path
    that names the blob. The record is what makes the blob readable at all (a
    PDS serves only blobs some record references, and deletes the others), and
    what ``list``, ``glob``, replacing and ``delete`` work on.

Writing needs the repository's account: a client handed to the backend
(``BlobStorage(clients=[client])`` or :meth:`BlobStorage.add_client`), else
the session saved by ``atdata login`` for that DID. Reading needs nothing.

Blobs are content-addressed, so placing the same bytes under the same path
again uploads nothing: a publish that failed half-way is retried for the
price of the shards that were not placed yet.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

import attrs

from atdata_core.errors import (
    AuthError,
    NetworkError,
    RecordError,
    RecordNotFound,
    StorageError,
    StorageNotFound,
    XrpcError,
)
from atdata_core.plugins import STORAGE_BLOBS_NSID, Client, ShardRef, StorageBase, get_config

from atdata_storage_blob import SCHEME, SHARD_BLOB_NSID
from atdata_storage_blob._cid import blob_cid, cid_digest, is_blob_cid
from atdata_storage_blob._stream import VerifiedBlob
from atdata_storage_blob.settings import BlobSettings

__all__ = ["MIME_TYPE", "BlobStorage", "BlobUrl", "shard_blob_rkey"]

#: The MIME type shards are uploaded and recorded with (storageBlobs accepts only this one).
MIME_TYPE = "application/x-tar"
#: ShardWriter pads a shard to a multiple of this many bytes (the tar record size).
_TAR_RECORD = 10240
_MAX_PATH = 1024
_DID_RE = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Resolving a path reads its record, then the blob; a put in between replaces the blob.
_PATH_READ_ATTEMPTS = 3


@attrs.frozen
class BlobUrl:
    """An ``atblob://`` URL taken apart: the repository's DID and the path below it.

    ``path`` is ``""`` for the repository itself (a folder), a CID for one
    blob, or a shard's path.
    """

    did: str
    path: str

    @classmethod
    def parse(cls, url: str, *, folder: bool = False) -> BlobUrl:
        """Parse ``url``; with ``folder`` a trailing ``/`` and an empty path are allowed (listing)."""
        scheme = f"{SCHEME}://"
        if not isinstance(url, str) or not url[: len(scheme)].lower() == scheme:
            raise StorageError(f"{url!r} is not an {scheme} URL")
        did, _, path = url[len(scheme) :].partition("/")
        if not _DID_RE.match(did):
            raise StorageError(
                f"{url}: an {scheme} URL starts with the repository's DID ({scheme}did:plc:.../mnist/data-000000.tar), "
                f"not {did!r}"
            )
        if folder:
            path = path.rstrip("/")
        if not path and not folder:
            raise StorageError(f"{url} names a repository, not a shard: add a path ({scheme}{did}/mnist/data-000000.tar)")
        if path and any(part in ("", ".", "..") for part in path.split("/")):
            raise StorageError(f"{url}: empty, '.' and '..' path segments are not allowed")
        if len(path.encode("utf-8")) > _MAX_PATH or any(ord(c) < 32 or c == "\x7f" for c in path):
            raise StorageError(f"{url!r}: a path is at most {_MAX_PATH} bytes, without control characters")
        return cls(did, path)

    @property
    def cid(self) -> str | None:
        """The blob CID when the URL names one blob, else None."""
        return self.path if "/" not in self.path and is_blob_cid(self.path) else None

    def __str__(self) -> str:
        return f"{SCHEME}://{self.did}/{self.path}" if self.path else f"{SCHEME}://{self.did}"


def shard_blob_rkey(path: str) -> str:
    """The key of the ``shardBlob`` record placing a path: deterministic, so a path has one record."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:32]


def _file_sha256(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _not_found(err: XrpcError) -> bool:
    # The reference PDS answers a missing blob with 400 InvalidRequest "Blob not found".
    return err.status == 404 or err.error in ("BlobNotFound", "RepoNotFound", "RecordNotFound") or (
        err.status == 400 and "not found" in (err.message or "").lower()
    )


_lexicon_registered = False


def _register_lexicon() -> None:
    """Make the ``shardBlob`` lexicon known, so its records are validated before they are written."""
    global _lexicon_registered
    if _lexicon_registered:
        return
    import json
    from importlib.resources import files

    from atdata_core.plugins import register_lexicon

    text = files("atdata_storage_blob").joinpath("lexicons", "science", "alt", "dataset", "shardBlob.json").read_text(
        encoding="utf-8"
    )
    try:
        register_lexicon(json.loads(text))
    except RecordError:
        pass  # registered already, by another thread
    _lexicon_registered = True


class BlobStorage(StorageBase):
    """Shard storage in PDS blobs (see the module docstring for its URLs).

    ``settings``: :class:`~atdata_storage_blob.settings.BlobSettings` (the
    ``[blob]`` section). ``clients``: logged-in clients to write with, one per
    repository; any other repository is written with its saved session.
    ``config``: the configuration clients are made with (default: atdata's).
    """

    def __init__(
        self,
        settings: BlobSettings | None = None,
        *,
        clients: Iterable[Client] = (),
        config: Any = None,
    ):
        self.settings = settings or BlobSettings()
        self._config = config
        self._lock = threading.RLock()
        self._given: dict[str, Client] = {}
        self._writers: dict[str, Client] = {}
        for client in clients:
            self.add_client(client)
        self._reader: Client | None = None
        self._pid = os.getpid()
        self._path_locks: dict[str, threading.Lock] = {}
        # url -> blob ref of what this process placed, so to_storage_record need not ask again
        self._placed: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"BlobStorage(accounts={sorted(self._given) or 'saved sessions'})"

    # -- clients -------------------------------------------------------------

    def add_client(self, client: Client) -> None:
        """Write to ``client``'s repository with ``client`` (instead of its saved session)."""
        if not getattr(client, "did", None):
            raise AuthError("blob storage writes with a logged-in client; this one is anonymous")
        with self._lock:
            self._given[client.did] = client
            self._writers.pop(client.did, None)

    def _fork_check(self) -> None:
        # A forked data-loader worker must not share the parent's pooled connections.
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._writers.clear()
                    self._reader = None
                    self._path_locks.clear()
                    self._pid = os.getpid()

    def _client_config(self) -> Any:
        return self._config if self._config is not None else get_config()

    def _reading_client(self) -> Client:
        self._fork_check()
        with self._lock:
            if self._reader is None:
                self._reader = Client.anonymous(config=self._client_config())
            return self._reader

    def _writing_client(self, did: str) -> Client:
        self._fork_check()
        _register_lexicon()  # before the first shardBlob record is written, so it is validated
        with self._lock:
            client = self._given.get(did) or self._writers.get(did)
            if client is None:
                try:
                    client = Client.from_saved(did, config=self._client_config())
                except AuthError as err:
                    raise AuthError(
                        f"writing blobs to the repository of {did} needs that account's session: log in as it "
                        "(`atdata login <handle>`), or give the backend a logged-in client "
                        f"(storage_backend(name='blob').add_client(client)). {err}"
                    ) from err
                self._writers[did] = client
            return client

    def _path_lock(self, url: str) -> threading.Lock:
        with self._lock:
            return self._path_locks.setdefault(url, threading.Lock())

    # -- placements: the shardBlob record of a path ----------------------------

    def _placement(self, client: Client, target: BlobUrl) -> dict[str, Any] | None:
        """The blob ref placed at ``target``'s path, or None."""
        try:
            found = client.get_record(target.did, SHARD_BLOB_NSID, shard_blob_rkey(target.path))
        except RecordNotFound:
            return None
        except XrpcError as err:
            if _not_found(err):
                return None
            raise StorageError(f"looking up {target} failed: {err}") from err
        except NetworkError as err:
            if isinstance(err, AuthError):
                raise
            raise StorageError(f"looking up {target} failed: {err}") from err
        value = found.get("value") if isinstance(found, Mapping) else None
        if not isinstance(value, Mapping) or value.get("path") != target.path:
            return None  # not a placement of this path
        return self._blob_ref(value.get("blob"), str(target))

    @staticmethod
    def _blob_ref(blob: Any, where: str) -> dict[str, Any]:
        """A blob ref checked and rebuilt in its canonical form (``$type``, ``ref.$link``, ``mimeType``, ``size``)."""
        if not isinstance(blob, Mapping):
            raise StorageError(f"{where}: the record holds no blob ref")
        link = blob.get("ref")
        cid = link.get("$link") if isinstance(link, Mapping) else blob.get("cid")  # legacy {"cid", "mimeType"}
        if not isinstance(cid, str) or not is_blob_cid(cid):
            raise StorageError(f"{where}: {cid!r} is not a blob CID (CIDv1, raw, sha-256)")
        size = blob.get("size")
        return {
            "$type": "blob",
            "ref": {"$link": cid},
            "mimeType": blob.get("mimeType") or MIME_TYPE,
            "size": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        }

    def _placements(self, did: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """``(path, rkey, blob ref)`` of every placement in a repository (records at their path's key only)."""
        try:
            for item in self._reading_client().list_records(did, SHARD_BLOB_NSID):
                value = item.get("value") if isinstance(item, Mapping) else None
                path = value.get("path") if isinstance(value, Mapping) else None
                if not isinstance(path, str):
                    continue
                rkey = str(item.get("uri", "")).rsplit("/", 1)[-1]
                if rkey != shard_blob_rkey(path):
                    continue
                try:
                    ref = self._blob_ref(value.get("blob"), f"{SCHEME}://{did}/{path}")
                except StorageError:
                    continue
                yield path, rkey, ref
        except XrpcError as err:
            if _not_found(err):
                return
            raise StorageError(f"listing the blobs of {did} failed: {err}") from err
        except NetworkError as err:
            raise StorageError(f"listing the blobs of {did} failed: {err}") from err

    # -- reading ---------------------------------------------------------------

    def open(self, url: str) -> BinaryIO:
        target = BlobUrl.parse(url)
        if target.cid is not None:
            return self._open_blob(target.did, target.cid, str(target))
        for _ in range(_PATH_READ_ATTEMPTS):
            ref = self._placement(self._reading_client(), target)
            if ref is None:
                raise StorageNotFound(f"no shard at {target}")
            try:
                return self._open_blob(target.did, ref["ref"]["$link"], str(target))
            except StorageNotFound:
                continue  # replaced between reading its record and its blob: read the record again
        raise StorageNotFound(f"{target} kept changing while it was being opened; try again")

    def _open_blob(self, did: str, cid: str, label: str) -> BinaryIO:
        raw = VerifiedBlob(
            lambda: self._get_blob(did, cid, label),
            digest=cid_digest(cid),
            cid=cid,
            url=label,
            resumes=self.settings.resumes,
            max_bytes=self.settings.max_blob_bytes,
        )
        return io.BufferedReader(raw, buffer_size=1 << 16)  # type: ignore[return-value]

    def _get_blob(self, did: str, cid: str, label: str) -> Any:
        try:
            return self._reading_client().get_blob(did, cid)
        except StorageNotFound as err:
            raise StorageNotFound(f"no blob at {label} ({err})") from err
        except XrpcError as err:
            if _not_found(err):
                raise StorageNotFound(f"no blob at {label} ({err.error}: {err.message or 'not found'})") from err
            raise StorageError(f"reading {label} failed: {err}") from err
        except NetworkError as err:
            raise StorageError(f"reading {label} failed: {err}") from err

    def size(self, url: str) -> int | None:
        target = BlobUrl.parse(url)
        if target.cid is None:
            ref = self._placement(self._reading_client(), target)
            if ref is None:
                raise StorageNotFound(f"no shard at {target}")
            return ref["size"]
        stream = self._get_blob(target.did, target.cid, str(target))
        try:
            return stream.size
        finally:
            stream.close()

    def list(self, prefix: str) -> list[str]:
        folder = BlobUrl.parse(prefix, folder=True)
        if folder.cid is not None:
            return [str(folder)] if self.exists(str(folder)) else []
        urls = [
            f"{SCHEME}://{folder.did}/{path}"
            for path, _, _ in self._placements(folder.did)
            if not folder.path or path == folder.path or path.startswith(folder.path + "/")
        ]
        return sorted(urls)

    # -- writing ---------------------------------------------------------------

    def blob_limit(self, did: str) -> int:
        """The largest blob the PDS of ``did`` takes (its ``blobUploadLimit``, else ``[atproto] blob_limit``)."""
        try:
            return self._writing_client(did).blob_limit()
        except AuthError:
            raise
        except NetworkError as err:
            raise StorageError(f"asking the PDS of {did} for its blob upload limit failed: {err}") from err

    def check_put(self, local_path: str | os.PathLike[str], url: str) -> None:
        """Raise what :meth:`put` would raise before uploading, without writing anything.

        Publishing calls it for every shard before the first upload, so a
        dataset with one shard over the PDS's limit is refused whole.
        """
        self._checked_put(os.fspath(local_path), url)

    def _checked_put(self, source: str, url: str) -> tuple[BlobUrl, int]:
        target = BlobUrl.parse(url)
        if target.cid is not None:
            raise StorageError(
                f"cannot put a shard at {url}: the path is a blob CID, which names a blob by its bytes. "
                "Put it under a path (mnist/data-000000.tar)"
            )
        if not os.path.isfile(source):
            raise StorageNotFound(f"cannot put {source} at {url}: no such local file")
        size = os.path.getsize(source)
        limit = self.blob_limit(target.did)
        if size > limit:
            fits = max(limit // _TAR_RECORD * _TAR_RECORD, _TAR_RECORD)
            raise StorageError(
                f"{source} is {size:,} bytes ({size / 2**20:.1f} MiB), over the {limit:,}-byte "
                f"({limit / 2**20:.1f} MiB) blob upload limit of the PDS of {target.did}. Nothing was uploaded. "
                f"Write the shards smaller: ShardWriter(..., maxsize={fits}) keeps each within the limit"
            )
        return target, size

    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        source = os.fspath(local_path)
        target, _size = self._checked_put(source, url)
        client = self._writing_client(target.did)
        cid = blob_cid(_file_sha256(source))
        placed = str(target)
        with self._path_lock(placed):
            current = self._placement(client, target)
            if current is not None and current["ref"]["$link"] == cid and current["mimeType"] == MIME_TYPE:
                self._remember(placed, current)
                return placed  # the same bytes are placed there already: nothing to upload
            for attempt in range(2):
                blob = self._upload(client, source, placed)
                uploaded = blob.get("ref", {}).get("$link") if isinstance(blob.get("ref"), Mapping) else None
                if uploaded != cid:
                    raise StorageError(
                        f"{source} changed while it was being uploaded to {placed} (uploaded {uploaded}, "
                        f"measured {cid}); nothing was placed"
                    )
                record = {"$type": SHARD_BLOB_NSID, "path": target.path, "blob": blob, "createdAt": _now()}
                try:
                    client.put_record(SHARD_BLOB_NSID, shard_blob_rkey(target.path), record)
                except XrpcError as err:
                    # Another writer dropped the last reference to these bytes between our
                    # upload and our record, and the PDS deleted them: upload once more.
                    if attempt == 0 and _not_found(err):
                        continue
                    raise StorageError(f"placing {source} at {placed} failed: {err}") from err
                except AuthError:
                    raise
                except NetworkError as err:
                    raise StorageError(f"placing {source} at {placed} failed: {err}") from err
                self._remember(placed, self._blob_ref(blob, placed))
                return placed
        raise StorageError(f"placing {source} at {placed} failed: its blob vanished twice after uploading")

    def _upload(self, client: Client, source: str, placed: str) -> dict[str, Any]:
        try:
            blob = client.upload_blob(source, MIME_TYPE)
        except AuthError:
            raise
        except NetworkError as err:
            raise StorageError(f"uploading {source} for {placed} failed: {err}") from err
        if not isinstance(blob, Mapping):
            raise StorageError(f"uploading {source} for {placed}: the PDS answered without a blob ref")
        return dict(blob)

    def _remember(self, url: str, ref: dict[str, Any]) -> None:
        with self._lock:
            self._placed[url] = ref

    def delete(self, url: str) -> None:
        target = BlobUrl.parse(url)
        client = self._writing_client(target.did)
        try:
            if target.cid is None:
                with self._path_lock(str(target)):
                    if self._placement(client, target) is None:
                        raise StorageNotFound(f"no shard at {target}")
                    client.delete_record(SHARD_BLOB_NSID, shard_blob_rkey(target.path))
                    with self._lock:
                        self._placed.pop(str(target), None)
                return
            self._delete_blob(client, target)
        except XrpcError as err:
            raise StorageError(f"deleting {target} failed: {err}") from err
        except NetworkError as err:
            if isinstance(err, AuthError):
                raise
            raise StorageError(f"deleting {target} failed: {err}") from err

    def _delete_blob(self, client: Client, target: BlobUrl) -> None:
        """Delete the placements of one blob; the PDS deletes the blob once no record references it."""
        rkeys = [rkey for _, rkey, ref in self._placements(target.did) if ref["ref"]["$link"] == target.cid]
        if rkeys:
            client.apply_writes([{"action": "delete", "collection": SHARD_BLOB_NSID, "rkey": k} for k in rkeys])
            with self._lock:
                for url, ref in list(self._placed.items()):
                    if ref["ref"]["$link"] == target.cid:
                        del self._placed[url]
        if self.exists(str(target)):
            raise StorageError(
                f"{target} is still referenced by other records of {target.did} (dataset entries), so the PDS "
                "keeps it; delete those entries (atdata_storage_blob.delete_dataset) to remove it"
            )
        if not rkeys:
            raise StorageNotFound(f"no blob at {target}")

    # -- publishing --------------------------------------------------------------

    def default_prefix(self, did: str, dataset: str) -> str:
        """Where publishing places a dataset's local shards when ``--storage blob`` names this backend."""
        folder = _UNSAFE_NAME.sub("-", dataset).strip("-.") or "dataset"
        return f"{SCHEME}://{did}/{folder}"

    # -- records ---------------------------------------------------------------

    def to_storage_record(self, shards: Sequence[ShardRef]) -> dict[str, Any]:
        """A ``science.alt.dataset.storageBlobs`` member listing the blobs of ``shards``, in order.

        Every shard must be in one repository (the entry's own) and carry its
        sha256, which must be the one its blob CID pins.
        """
        refs = list(shards)
        if not refs:
            raise StorageError("a storage record needs at least one shard")
        blobs = []
        repos = set()
        for ref in refs:
            url, digest = ref[0], ref[1]
            target = BlobUrl.parse(url)
            repos.add(target.did)
            digest = (digest or "").lower()
            if not _HEX64.match(digest):
                raise StorageError(f"shard {url} needs its sha256 (64 hex digits) to be recorded, got {ref[1]!r}")
            blob = self._recorded_blob(target, ref)
            cid = blob["ref"]["$link"]
            if cid_digest(cid).hex() != digest:
                raise StorageError(
                    f"shard {url} is blob {cid}, whose sha256 is {cid_digest(cid).hex()}, but it is recorded with "
                    f"sha256 {digest}: the shard changed after it was measured. Measure and place it again"
                )
            if blob["mimeType"] != MIME_TYPE:
                raise StorageError(
                    f"shard {url} is stored as {blob['mimeType']!r}; dataset entries take {MIME_TYPE} blobs only. "
                    "Place it again with this backend"
                )
            blobs.append({"blob": blob, "checksum": {"algorithm": "sha256", "digest": digest}})
        if len(repos) > 1:
            raise StorageError(
                f"the shards are blobs of {len(repos)} repositories ({', '.join(sorted(repos))}); an entry lists "
                "blobs of the repository it is published in only"
            )
        return {"$type": STORAGE_BLOBS_NSID, "blobs": blobs}

    def _recorded_blob(self, target: BlobUrl, ref: Any) -> dict[str, Any]:
        if target.cid is not None:
            size = ref[3] if len(ref) > 3 else None
            if not isinstance(size, int) or isinstance(size, bool):
                size = self.size(str(target))
            if size is None:
                raise StorageError(f"{target}: its size is unknown, and a blob ref records it")
            return {"$type": "blob", "ref": {"$link": target.cid}, "mimeType": MIME_TYPE, "size": size}
        with self._lock:
            known = self._placed.get(str(target))
        expected = (ref[1] or "").lower()
        if known is not None and cid_digest(known["ref"]["$link"]).hex() == expected and known["size"] is not None:
            return known
        found = self._placement(self._reading_client(), target)
        if found is None:
            raise StorageError(f"no shard at {target}: place it (put) before recording it")
        if found["size"] is None:
            found["size"] = self.size(f"{SCHEME}://{target.did}/{found['ref']['$link']}")
        return found

    def from_storage_record(self, record: Mapping[str, Any], *, repo: str | None = None) -> list[ShardRef]:
        """The blobs a ``storageBlobs`` member lists, as ``atblob://<repo>/<cid>`` shards, in order.

        ``repo`` is the DID of the repository holding the entry: its blobs are
        that repository's (the core passes it when it reads an entry). The
        sha256 is the recorded checksum, else the one the CID pins; a checksum
        that contradicts the CID is refused.
        """
        record_type = record.get("$type") if isinstance(record, Mapping) else None
        if record_type not in (STORAGE_BLOBS_NSID, f"{STORAGE_BLOBS_NSID}#main", None):
            raise RecordError(f"expected a {STORAGE_BLOBS_NSID} storage record, got $type {record_type!r}")
        blobs = record.get("blobs")
        if not isinstance(blobs, list) or not blobs:
            raise RecordError(f"{STORAGE_BLOBS_NSID} record: $.blobs must be a non-empty list")
        if not isinstance(repo, str) or not _DID_RE.match(repo):
            raise RecordError(
                f"{STORAGE_BLOBS_NSID} records list blobs of the repository holding the entry, so reading one "
                f"needs that repository's DID (repo=), got {repo!r}"
            )
        out = []
        for index, item in enumerate(blobs):
            where = f"{STORAGE_BLOBS_NSID} record: shard {index}"
            try:
                blob = self._blob_ref(item.get("blob") if isinstance(item, Mapping) else None, where)
            except StorageError as err:
                raise RecordError(str(err)) from None
            cid = blob["ref"]["$link"]
            pinned = cid_digest(cid).hex()
            checksum = item.get("checksum")
            digest = pinned
            if isinstance(checksum, Mapping) and str(checksum.get("algorithm", "")).lower() == "sha256":
                value = checksum.get("digest")
                if isinstance(value, str) and _HEX64.match(value.lower()):
                    if value.lower() != pinned:
                        raise RecordError(
                            f"{where} (blob {cid} of {repo}) is recorded with sha256 {value.lower()}, but its CID "
                            f"pins sha256 {pinned}: the record contradicts itself, so the shard cannot be trusted"
                        )
                    digest = value.lower()
            out.append(ShardRef(f"{SCHEME}://{repo}/{cid}", digest, None, blob["size"]))
        return out
