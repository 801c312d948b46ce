"""The Starlette application: ``/xrpc/<nsid>``, health and metrics, and the web pages (``/``...).

Every answer under ``/xrpc/`` is JSON (the pages, :mod:`atdata_index_appview.web`,
are HTML). A method's parameters are checked against its lexicon before it
runs, and anything wrong with them is a 400 in the XRPC envelope
``{"error": "InvalidRequest", "message": ...}``; a method nobody declared is a
501 ``MethodNotImplemented``; what the index lacks is a 404 with the error the
method's lexicon names (``EntryNotFound``, ``SchemaNotFound``...). A 500 means
a fault of the service, never of the request; its message gives nothing away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from atdata_index_appview.api._changes import ChangeStreams
from atdata_index_appview.api._methods import RESOLVE_HANDLE, Methods, XrpcFailure
from atdata_index_appview.api._params import ParamError, method_document, parse_params, register_plugin_lexicons
from atdata_index_appview.api._views import dumps
from atdata_index_appview.store import SqlStore

__all__ = ["create_app"]

log = logging.getLogger("atdata_index_appview.api")

_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
#: A request whose query string is longer than this is refused before it is parsed.
MAX_QUERY_BYTES = 64 * 1024


def _seconds_since(stamp: str, now: float) -> float | None:
    """Seconds from a store timestamp (``2025-01-02T03:04:05.000000Z``) to ``now``: how far a firehose lags."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return round(max(0.0, now - moment.timestamp()), 1)


def _label(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ingest_metrics(snapshot: dict[str, Any]) -> list[str]:
    lines = [f"atdata_appview_ingest_running {1 if snapshot.get('running') else 0}",
             f"atdata_appview_ingest_events_per_second {snapshot.get('eventsPerSecond') or 0}"]
    for source in snapshot.get("sources") or ():
        host = _label(source.get("url"))
        lines.append(f'atdata_appview_ingest_connected{{host="{host}"}} {1 if source.get("connected") else 0}')
        if source.get("lagSeconds") is not None:
            lines.append(f'atdata_appview_ingest_lag_seconds{{host="{host}"}} {source["lagSeconds"]}')
    return lines


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json", headers=_HEADERS)


def _failure(status: int, error: str, message: str) -> Response:
    return _json({"error": error, "message": message}, status)


def create_app(
    store: SqlStore,
    *,
    service_did: str = "did:web:localhost",
    pds_of: Callable[[str], str | None] | None = None,
    version: str = "",
    poll: float = 0.2,
    keepalive: float = 30.0,
    ingest_status: Any = None,
) -> Starlette:
    """The AppView's web application over ``store``.

    ``service_did`` is what ``describeService`` reports; ``pds_of(did)``
    finds an account's PDS for ``resolveBlobs`` (see :class:`Methods`).
    ``subscribeChanges`` looks for new changes every ``poll`` seconds and
    sends a keepalive after ``keepalive`` quiet ones. ``ingest_status``: the
    :class:`~atdata_index_appview.ingest.IngestStatus` of the ingestion
    feeding the store, reported by health and metrics (hosts connected, lag,
    events per second).
    """
    from atdata_index_appview.web import page_routes  # here: the pages build on this package's methods

    register_plugin_lexicons()
    methods = Methods(store, service_did=service_did, pds_of=pds_of)
    started = time.time()

    async def xrpc(request: Request) -> Response:
        nsid = request.path_params["nsid"]
        handler = methods.table.get(nsid)
        definition = RESOLVE_HANDLE if nsid == "com.atproto.identity.resolveHandle" else method_document(nsid)
        if handler is None or definition is None:
            return _failure(501, "MethodNotImplemented", f"this AppView does not implement {nsid[:200]}")
        if request.method not in ("GET", "HEAD"):
            return _failure(405, "InvalidRequest", f"{nsid} is a query: use GET")
        if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return _failure(400, "InvalidRequest", f"the query string is longer than {MAX_QUERY_BYTES} bytes")
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        try:
            params = parse_params(definition, query)
            body = await run_in_threadpool(handler, params)
        except ParamError as err:
            return _failure(400, "InvalidRequest", str(err))
        except XrpcFailure as err:
            return _failure(err.status, err.error, err.message)
        except Exception:  # noqa: BLE001 - logged here; the client learns only that the service failed
            log.exception("%s failed", nsid)
            return _failure(500, "InternalServerError", "the AppView failed to answer; the fault is logged")
        return _json(body)

    async def health(request: Request) -> Response:
        def check() -> dict[str, Any]:
            store.ping()
            now = time.time()
            cursors = {
                source: {"seq": seq, "updatedAt": updated, "secondsSinceUpdate": _seconds_since(updated, now)}
                for source, (seq, updated) in store.cursors().items()
            }
            body: dict[str, Any] = {"version": version, "store": "ok", "uptime": round(now - started, 1), "cursors": cursors}
            if ingest_status is not None:
                body["ingest"] = ingest_status.snapshot()
            return body

        try:
            return _json(await run_in_threadpool(check))
        except Exception as err:  # noqa: BLE001 - health says what is wrong instead of failing
            log.warning("health check: the store does not answer: %s", err)
            return _json({"version": version, "store": "unavailable"}, 503)

    async def metrics(request: Request) -> Response:
        def collect() -> str:
            lines = []
            for metric, value in sorted(store.stats().items()):
                name = "".join(ch if ch.isalnum() else "_" for ch in metric)
                lines.append(f"atdata_appview_{name}_total {value}")
            lines.append(f"atdata_appview_quarantined_records {store.quarantine_size()}")
            for collection, value in sorted(store.record_counts().items()):
                lines.append(f'atdata_appview_records{{collection="{collection}"}} {value}')
            if ingest_status is not None:
                lines.extend(_ingest_metrics(ingest_status.snapshot()))
            return "\n".join(lines) + "\n"

        try:
            text = await run_in_threadpool(collect)
        except Exception:  # noqa: BLE001
            log.exception("metrics failed")
            return _failure(503, "StoreUnavailable", "the store does not answer")
        return Response(text, media_type="text/plain; version=0.0.4", headers=_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _failure(404, "NotFound", "no such path; XRPC methods are under /xrpc/")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _failure(500, "InternalServerError", "the AppView failed to answer; the fault is logged")

    streams = ChangeStreams(store, poll=poll, keepalive=keepalive)

    async def subscribe_changes(websocket: WebSocket) -> None:
        await streams(websocket)

    routes = [
        WebSocketRoute("/xrpc/science.alt.dataset.subscribeChanges", subscribe_changes),
        Route("/xrpc/_health", health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/xrpc/{nsid}", xrpc, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
        *page_routes(methods),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 500: server_error})
    app.state.store = store
    app.state.methods = methods
    return app
