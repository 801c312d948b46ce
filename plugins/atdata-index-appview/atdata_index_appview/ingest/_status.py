"""What ingestion is doing now: for the service's health report and metrics.

:func:`~atdata_index_appview.ingest.run_ingest` updates an
:class:`IngestStatus` as it goes; the API reads it from another thread
(:meth:`IngestStatus.snapshot`). Lag is the time between now and the moment
the host stamped on the last event handled from it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from datetime import datetime
from typing import Any

import attrs

__all__ = ["IngestStatus", "SourceStatus"]

_WINDOW = 60  # seconds over which events/s is measured


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


@attrs.define
class SourceStatus:
    """One followed host: whether it is connected, the last event handled from it and when."""

    source: str
    connected: bool = False
    cursor: int | None = None
    event_time: float | None = None  # the host's timestamp of the last event handled (seconds since the epoch)
    handled_at: float | None = None  # when that event was handled (seconds since the epoch)
    events: int = 0

    def lag(self, now: float | None = None) -> float | None:
        """Seconds between now and the host's timestamp of the last event handled (None before one)."""
        if self.event_time is None:
            return None
        return max(0.0, (now if now is not None else time.time()) - self.event_time)


class IngestStatus:
    """Thread-safe view of a running ingestion (one per :func:`run_ingest`)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.started_at = clock()
        self.running = False
        self.error: str | None = None
        self._lock = threading.Lock()
        self._sources: dict[str, SourceStatus] = {}
        self._readers: list[Any] = []
        self._totals: Counter[str] = Counter()
        self._per_second: deque[list[int]] = deque()  # [second, events]

    # --- written by run_ingest -------------------------------------------------------------

    def begin(self, sources, readers, totals: Counter) -> None:
        with self._lock:
            self.running = True
            self._sources = {source: self._sources.get(source) or SourceStatus(source) for source in sources}
            self._readers = list(readers)
            self._totals = totals

    def handled(self, source: str, event: Any) -> None:
        self.handled_run([(source, event)])

    def handled_run(self, run: list[tuple[str, Any]]) -> None:
        """Events handled, in order: each host's count, and its last cursor and timestamp."""
        if not run:
            return
        latest: dict[str, list] = {}  # source -> [events, last int seq, last time text]
        for source, event in run:
            item = latest.get(source)
            if item is None:
                item = latest[source] = [0, None, None]
            item[0] += 1
            seq = getattr(event, "seq", None)
            if isinstance(seq, int):
                item[1] = seq
            stamp = getattr(event, "time", None)
            if stamp and isinstance(stamp, str):
                item[2] = stamp
        now = self.clock()
        with self._lock:
            for source, (events, seq, stamp) in latest.items():
                status = self._sources.setdefault(source, SourceStatus(source))
                status.events += events
                status.handled_at = now
                if seq is not None:
                    status.cursor = seq
                stamped = _parse_time(stamp)
                if stamped is not None:
                    status.event_time = stamped
            second = int(now)
            if self._per_second and self._per_second[-1][0] == second:
                self._per_second[-1][1] += len(run)
            else:
                self._per_second.append([second, len(run)])
            while self._per_second and self._per_second[0][0] <= second - _WINDOW:
                self._per_second.popleft()

    def end(self, error: BaseException | None = None) -> None:
        with self._lock:
            self.running = False
            self.error = None if error is None else f"{type(error).__name__}: {error}"

    # --- read by anyone --------------------------------------------------------------------

    def events_per_second(self) -> float:
        """Events handled per second over the last minute (or since the start, when shorter)."""
        now = self.clock()
        with self._lock:
            count = sum(events for second, events in self._per_second if second > now - _WINDOW)
        span = min(_WINDOW, max(1.0, now - self.started_at))
        return count / span

    def sources(self) -> list[SourceStatus]:
        with self._lock:
            connected = {reader.source: reader.connected.is_set() for reader in self._readers}
            out = []
            for status in self._sources.values():
                copy = attrs.evolve(status)
                copy.connected = connected.get(status.source, False)
                out.append(copy)
            return out

    def totals(self) -> dict[str, int]:
        """What happened since the start: records_indexed, quarantined, bad_signature..."""
        for _ in range(10):  # the ingesting thread may add a key while this copies
            try:
                return dict(self._totals)
            except RuntimeError:
                continue
        return {}

    def snapshot(self) -> dict[str, Any]:
        """Everything above as JSON-ready values."""
        now = self.clock()
        return {
            "running": self.running,
            "error": self.error,
            "startedAt": self.started_at,
            "eventsPerSecond": round(self.events_per_second(), 3),
            "sources": [
                {"url": s.source, "connected": s.connected, "cursor": s.cursor, "events": s.events,
                 "lagSeconds": None if s.lag(now) is None else round(s.lag(now), 3)}
                for s in self.sources()
            ],
            "counts": self.totals(),
        }
