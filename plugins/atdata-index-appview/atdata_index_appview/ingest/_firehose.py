"""One websocket subscription to a host's ``com.atproto.sync.subscribeRepos``.

A :class:`FirehoseReader` thread per host receives frames, decodes them (the
cheap part: libipld) and hands the events to the writer through a bounded
queue, so a slow store slows the reading down rather than filling memory. It
reconnects on its own, from the last sequence number it received, with a
growing pause; a frame larger than ``max_frame_bytes`` closes the connection,
so it is skipped by moving the cursor one past it.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from atdata_index_appview.ingest._frames import ErrorFrame, FrameError, decode_frame
from atdata_index_appview.ingest._settings import IngestSettings, subscribe_url

__all__ = ["FirehoseReader"]

logger = logging.getLogger("atdata_index_appview.ingest")

# What a reader puts on the queue: (source, kind, payload) with kind one of
EVENT, UNDECODABLE, OVERSIZED = "event", "undecodable", "oversized"
_TOO_BIG = 1009  # the websocket close code for a message over the size limit


class FirehoseReader(threading.Thread):
    """Reads ``source``'s firehose from ``cursor`` on into ``out`` until ``halt`` is set."""

    def __init__(
        self,
        source: str,
        cursor: int | None,
        out: queue.Queue,
        halt: threading.Event,
        settings: IngestSettings,
    ):
        super().__init__(name=f"firehose {source}", daemon=True)
        self.source = source
        self.cursor = cursor
        self.out = out
        self.halt = halt
        self.settings = settings
        self.connected = threading.Event()  # set while a connection is open (tests wait on it)
        self.connections = 0
        self._checker: Any = None

    def _start_checker(self) -> None:
        if not self.settings.check_frames_apart:
            return
        from atdata_index_appview.ingest._checking import FrameChecker

        try:
            self._checker = FrameChecker(self.source, self._checked, self._handle_frame)
        except Exception as err:  # noqa: BLE001 - frames are then checked in this process
            logger.warning("%s: no frame-checking process (%s); frames are checked here", self.source, err)

    def run(self) -> None:
        self._start_checker()
        try:
            self._follow()
        finally:
            if self._checker is not None:
                self._checker.close()

    def _follow(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        pause = 0.25
        while not self.halt.is_set():
            if self._checker is not None:
                # Every frame received has moved the cursor before it is asked for again.
                while not self._checker.wait_idle(0.25) and not self.halt.is_set():
                    pass
            url = subscribe_url(self.source, self.cursor)
            try:
                with connect(
                    url, max_size=self.settings.max_frame_bytes, open_timeout=10, close_timeout=1,
                    user_agent_header="atdata-index-appview",
                ) as websocket:
                    self.connections += 1
                    self.connected.set()
                    pause = 0.25
                    while not self.halt.is_set():
                        try:
                            data = websocket.recv(timeout=0.25)
                        except TimeoutError:
                            continue
                        self._receive(data)
            except ConnectionClosed as err:
                if err.sent is not None and err.sent.code == _TOO_BIG:
                    self._skip_oversized()
                    pause = 0.0
                elif not self.halt.is_set():
                    logger.info("%s closed the firehose (%s); reconnecting", self.source, err)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as err:
                logger.warning("the firehose of %s is unreachable (%s); retrying in %.1f s", self.source, err, pause)
            except Exception:  # a reader that dies silently would stop ingestion from this host for good
                logger.exception("the firehose reader of %s failed; restarting it", self.source)
            finally:
                self.connected.clear()
            if self.halt.wait(pause):
                break
            pause = min(max(pause * 2, 0.25), 30.0)

    def _receive(self, data: Any) -> None:
        checker = self._checker
        if checker is not None and isinstance(data, bytes):
            if checker.submit(data):
                return
            checker.wait_idle()  # it failed: the frames it held go first
        self._handle_frame(data)

    def _checked(self, data: bytes, kind: str, payload: Any) -> None:
        """A frame's result from the checking process (on its thread, in order)."""
        if kind == UNDECODABLE:
            self._put(UNDECODABLE, payload)
        else:
            self._accept(payload)

    def _handle_frame(self, data: Any) -> None:
        try:
            event = decode_frame(data)
        except FrameError as err:
            self._put(UNDECODABLE, str(err))
            return
        self._accept(event)

    def _accept(self, event: Any) -> None:
        if isinstance(event, ErrorFrame) and event.error == "FutureCursor":
            # The host's sequence is behind ours: it was reset, or this is not the host the
            # cursor came from. Read what it has from its start.
            logger.warning("%s: cursor %s is ahead of the host; reading it from its start", self.source, self.cursor)
            self.cursor = 0
        seq = getattr(event, "seq", None)
        if isinstance(seq, int):
            self.cursor = seq
        self._put(EVENT, event)

    def _skip_oversized(self) -> None:
        if self._checker is not None:
            self._checker.wait_idle()
        logger.warning("%s sent a frame over %d bytes after seq %s; skipping it",
                       self.source, self.settings.max_frame_bytes, self.cursor)
        if self.cursor is not None:
            self.cursor += 1
        self._put(OVERSIZED, None)

    def _put(self, kind: str, payload: Any) -> None:
        while not self.halt.is_set():
            try:
                self.out.put((self.source, kind, payload), timeout=0.25)
                return
            except queue.Full:
                continue
