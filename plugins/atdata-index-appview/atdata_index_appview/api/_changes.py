"""``science.alt.dataset.subscribeChanges``: the index's change log, streamed over a websocket.

Each subscriber reads the store's change log from its own cursor (no shared
buffer: a slow reader only slows itself, and nothing is dropped), polling
while it is at the end. Messages are JSON text, the shape the other
federation's AppView streams: ``{"seq", "type": "create"|"update"|"delete",
"uri", "collection", "did", "rkey", "timestamp", "cid"?, "record"?}``, plus
``{"type": "keepalive"}`` when idle, ``{"type": "info", "name":
"OutdatedCursor"}`` when changes after the cursor were pruned, and
``{"type": "error", "error", "message"}`` before a refusal closes the socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from atdata_index_appview.api._params import ParamError, method_document, parse_params
from atdata_index_appview.api._views import RawJson, dumps
from atdata_index_appview.store import Change, SqlStore

__all__ = ["ChangeStreams"]

log = logging.getLogger("atdata_index_appview.api")

NSID = "science.alt.dataset.subscribeChanges"
_BATCH = 500
# Close codes: 1008 policy violation (a bad request), 1013 try again later (too many subscribers).
_BAD_REQUEST = 1008
_TRY_LATER = 1013


def change_message(change: Change) -> dict[str, Any]:
    message: dict[str, Any] = {
        "seq": change.seq, "type": change.action, "uri": change.uri, "collection": change.collection,
        "did": change.did, "rkey": change.rkey, "timestamp": change.at,
    }
    if change.cid:
        message["cid"] = change.cid
    if change.value is not None:
        message["record"] = RawJson(change.value)
    return message


class ChangeStreams:
    """The subscribeChanges endpoint over one store."""

    def __init__(self, store: SqlStore, *, poll: float = 0.2, keepalive: float = 30.0, max_subscribers: int = 256):
        self.store = store
        self.poll = poll
        self.keepalive = keepalive
        self.max_subscribers = max_subscribers
        self.subscribers = 0

    async def __call__(self, websocket: WebSocket) -> None:
        await websocket.accept()
        query: dict[str, list[str]] = {}
        for key, value in websocket.query_params.multi_items():
            query.setdefault(key, []).append(value)
        try:
            params = parse_params(method_document(NSID, "subscription"), query)
        except ParamError as err:
            await self._refuse(websocket, "InvalidRequest", str(err), _BAD_REQUEST)
            return
        if self.subscribers >= self.max_subscribers:
            await self._refuse(websocket, "TooManySubscribers", "try again later", _TRY_LATER)
            return
        self.subscribers += 1
        try:
            await self._stream(websocket, params)
        except WebSocketDisconnect:
            pass
        except Exception:  # noqa: BLE001 - one subscriber's failure is logged, the service goes on
            log.exception("subscribeChanges failed")
            try:
                await websocket.close(code=1011)
            except Exception:  # noqa: BLE001
                pass
        finally:
            self.subscribers -= 1

    async def _refuse(self, websocket: WebSocket, error: str, message: str, code: int) -> None:
        await websocket.send_text(dumps({"type": "error", "error": error, "message": message}).decode())
        await websocket.close(code=code, reason=error)

    async def _stream(self, websocket: WebSocket, params: dict[str, Any]) -> None:
        oldest, newest = await run_in_threadpool(self.store.change_bounds)
        cursor = params.get("cursor")
        if cursor is None:
            cursor = newest
        elif cursor > newest:
            await self._refuse(websocket, "FutureCursor", f"the newest change is {newest}", _BAD_REQUEST)
            return
        elif oldest and cursor < oldest - 1:
            await websocket.send_text(dumps({
                "type": "info", "name": "OutdatedCursor",
                "message": f"changes before {oldest} were pruned; the stream resumes at {oldest}",
            }).decode())
        collection = params.get("collection")
        quiet_since = time.monotonic()
        while True:
            changes = await run_in_threadpool(self.store.changes_after, cursor, limit=_BATCH)
            for change in changes:
                cursor = change.seq
                if collection is None or change.collection == collection:
                    await websocket.send_text(dumps(change_message(change)).decode("utf-8", "surrogatepass"))
                    quiet_since = time.monotonic()
            if len(changes) == _BATCH:
                continue
            if time.monotonic() - quiet_since >= self.keepalive:
                await websocket.send_text('{"type":"keepalive"}')
                quiet_since = time.monotonic()
            await asyncio.sleep(self.poll)
