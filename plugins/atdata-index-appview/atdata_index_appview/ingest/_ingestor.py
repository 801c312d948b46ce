"""The event handling of ingestion: from a verified event to a store transaction.

:class:`Ingestor` is fed firehose frames (:meth:`Ingestor.handle_frame`) by
the subscription, and repositories by backfill. For each event it decides,
verifies and writes:

- ``#commit``: skipped when its ``rev`` is not above the repository's stored
  rev (a replay, or a commit a resync already covered); skipped cheaply when
  it touches no record of an indexed collection of a repository the store
  does not track. Otherwise the CAR is read with every block checked against
  its CID, the commit's signature verified against the account's key, and
  each of our operations proven against the signed tree (the record under
  the key is the one the operation names; a deleted key is absent). Records
  are validated tolerantly (DESIGN D6); an invalid one is quarantined with
  the reason and removed from the index, the rest apply in one transaction
  with the rev and the cursor. A commit whose ``since`` is not the stored rev
  means events were missed: the repository is resynced instead.
- ``tooBig`` commits, ``#sync`` of a repository the index tracks, and
  ``#info OutdatedCursor``: a resync of the repository (``getRepo`` from its
  own PDS, verified, the tree walked), or of every repository of the host for
  ``OutdatedCursor``, done a step at a time between events
  (:meth:`Ingestor.work`). A repository is tracked once it held a record of
  ours; a ``#sync`` of any other (every new account sends one) costs nothing.
- ``#identity``: the account's DID document is asked again and its handle,
  once verified, stored; ``#account``: the account's records hidden while it
  is not active.

No event can stop the stream: what fails verification or validation is
counted and skipped, the cursor moves past it, and an unexpected error while
handling one event is logged and counted (``event_errors``). Only the store
failing stops ingestion (:class:`StoreFailed`), since then nothing can be
written, the cursor included.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import attrs
import libipld

from atdata_core.errors import IdentityError, NetworkError, NetworkPolicyError, XrpcError
from atdata_core.plugins import NAMESPACE, RECORD_NSIDS, AtUri

from atdata_index_appview.ingest._car import BadBlock, Car, CarError, cid_string, read_car
from atdata_index_appview.ingest._checked import Checked, Rejected
from atdata_index_appview.ingest._cbor import CborError, record_json, unsigned_commit
from atdata_index_appview.ingest._frames import (
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    Event,
    FrameError,
    IdentityEvent,
    InfoEvent,
    SyncEvent,
    UnknownEvent,
    decode_frame,
)
from atdata_index_appview.ingest._identities import Identities, Known
from atdata_index_appview.ingest._interface import CommitBatch, IngestStore, RecordOp
from atdata_index_appview.ingest._mst import MstError, lookup, walk
from atdata_index_appview.ingest._settings import IngestSettings, host_url

__all__ = ["Ingestor", "StoreFailed"]

logger = logging.getLogger("atdata_index_appview.ingest")

_PREFIX = NAMESPACE + "."
# Every key of the namespace sorts between these two: '.' (0x2e) is followed by '/' (0x2f).
_LOW, _HIGH = _PREFIX.encode(), (NAMESPACE + "/").encode()
_GONE = {"RepoNotFound", "RepoTakendown", "RepoDeactivated", "RepoSuspended"}
_FLUSH_SECONDS = 1.0
_MAX_BACKOFF = 3600.0
_MAX_DEFERRED = 10_000
# While events wait in the queue, commits are written together: at most this many in one
# transaction, and no later than this. A transaction costs far more than a record, and its
# records' index entries land at random: a page of an index written for several of them is
# written once (replaying 100,000 entries' writes into SQLite, about 2,000 commits a
# transaction wrote 54 KiB per record and ran 3,500-4,000 records/s, against 99 KiB and
# 2,700/s at about 600; 4,000 commits a transaction wrote about half what 2,000 did, and the
# whole ingestion ran 10-30 % faster on both stores). Alone, a commit is written at once.
# The time bound matters only when events come faster than they are handled: then they have
# waited in the queue already, and a longer hold costs little latency. The bytes bound keeps
# hostile large records from holding much memory.
_MAX_HELD_COMMITS = 4000
_MAX_HELD_SECONDS = 2.0
_MAX_HELD_BYTES = 64 * 1024 * 1024
# Repositories whose (rev, data) this ingestor keeps in memory instead of asking the store each commit.
_MAX_KNOWN_REPOS = 200_000


class StoreFailed(RuntimeError):
    """The store raised while ingestion wrote to it; ingestion stops, nothing was skipped."""


_Rejected = Rejected


class _Unavailable(Exception):
    """Something the event needs (a DID document, a repository) could not be fetched now."""


@attrs.define
class _Deferred:
    due: float
    source: str
    reason: str
    attempts: int = 0


_INDEXED = frozenset(RECORD_NSIDS)


def indexed(path: str) -> bool:
    """Whether the record at ``path`` (``collection/rkey``) is of a collection the index holds.
    Other collections, of the namespace too (a plugin's own records, such as shard blobs), are
    ignored: neither indexed nor quarantined."""
    return path.partition("/")[0] in _INDEXED


class Ingestor:
    """Turns events into store writes. Not thread-safe: one thread feeds it.

    ``client``: a toolkit ``Client`` (its identity resolver and network policy
    are used; default: an anonymous one from the configuration).
    """

    def __init__(
        self,
        store: IngestStore,
        *,
        settings: IngestSettings | None = None,
        client: Any = None,
        identities: Identities | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if client is None:
            from atdata_core.plugins import Client

            client = Client.anonymous()
        self.store = store
        self.settings = settings or IngestSettings()
        self.client = client
        self.clock = clock
        self.identities = identities or Identities(client.identity, ttl=self.settings.identity_ttl, clock=clock)
        self.counts: Counter[str] = Counter()  # since the last flush
        self.totals: Counter[str] = Counter()  # since this ingestor began
        self._pending: dict[str, int] = {}
        self._flushed_at = clock()
        self._last_resync: dict[str, float] = {}
        self._deferred: dict[str, _Deferred] = {}
        self._jobs: deque[Iterator[None]] = deque()
        self._hosts_resyncing: set[str] = set()
        self._held: list[tuple[CommitBatch, list[tuple]]] = []  # written together at the next _drain
        self._held_since = 0.0
        self._held_bytes = 0
        self._holding = 0  # depth of holding() blocks
        self._repos: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()  # did -> (rev, data)
        self._handles: dict[str, str | None] = {}  # handles looked up, to write before the next commits
        self._in_flight: tuple[list[tuple[CommitBatch, list[tuple]]], Future] | None = None

    # ------------------------------------------------------------------ entry points

    def handle_frame(self, source: str, data: Any) -> None:
        """One websocket message from ``source``."""
        try:
            event = decode_frame(data)
        except FrameError as err:
            self.handle_undecodable(source, str(err))
            return
        self.handle_event(source, event)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within it, verified commits are written together (in one transaction, with the cursor
        of the last) when the block ends, when :data:`_MAX_HELD_COMMITS` (or
        :data:`_MAX_HELD_BYTES` of records) wait, or after :data:`_MAX_HELD_SECONDS`, rather
        than one transaction each. For a consumer handing
        over every event already waiting; any other store write (a cursor, a quarantine, a
        handle) first writes the commits held before it, so the order of writes is kept."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding:
            self._drain(wait=False)

    def handle_events(self, items: Iterable[tuple[str, Event]]) -> None:
        """Events already waiting, in order, their commits written together."""
        with self.holding():
            for source, event in items:
                self.handle_event(source, event)

    def handle_undecodable(self, source: str, reason: str) -> None:
        self._count("undecodable")
        logger.warning("%s: a frame did not decode and was skipped: %s", source, reason[:300])

    def handle_event(self, source: str, event: Event) -> None:
        """One decoded event from ``source``; never raises but :class:`StoreFailed`."""
        self._count("events")
        try:
            if isinstance(event, CommitEvent):
                self._commit(source, event)
            elif isinstance(event, SyncEvent):
                self._sync(source, event)
            elif isinstance(event, IdentityEvent):
                self._identity(source, event)
            elif isinstance(event, AccountEvent):
                self._account(source, event)
            elif isinstance(event, InfoEvent):
                self._info(source, event)
            elif isinstance(event, ErrorFrame):
                self._count("error_frames")
                logger.warning("%s answered with an error: %s %s", source, event.error[:100], (event.message or "")[:300])
            elif isinstance(event, UnknownEvent):
                self._count("unknown_events")
                if event.seq is not None:
                    self._advance(source, event.seq)
        except StoreFailed:
            raise
        except Exception:  # one event, however strange, must not stop the stream
            self._count("event_errors")
            logger.exception("%s: handling an event failed; it was skipped", source)
            seq = getattr(event, "seq", None)
            if isinstance(seq, int):
                self._advance(source, seq)
        self.maybe_flush()

    def flush(self) -> None:
        """Write the commits held, the cursors of events that held nothing to index, and the counts."""
        self._drain()
        self._settle()
        self._flush_rest()

    def _flush_rest(self) -> None:
        for source, seq in list(self._pending.items()):
            self._store_call("advance", source, seq)
            del self._pending[source]
        self._flush_counts()

    def _flush_counts(self) -> None:
        counts, self.counts = self.counts, Counter()
        for metric, n in counts.items():
            self._store_call("count", metric, n)
        self._flushed_at = self.clock()

    def maybe_flush(self) -> None:
        """Write what is due: commits left held while others were written, once those are; the
        counts and cursors every second."""
        if self._held and not self._holding and (self._in_flight is None or self._in_flight[1].done()):
            self._drain()
        if self.clock() - self._flushed_at >= _FLUSH_SECONDS:
            if self._held or self._in_flight is not None and not self._in_flight[1].done():
                return  # the counts go with the next run of commits (_drain): not waiting for a write now
            self.flush()

    def work(self) -> bool:
        """One step of the waiting work: a deferred resync that is due, or a step of a host
        resync. Returns False when there was nothing to do."""
        now = self.clock()
        due = [did for did, item in self._deferred.items() if item.due <= now]
        if due:
            did = min(due, key=lambda d: self._deferred[d].due)
            item = self._deferred.pop(did)
            self._resync(did, item.source, None, item.reason, attempts=item.attempts, throttle=False)
            self.maybe_flush()
            return True
        while self._jobs:
            try:
                next(self._jobs[0])
            except StopIteration:
                self._jobs.popleft()
                continue
            except StoreFailed:
                raise
            except Exception:
                self._count("event_errors")
                logger.exception("a host resync failed and was abandoned")
                self._jobs.popleft()
                continue
            self.maybe_flush()
            return True
        return False

    @property
    def holds(self) -> bool:
        """Whether commits are held, waiting for the last run to be written (:meth:`maybe_flush`)."""
        return bool(self._held)

    @property
    def waiting(self) -> int:
        """Resyncs deferred and host resyncs under way."""
        return len(self._deferred) + len(self._jobs)

    # ------------------------------------------------------------------ events

    def _commit(self, source: str, event: CommitEvent) -> None:
        did = event.repo
        stored, stored_data = self._repo_state(did)
        if stored is not None and event.rev <= stored:
            logger.debug("%s: the commit %s of %s is not newer than the index's %s; skipped",
                         source, event.rev[:20], did, stored)
            self._count("stale_commits")
            self._advance(source, event.seq)
            return
        ours = [op for op in event.ops if indexed(op.path)]
        if not ours and stored is None:
            self._advance(source, event.seq)
            return
        self._count("commits")
        if event.too_big:
            self._resync(did, source, event.seq, "tooBig")
            return
        checked = event.checked if isinstance(event.checked, Checked) else None
        try:
            car = checked.car() if checked is not None else _read_car(event.blocks)
            if not car.roots or car.roots[0] != event.commit:
                raise _Rejected("bad_commit", "the CAR's root is not the commit the event names")
            commit = self._verified_commit(did, car, event.commit, event.rev,
                                           checked.commit() if checked is not None else None)
            if stored is not None and event.since != stored:
                # Events of this repository were missed (or refused): read it whole.
                logger.info("%s: %s moved from %s to %s, but the index holds %s; resyncing",
                            source, did, event.since, event.rev, stored)
                self._resync(did, source, event.seq, "gap")
                return
            if stored is not None and event.prev_data is not None and stored_data is not None \
                    and cid_string(event.prev_data) != stored_data:
                # Sync 1.1: the commit builds on a tree other than the one indexed. Applying its ops
                # would index a diverged state; the repository is read whole instead.
                logger.info("%s: the commit %s of %s follows tree %s, but the index holds %s; resyncing",
                            source, event.rev, did, cid_string(event.prev_data)[:80], stored_data[:80])
                self._count("prev_data_mismatch")
                self._resync(did, source, event.seq, "prevData")
                return
            if checked is not None and (checked.proven_ops is not None or checked.ops_refused is not None):
                ops, quarantined = checked.ops()
            else:
                ops, quarantined = _commit_ops(did, car, commit["data"], ours)
        except _Rejected as err:
            self._reject(source, event.seq, did, err)
            if stored is None and ours:
                self._defer(did, source, "a refused commit")
            return
        except _Unavailable as err:
            self._count("identity_unavailable")
            logger.warning("%s: the commit %s of %s waits for a resync: %s", source, event.rev, did, err)
            self._advance(source, event.seq)
            self._defer(did, source, "identity unavailable")
            return
        self._write(CommitBatch(source=source, seq=event.seq, did=did, rev=event.rev, ops=tuple(ops),
                                data=cid_string(commit["data"])), quarantined)

    def _sync(self, source: str, event: SyncEvent) -> None:
        stored = self._repo_state(event.did)[0]
        if stored is None:
            # Not a repository of ours (every new account announces itself so): nothing to be out of
            # step with. Records it held before this host was followed are backfill's business.
            self._count("sync_untracked")
            self._advance(source, event.seq)
            return
        if event.rev <= stored:
            self._count("stale_commits")
            self._advance(source, event.seq)
            return
        try:
            car = _read_car(event.blocks)
            if not car.roots:
                raise _Rejected("bad_commit", "the #sync CAR has no root")
            self._verified_commit(event.did, car, car.roots[0], event.rev)
        except _Rejected as err:
            self._reject(source, event.seq, event.did, err)
            return
        except _Unavailable as err:
            self._count("identity_unavailable")
            self._advance(source, event.seq)
            self._defer(event.did, source, f"#sync, identity unavailable: {err}")
            return
        self._resync(event.did, source, event.seq, "sync")

    def _identity(self, source: str, event: IdentityEvent) -> None:
        self._count("identity_events")
        if self._repo_state(event.did)[0] is None:
            self.identities.forget(event.did)  # not ours: look it up when it first matters
        else:
            try:
                known = self.identities.refresh(event.did)
            except IdentityError as err:
                self._count("bad_identity")
                logger.warning("%s: #identity of %s: %s", source, event.did, err)
            except NetworkPolicyError as err:
                self._count("refused_host")
                logger.warning("%s: #identity of %s: %s", source, event.did, err)
            except NetworkError as err:
                self._count("identity_unavailable")
                logger.warning("%s: #identity of %s could not be looked up: %s", source, event.did, err)
            else:
                if known.handle_checked:
                    self._store_call("set_handle", event.did, known.handle)
                    self._count("handle_updates")
        self._advance(source, event.seq)

    def _account(self, source: str, event: AccountEvent) -> None:
        self._count("account_events")
        if self._repo_state(event.did)[0] is not None:
            self._store_call("set_account_active", event.did, event.active)
        self._advance(source, event.seq)

    def _info(self, source: str, event: InfoEvent) -> None:
        self._count("info_events")
        logger.warning("%s: #info %s %s", source, event.name[:100], (event.message or "")[:300])
        if event.name == "OutdatedCursor" and source not in self._hosts_resyncing:
            # Events were dropped before the cursor: every repository of the host may be behind.
            self._hosts_resyncing.add(source)
            self._jobs.append(self._host_steps(source, reason="OutdatedCursor"))

    # ------------------------------------------------------------------ verification

    def _verified_commit(self, did: str, car: Car, cid: bytes, rev: str | None,
                         decoded: tuple[Any, bytes, bytes] | None = None) -> dict:
        """The commit object ``cid`` of ``car``, its signature checked against ``did``'s key
        (``decoded``: :func:`decode_commit` of it, done already)."""
        commit, signed, signature = decoded if decoded is not None else decode_commit(car, cid)
        if (
            not isinstance(commit, dict) or commit.get("did") != did or not isinstance(commit.get("rev"), str)
            or not isinstance(commit.get("data"), bytes) or commit.get("version") not in (2, 3)
        ):
            raise _Rejected("bad_commit", f"the commit is not a version 3 commit of {did}")
        if rev is not None and commit["rev"] != rev:
            raise _Rejected("bad_commit", f"the event says rev {rev[:20]!r}, the commit {commit['rev'][:20]!r}")
        known = self._account_of(did)
        if known.key is None:
            raise _Rejected("bad_identity", f"{did} has no usable signing key: {known.key_problem}")
        if not known.key.verify(signed, signature):
            rotated = self.identities.retry_key(did)
            if rotated is None or not rotated.verify(signed, signature):
                raise _Rejected("bad_signature", f"the commit {commit['rev'][:20]} is not signed by {did}'s key")
        return commit

    def _account_of(self, did: str) -> Known:
        try:
            known, fresh = self.identities.get(did)
        except IdentityError as err:
            raise _Rejected("bad_identity", str(err)) from None
        except NetworkPolicyError as err:  # a did:web host the network policy refuses: for good
            raise _Rejected("refused_host", str(err)) from None
        except NetworkError as err:
            raise _Unavailable(str(err)) from None
        if fresh and known.handle_checked:
            # Written before the next commits (_drain): a run of new accounts' handles in one transaction.
            self._handles.pop(did, None)
            self._handles[did] = known.handle
        return known

    # ------------------------------------------------------------------ resync

    def resync(self, did: str, *, source: str | None = None) -> bool:
        """Read the repository ``did`` whole from its PDS and make the index match it; False when it
        could not be read (counted and logged)."""
        return self._resync(did, source or "backfill", None, "backfill", throttle=False)

    def resync_host(self, host: str) -> None:
        """Resync every repository ``host`` lists (``com.atproto.sync.listRepos``) whose rev differs
        from the index's, now."""
        for _ in self._host_steps(host_url(host), reason="backfill"):
            self.maybe_flush()

    def _resync(
        self, did: str, source: str, seq: int | None, reason: str, *, attempts: int = 0, throttle: bool = True
    ) -> bool:
        now = self.clock()
        last = self._last_resync.get(did)
        interval = self.settings.resync_interval
        if throttle and last is not None and now - last < interval:
            self._defer(did, source, reason, due=last + interval)
            if seq is not None:
                self._advance(source, seq)
            return False
        if len(self._last_resync) > 100_000:
            self._last_resync = {d: t for d, t in self._last_resync.items() if now - t < interval}
        self._last_resync[did] = now
        self._count("resyncs")
        try:
            self._resync_now(did, source, seq)
            return True
        except _Rejected as err:
            self._reject(source, seq, did, err)
        except _Unavailable as err:
            self._count("resync_failed")
            logger.warning("resync of %s (%s) failed: %s", did, reason, err)
            self._defer(did, source, reason, attempts=attempts + 1)
            if seq is not None:
                self._advance(source, seq)
        return False

    def _resync_now(self, did: str, source: str, seq: int | None) -> None:
        car, root = self._fetch_repo(did)
        commit = self._verified_commit(did, car, root, None)
        rev = commit["rev"]
        stored = self._repo_state(did)[0]
        ops: list[RecordOp] = []
        quarantined: list[tuple] = []
        if stored is None or rev > stored:
            try:
                for key, cid in walk(car.blocks, commit["data"], _LOW, _HIGH):
                    path = key.decode("utf-8", errors="replace")
                    if not indexed(path):
                        continue
                    raw = car.blocks.get(cid)
                    if raw is None:
                        raise _Rejected("bad_repo", f"the record {key[:200]!r} of {did} is not in the repository's CAR")
                    _record_op("create", did, path, cid, raw, ops, quarantined)
            except MstError as err:
                raise _Rejected("bad_repo", f"the repository tree of {did} is malformed: {err}") from None
        if stored is None and not ops and not quarantined:
            # Nothing of ours in a repository the index does not track: keep it untracked.
            if seq is not None:
                self._advance(source, seq)
            return
        if stored is not None and rev <= stored:
            self._count("resync_current")
            if seq is not None:
                self._advance(source, seq)
            return
        kept = [op for op in ops if op.action != "delete"]
        self._write(CommitBatch(source=source, seq=seq, did=did, rev=rev, ops=tuple(kept), snapshot=True,
                                data=cid_string(commit["data"])), quarantined)

    def _fetch_repo(self, did: str) -> tuple[Car, bytes]:
        known = self._account_of(did)
        if not known.pds_url:
            raise _Rejected("bad_identity", f"the DID document of {did} names no PDS")
        try:
            pds = self.client.identity.checked_pds(did, known.pds_url)
        except NetworkPolicyError as err:
            raise _Rejected("refused_host", str(err)) from None
        limit = self.settings.max_repo_bytes
        try:
            response = self.client.call(
                "com.atproto.sync.getRepo", params={"did": did}, pds_url=pds, network=self.client.network, stream=True
            )
            try:
                chunks, size = [], 0
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise _Rejected("repo_too_big", f"the repository of {did} is over {limit} bytes")
                    chunks.append(chunk)
            finally:
                response.close()
        except XrpcError as err:
            if err.error in _GONE:
                raise _Rejected("repo_unavailable", f"{did}: {err.error}") from None
            raise _Unavailable(str(err)) from None
        except NetworkPolicyError as err:
            raise _Rejected("refused_host", str(err)) from None
        except NetworkError as err:
            raise _Unavailable(str(err)) from None
        except OSError as err:  # the connection dropped while reading the body
            raise _Unavailable(f"reading the repository of {did}: {err}") from None
        car = _read_car(b"".join(chunks))
        if len(car.roots) != 1:
            raise _Rejected("bad_repo", f"the repository CAR of {did} has {len(car.roots)} roots, not 1")
        return car, car.roots[0]

    def _host_steps(self, host: str, *, reason: str) -> Iterator[None]:
        """Resync the repositories ``host`` lists whose rev the index lacks, one per step."""
        try:
            yield from self._host_pages(host, reason=reason)
        finally:
            self._hosts_resyncing.discard(host)

    def _host_pages(self, host: str, *, reason: str) -> Iterator[None]:
        cursor = None
        while True:
            try:
                page = self.client.call(
                    "com.atproto.sync.listRepos", params={"limit": 500, "cursor": cursor}, pds_url=host
                ).json()
            except (NetworkError, ValueError) as err:
                self._count("resync_failed")
                logger.warning("listing the repositories of %s failed (%s): %s", host, reason, err)
                return
            repos = page.get("repos") if isinstance(page, dict) else None
            if not isinstance(repos, list):
                logger.warning("%s answered listRepos without a list of repos", host)
                return
            for repo in repos:
                did = repo.get("did") if isinstance(repo, dict) else None
                if not isinstance(did, str) or not did.startswith("did:"):
                    continue
                if repo.get("active") is False:
                    if self._repo_state(did)[0] is not None:
                        self._store_call("set_account_active", did, False)
                    continue
                stored = self._repo_state(did)[0]
                rev = repo.get("rev")
                if stored is not None and isinstance(rev, str) and rev <= stored:
                    continue
                self._resync(did, host, None, reason, throttle=False)
                yield
            cursor = page.get("cursor")
            if not repos or not isinstance(cursor, str) or not cursor:
                return
            yield

    def _defer(self, did: str, source: str, reason: str, *, due: float | None = None, attempts: int = 0) -> None:
        if due is None:
            due = self.clock() + min(_MAX_BACKOFF, max(self.settings.resync_interval, 1.0) * 2 ** min(attempts, 12))
        current = self._deferred.get(did)
        if current is None and len(self._deferred) >= _MAX_DEFERRED:
            # A host sending refused commits of many accounts must not grow this without end.
            self._count("resyncs_dropped")
            return
        if current is None or due < current.due:
            self._deferred[did] = _Deferred(due=due, source=source, reason=reason, attempts=attempts)

    # ------------------------------------------------------------------ writing

    def _write(self, batch: CommitBatch, quarantined: list[tuple]) -> None:
        """Write ``batch`` now, or hold it to write with the next ones (:meth:`holding`)."""
        self._remember(batch.did, (batch.rev, batch.data))
        if not self._held:
            self._held_since = self.clock()
            self._held_bytes = 0
        self._held.append((batch, quarantined))
        self._held_bytes += sum(len(op.raw) for op in batch.ops if op.raw is not None)
        # A commit with records to quarantine goes last: quarantine() moves the cursor to its seq.
        if (quarantined or not self._holding or len(self._held) >= _MAX_HELD_COMMITS
                or self._held_bytes >= _MAX_HELD_BYTES or self.clock() - self._held_since >= _MAX_HELD_SECONDS):
            self._drain()

    def _drain(self, *, wait: bool = True) -> None:
        """Write the commits held: all in one transaction when the store can, else one by one.

        A store that can write a run of commits on a thread of its own (``start_apply_many``: a
        database server does much of the work) is given the run, and this returns at once: the
        events that follow are verified while the server writes. Whatever comes next waits for
        that transaction first (:meth:`_settle`): the next run, any other store call, a flush.
        Unless ``wait``: while it is being written, the commits stay held, to be written with
        those that follow, or once it is done (:meth:`maybe_flush`).
        """
        if not wait and self._held and self._in_flight is not None and not self._in_flight[1].done():
            return
        held, self._held = self._held, []
        self._settle()  # its quarantines and counts come before the next run is written
        if self._handles:
            self._write_handles()
        if not held:
            return
        if self.clock() - self._flushed_at >= _FLUSH_SECONDS:
            # The counts only: a cursor of an event that held nothing may be past the commits held.
            self._flush_counts()
        if len(held) < 2 or not callable(getattr(self.store, "apply_many", None)):
            self._written(held, together=False)
            return
        batches = [batch for batch, _ in held]
        start = getattr(self.store, "start_apply_many", None)
        if callable(start):
            try:
                self._in_flight = (held, start(batches))
                return
            except Exception as err:
                logger.warning("the store could not start writing %d commits (%s)", len(held), err)
        self._together(held, lambda: self.store.apply_many(batches))

    def _write_handles(self) -> None:
        handles, self._handles = self._handles, {}
        if callable(getattr(self.store, "set_handles", None)):
            self._store_call("set_handles", handles)
        else:
            for did, handle in handles.items():
                self._store_call("set_handle", did, handle)

    def _settle(self) -> None:
        """Wait for the run of commits being written on the writer thread, and finish it."""
        if self._in_flight is None:
            return
        (held, future), self._in_flight = self._in_flight, None
        self._together(held, future.result)

    def _together(self, held: list[tuple[CommitBatch, list[tuple]]], write: Callable[[], Any]) -> None:
        """``write()`` the run ``held`` in one transaction (or wait for it); if that fails, one by one."""
        try:
            write()
        except Exception as err:
            logger.warning("the store refused %d commits written together (%s); writing them one by one",
                           len(held), err)
            self._written(held, together=False)
        else:
            self._written(held, together=True)

    def _written(self, held: list[tuple[CommitBatch, list[tuple]]], together: bool) -> None:
        """After a run of commits was written together (``together``), or else to write them one by one:
        their quarantines and counts."""
        for batch, quarantined in held:
            refused: list[tuple] = []
            if not together:
                try:
                    self.store.apply(batch)
                except Exception as err:
                    logger.warning("the store refused the commit %s of %s (%s); applying it record by record",
                                   batch.rev, batch.did, err)
                    refused = self._write_each(batch)
                    quarantined = [*quarantined, *refused]
            if batch.seq is not None and self._pending.get(batch.source, -1) <= batch.seq:
                self._pending.pop(batch.source, None)
            for uri, reason, raw in quarantined:
                self._store_call("quarantine", batch.source, batch.seq, uri, reason, raw)
                logger.info("quarantined %s: %s", uri[:300], reason[:300])
            written = sum(op.action != "delete" for op in batch.ops)
            self._count("records_indexed", written - len(refused))
            self._count("records_deleted", len(batch.ops) - written)
            self._count("quarantined", len(quarantined))
            self._count("warnings", sum(len(op.warnings) for op in batch.ops))

    def _repo_state(self, did: str) -> tuple[str | None, str | None]:
        """``(rev, data)`` of the repository as indexed, from memory when this ingestor wrote or read it.

        Only this ingestor writes revisions, so what it remembers is what the store holds; were
        another process to write the same store, the store would still refuse to go back in
        revision, and a commit that does not follow what is remembered is resynced.
        """
        state = self._repos.get(did)
        if state is not None:
            self._repos.move_to_end(did)
            return state
        if callable(getattr(self.store, "repo_state", None)):
            rev, data = self._store_call("repo_state", did)
        else:
            rev, data = self._store_call("repo_rev", did), None
        state = (rev, data)
        self._remember(did, state)
        return state

    def _remember(self, did: str, state: tuple[str | None, str | None]) -> None:
        self._repos[did] = state
        self._repos.move_to_end(did)
        while len(self._repos) > _MAX_KNOWN_REPOS:
            self._repos.popitem(last=False)

    def _write_each(self, batch: CommitBatch) -> list[tuple]:
        """A batch the store refused, one op at a time; the ops it refuses again are quarantined.
        Raises :class:`StoreFailed` when the store takes nothing at all."""
        refused = []
        first = attrs.evolve(batch, seq=None, ops=())
        try:
            self.store.apply(first)  # for a snapshot: clears what the repository no longer holds
        except Exception as err:
            raise StoreFailed(f"the store failed: {err}") from err
        for op in batch.ops:
            try:
                self.store.apply(attrs.evolve(batch, seq=None, ops=(op,), snapshot=False))
            except Exception as err:
                self._count("store_refused")
                refused.append((op.uri, f"the index store refused it: {str(err)[:300]}", op.raw))
                try:
                    self.store.apply(attrs.evolve(batch, seq=None, snapshot=False, ops=(
                        RecordOp(action="delete", uri=op.uri, cid=None, record=None, raw=None),)))
                except Exception as err2:
                    raise StoreFailed(f"the store failed: {err2}") from err2
        if batch.seq is not None:
            self._store_call("advance", batch.source, batch.seq)
        return refused

    def _reject(self, source: str, seq: int | None, did: str, err: _Rejected) -> None:
        self._count(err.metric)
        logger.warning("%s: refused an event of %s (%s): %s", source, did, err.metric, err.reason[:300])
        if seq is not None:
            self._advance(source, seq)

    def _advance(self, source: str, seq: int) -> None:
        self._pending[source] = seq

    def note(self, metric: str, n: int = 1) -> None:
        """Count something that happened (written to the store's stats at the next flush)."""
        if n:
            self.counts[metric] += n
            self.totals[metric] += n

    _count = note

    def _store_call(self, method: str, *args: Any) -> Any:
        if method not in _READS:
            self._drain()  # every other write follows the commits held before it
        self._settle()
        try:
            return getattr(self.store, method)(*args)
        except Exception as err:
            raise StoreFailed(f"the store failed in {method}: {err}") from err


_READS = frozenset({"repo_rev", "repo_state", "cursor"})


class _Invalid(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _uri(did: str, path: str) -> str:
    return f"at://{did}/{path}"


def _split_path(did: str, path: str) -> tuple[str, str]:
    collection, _, rkey = path.partition("/")
    try:
        AtUri.record(did, collection, rkey)
    except Exception as err:
        raise _Invalid(f"the record path {path[:200]!r} is not collection/record-key: {err}") from None
    return collection, rkey


def _validate(record: dict, collection: str) -> tuple[str, ...]:
    from atdata_core.plugins import validate_record

    declared = record.get("$type")
    if declared is not None and declared != collection:
        raise _Invalid(f"the record's $type {str(declared)[:200]!r} is not its collection {collection}")
    try:
        warnings = validate_record(record, collection, strict=False)
    except Exception as err:  # ValidationError, and anything a hostile record provokes
        raise _Invalid(str(err)[:1000]) from None
    return tuple(str(w)[:1000] for w in warnings)


def _read_car(data: bytes) -> Car:
    try:
        return read_car(data)
    except BadBlock as err:
        raise _Rejected("bad_block", str(err)) from None
    except CarError as err:
        raise _Rejected("bad_car", str(err)) from None


def decode_commit(car: Car, cid: bytes) -> tuple[Any, bytes, bytes]:
    """The commit block ``cid`` of ``car`` decoded, with its signed bytes and its signature."""
    block = car.blocks.get(cid)
    if block is None:
        raise _Rejected("bad_commit", "the commit block is not in the CAR")
    try:
        commit = libipld.decode_dag_cbor(block)
        signed, signature = unsigned_commit(block)
    except (ValueError, RecursionError) as err:
        raise _Rejected("bad_commit", f"the commit does not decode: {err}") from None
    return commit, signed, signature


def _commit_ops(did: str, car: Car, root: bytes, ours: list) -> tuple[list[RecordOp], list[tuple]]:
    """The commit's operations of our namespace, each proven against the signed tree.

    One ``applyWrites`` may write a key twice (create, then update or delete): the tree holds
    the last write only, and the last write is all the index needs.
    """
    ops: list[RecordOp] = []
    quarantined: list[tuple] = []
    last = {op.path: op for op in ours}
    nodes: dict = {}
    for op in last.values():
        try:
            proven = lookup(car.blocks, root, op.path.encode("utf-8"), nodes)
        except MstError as err:
            raise _Rejected("bad_commit", f"{op.path[:200]}: {err}") from None
        if op.action == "delete":
            if proven is not None:
                raise _Rejected("bad_commit", f"{op.path[:200]} is deleted, but the signed tree still holds it")
            ops.append(RecordOp(action="delete", uri=_uri(did, op.path), cid=None, record=None, raw=None))
            continue
        if op.cid is None or proven != op.cid:
            raise _Rejected("bad_commit", f"{op.path[:200]}: the signed tree holds another record than the op says")
        raw = car.blocks.get(op.cid)
        if raw is None:
            raise _Rejected("bad_commit", f"{op.path[:200]}: the record's block is not in the CAR")
        _record_op(op.action, did, op.path, op.cid, raw, ops, quarantined)
    return ops, quarantined

def _record_op(action: str, did: str, path: str, cid: bytes, raw: bytes, ops: list, quarantined: list) -> None:
    """Append the op for one record, or its removal and its quarantine when it is not valid."""
    uri = _uri(did, path)
    try:
        collection, _ = _split_path(did, path)
        record = _decode_record(raw)
        warnings = _validate(record, collection)
    except _Invalid as err:
        ops.append(RecordOp(action="delete", uri=uri, cid=None, record=None, raw=None))
        quarantined.append((uri, err.reason, bytes(raw)))
        return
    ops.append(RecordOp(action=action, uri=uri, cid=cid_string(cid), record=record, raw=bytes(raw),
                        warnings=warnings))


def _decode_record(raw: bytes) -> dict:
    try:
        return record_json(raw)
    except CborError as err:
        raise _Invalid(f"the record does not decode: {err}") from None
