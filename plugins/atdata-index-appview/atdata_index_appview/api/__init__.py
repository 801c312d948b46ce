"""The AppView's XRPC API (Starlette, served by uvicorn).

Query methods, under ``/xrpc/``:

=====================================  ==========================================================
``science.alt.dataset.searchDatasets``  ranked text search over entries; ``tags``, ``schemaRef``, ``repo``
``science.alt.dataset.listEntries``     entries, newest first, of everyone or one ``repo``
``science.alt.dataset.getEntry``        one entry (``{"entry": entryView}``)
``science.alt.dataset.getEntries``      up to 25 entries, those indexed
``science.alt.dataset.listSchemas``     schemas, newest first
``science.alt.dataset.getSchema``       one schema (the ``schemaView`` is the body)
``science.alt.dataset.resolveSchema``   a schema by owner and id: the highest semver, or ``version``
``science.alt.dataset.resolveLabel``    the dataset a label names (the newest label of that name)
``science.alt.dataset.resolveBlobs``    download URLs of blob-stored shards
``science.alt.dataset.listLenses``      lenses, by ``repo`` and source / target schema
``science.alt.dataset.searchLenses``    lenses by source / target schema, across repositories
``science.alt.dataset.getLensPath``     the shortest chain of lenses from one schema to another
``science.alt.dataset.describeService`` the service's DID, collections and record counts
``science.alt.dataset.getEntryStats``   one entry's shards, bytes, samples, labels and its schema's lenses
``science.alt.dataset.getIndexStats``   how many entries, schemas, lenses, labels and accounts are indexed
``science.alt.dataset.getRecord``       any indexed record as published (``{uri, cid, value}``)
``science.alt.dataset.listRecords``     any collection, with the filters every atdata index shares
``com.atproto.identity.resolveHandle``  the DID of a handle the AppView has indexed
=====================================  ==========================================================

``science.alt.dataset.subscribeChanges`` (a websocket) streams every change
of the index from a ``cursor`` (see :mod:`atdata_index_appview.api._changes`).

``/xrpc/_health`` reports the store and the firehose cursors; ``/metrics``
the counts, in Prometheus' text format. Paged methods take ``limit`` and
``cursor`` and answer a ``cursor`` while there is more; a cursor is opaque.

::

    from atdata_index_appview.api import create_app, serve_in_thread
    app = create_app(open_store("appview.db"), service_did="did:web:appview.example.com")
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from atdata_index_appview.api._app import create_app
from atdata_index_appview.api._methods import Methods, XrpcFailure
from atdata_index_appview.api._params import ParamError, parse_params, register_plugin_lexicons

__all__ = ["Methods", "ParamError", "RunningServer", "XrpcFailure", "create_app", "parse_params", "register_plugin_lexicons", "serve_in_thread"]


class RunningServer:
    """A uvicorn server answering on a loopback socket from a thread of this process."""

    def __init__(self, server: Any, thread: threading.Thread, url: str):
        self._server = server
        self._thread = thread
        self.url = url

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 30.0) -> RunningServer:
    """Serve ``app`` from a background thread on ``host:port`` (0: a free port); returns once it answers."""
    import uvicorn

    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP. Without it a
    # response written in two parts waits for the client's delayed ACK (40 ms a request on keep-alive).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="appview-api", daemon=True)
    thread.start()
    deadline = threading.Event()
    waited = 0.0
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the AppView API server stopped while starting")
        if waited > timeout:
            server.should_exit = True
            raise RuntimeError(f"the AppView API server did not start in {timeout:.0f} s")
        deadline.wait(0.01)
        waited += 0.01
    bound_host, bound_port = sock.getsockname()[:2]
    return RunningServer(server, thread, f"http://{bound_host}:{bound_port}")
