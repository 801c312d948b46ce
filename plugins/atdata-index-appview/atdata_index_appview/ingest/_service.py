"""The two things the CLI runs: following firehoses (:func:`run_ingest`) and backfill (:func:`backfill`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from atdata_core.errors import IdentityError, NetworkError

from atdata_index_appview.ingest._firehose import EVENT, OVERSIZED, UNDECODABLE, FirehoseReader
from atdata_index_appview.ingest._ingestor import Ingestor
from atdata_index_appview.ingest._interface import IngestStore
from atdata_index_appview.ingest._settings import IngestSettings, host_url
from atdata_index_appview.ingest._status import IngestStatus

__all__ = ["backfill", "firehose_client", "run_ingest"]

logger = logging.getLogger("atdata_index_appview.ingest")

# Under a steady stream, waiting resyncs still get a turn this often (events between turns).
_WORK_EVERY = 64
# At most this many waiting events are taken from the queue and handled together.
_TAKE_AT_ONCE = 4096


def _handle(ingestor: Ingestor, status: IngestStatus, run: list[tuple[str, Any]]) -> None:
    ingestor.handle_events(run)
    status.handled_run(run)


def run_ingest(
    settings: IngestSettings,
    store: IngestStore,
    *,
    stop_event: threading.Event,
    client: Any = None,
    status: IngestStatus | None = None,
    on_ready: Callable[[list[FirehoseReader]], None] | None = None,
) -> Counter:
    """Follow every host of ``settings.subscribe`` into ``store`` until ``stop_event`` is set.

    ``settings``: :class:`IngestSettings`, or the plugin's ``[appview]`` settings (the fields
    they share are read from them).

    Each host is read from the cursor the store saved for it (from its oldest
    kept event when there is none and ``settings.replay``, else from now).
    Store calls happen on the calling thread only (a store may write a run of
    commits on a thread of its own: ``start_apply_many``). Returns the counts of
    what happened (``records_indexed``, ``quarantined``, ``bad_signature``...),
    which were also written to the store. Raises
    :class:`~atdata_index_appview.ingest.StoreFailed` when the store fails
    (after stopping the readers), since then nothing more can be saved.
    ``client``: the toolkit ``Client`` whose identity resolver and network
    policy are used (default: :func:`firehose_client`). ``status``: an :class:`IngestStatus` kept up to date for health reports and
    metrics (connected hosts, cursors, lag, events/s, counts). ``on_ready`` is
    called with the started readers (tests wait on their ``connected`` event).
    """
    settings = IngestSettings.of(settings)
    if not settings.subscribe:
        raise ValueError("no host to follow: give the PDSes or relays to follow in the subscribe setting ([appview] subscribe)")
    if client is None:
        client = firehose_client(settings)
    ingestor = Ingestor(store, settings=settings, client=client)
    events: queue.Queue = queue.Queue(maxsize=settings.queue_size)
    halt = threading.Event()
    readers = []
    for host in settings.subscribe:
        cursor = store.cursor(host)
        if cursor is None and settings.replay:
            cursor = 0
        readers.append(FirehoseReader(host, cursor, events, halt, settings))
    for reader in readers:
        reader.start()
    status = status if status is not None else IngestStatus()
    status.begin(settings.subscribe, readers, ingestor.totals)
    if on_ready is not None:
        on_ready(readers)
    handled = 0
    failure: BaseException | None = None
    try:
        while not stop_event.is_set():
            try:
                first = events.get(timeout=0.005 if ingestor.holds else 0.05 if ingestor.waiting else 0.2)
            except queue.Empty:
                if not ingestor.work():
                    ingestor.maybe_flush()
                continue
            # Every event already waiting is handled together: their commits are written in few
            # transactions (each with the cursor it covers) rather than one each.
            taken = [first]
            while len(taken) < _TAKE_AT_ONCE:
                try:
                    taken.append(events.get_nowait())
                except queue.Empty:
                    break
            run: list[tuple[str, Any]] = []
            with ingestor.holding():
                for source, kind, payload in taken:
                    if kind == EVENT:
                        run.append((source, payload))
                        continue
                    if run:
                        _handle(ingestor, status, run)
                        run = []
                    if kind == UNDECODABLE:
                        ingestor.handle_undecodable(source, payload)
                    elif kind == OVERSIZED:
                        ingestor.note("oversized")
                if run:
                    _handle(ingestor, status, run)
            before, handled = handled, handled + len(taken)
            if handled // _WORK_EVERY != before // _WORK_EVERY and ingestor.waiting:
                ingestor.work()
    except BaseException as err:
        failure = err
        raise
    finally:
        halt.set()
        for reader in readers:
            reader.join(timeout=5)
        try:
            ingestor.flush()
        except Exception:
            logger.exception("saving the last counts and cursors failed")
        status.end(failure)
    return ingestor.totals


def firehose_client(settings: IngestSettings, config: Any = None) -> Any:
    """An anonymous ``Client`` (the configuration's ``[plc]``, ``[network]``...) whose requests give
    up within ``settings.lookup_timeout``: an event naming a slow host must not hold the stream up."""
    from atdata_core.plugins import Client

    seconds = settings.lookup_timeout
    return Client.anonymous(config=config, timeout=seconds, retries=1, backoff=0.2, deadline=2 * seconds,
                            max_rate_wait=seconds)


def backfill(
    settings: IngestSettings, store: IngestStore, dids_or_hosts: Iterable[str], *, client: Any = None
) -> Counter:
    """Index whole repositories now: each DID (or handle) named, and every repository of each host
    named (``https://pds.example.com``: ``com.atproto.sync.listRepos``, then ``getRepo`` of each
    whose rev the index lacks). Returns the counts, as :func:`run_ingest` does."""
    settings = IngestSettings.of(settings)
    ingestor = Ingestor(store, settings=settings, client=client)
    for item in dids_or_hosts:
        item = item.strip()
        if "://" in item:
            ingestor.resync_host(host_url(item))
        elif item.startswith("did:"):
            ingestor.resync(item)
        else:
            try:
                did = ingestor.client.identity.resolve_handle(item)
            except (IdentityError, NetworkError) as err:
                ingestor.note("bad_identity")
                logger.warning("backfill: %s", err)
                continue
            ingestor.resync(did)
        ingestor.flush()
    ingestor.flush()
    return ingestor.totals
