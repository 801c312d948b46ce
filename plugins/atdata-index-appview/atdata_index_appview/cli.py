"""``atdata appview serve|backfill|mcp`` and ``atdata search``: the commands this plugin adds to the CLI.

::

    atdata appview serve --subscribe https://pds.example.com      # index its firehose; XRPC and web pages on :2590
    atdata appview backfill did:plc:abc... https://pds.example.com  # whole repositories, now
    atdata search "handwritten digits" --tag vision                # through [appview] url
    atdata appview mcp --url https://appview.example.com          # MCP tools for AI assistants, over stdio

Options override the ``[appview]`` settings for one run. Record text printed
on the terminal (names, descriptions, URIs) is escaped: controls, bidi
overrides and other invisible characters are shown as escapes (DESIGN D8).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from typing import Any

import click

from atdata_core.plugins import safe_text

__all__ = ["appview", "search"]


def _settings(**overrides: Any) -> Any:
    import attrs

    from atdata_core.errors import ConfigError
    from atdata_core.plugins import get_config, settings_from_config

    from atdata_index_appview.settings import AppViewSettings

    settings = settings_from_config(AppViewSettings, get_config(), "appview")
    given = {key: value for key, value in overrides.items() if value not in (None, ())}
    try:
        return attrs.evolve(settings, **given)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid option: {err}") from None


def _open_store(settings: Any) -> Any:
    from atdata_core.errors import ConfigError

    from atdata_index_appview.store import open_store

    try:
        return open_store(settings.store_url())
    except ValueError as err:
        raise ConfigError(f"[appview] store: {err}") from None


@click.group(help="Run an AppView: the firehose-fed index of science.alt.dataset records and its XRPC API.")
def appview() -> None:
    pass


@appview.command(help="Serve the XRPC API and follow the firehose of the subscribed hosts into the store.")
@click.option("--store", help="Store URL: sqlite:///path.db, a path, or postgresql://... ([appview] store).")
@click.option("--host", help="Address to listen on ([appview] host, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on ([appview] port, 2590).")
@click.option("--subscribe", "subscribe", multiple=True, help="A PDS or relay to follow (repeat for more; [appview] subscribe).")
@click.option("--no-ingest", is_flag=True, help="Only answer queries; follow no firehose.")
def serve(store: str | None, host: str | None, port: int | None, subscribe: tuple[str, ...], no_ingest: bool) -> None:
    import logging
    import threading

    import uvicorn

    from atdata_core.plugins import Client, get_config

    from atdata_index_appview.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(store=store, host=host, port=port, subscribe=list(subscribe) or None)
    index = _open_store(settings)
    resolver = Client.anonymous(config=get_config())

    def pds_of(did: str) -> str | None:
        return resolver.identity.resolve_did(did).pds_url

    status = None
    if settings.subscribe and not no_ingest:
        from atdata_index_appview.ingest import IngestStatus

        status = IngestStatus()
    app = create_app(index, service_did=settings.service_did(), pds_of=pds_of, version=_version(), ingest_status=status)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    stop = threading.Event()
    failure: list[BaseException] = []
    ingest_thread = None
    if settings.subscribe and not no_ingest:
        from atdata_index_appview.ingest import run_ingest

        def ingest() -> None:
            try:
                run_ingest(settings, index, stop_event=stop, status=status)
            except BaseException as err:  # noqa: BLE001 - the service stops, and says why
                failure.append(err)
                logging.getLogger("atdata_index_appview").exception("ingestion stopped")
                server.should_exit = True

        ingest_thread = threading.Thread(target=ingest, name="appview-ingest", daemon=True)
        ingest_thread.start()
    address = f"http://{settings.host}:{settings.port}"
    click.echo(f"AppView {settings.service_did()}: XRPC on {address}/xrpc/, web pages on {address}/ "
               f"({index!r}; following {', '.join(settings.subscribe) if ingest_thread else 'nothing'})", err=True)
    # uvicorn shuts down cleanly on SIGINT / SIGTERM, then raises the signal again for the handler it
    # found: make that handler end this command normally (exit 0) once the server has stopped.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.set()
        if ingest_thread is not None:
            ingest_thread.join(timeout=30)
        index.close()
    if failure:
        raise click.ClickException(f"ingestion stopped: {failure[0]}")


@appview.command(help="Index whole repositories now: DIDs or handles, or hosts (every repository they hold).")
@click.argument("repos_or_hosts", nargs=-1, required=True)
@click.option("--store", help="Store URL ([appview] store).")
def backfill(repos_or_hosts: tuple[str, ...], store: str | None) -> None:
    from atdata_core.plugins import Client, get_config

    from atdata_index_appview.ingest import backfill as run_backfill

    settings = _settings(store=store)
    index = _open_store(settings)
    try:
        counts = run_backfill(settings, index, repos_or_hosts, client=Client.anonymous(config=get_config()))
    finally:
        index.close()
    summary = ", ".join(f"{name} {value}" for name, value in sorted(counts.items()) if value) or "nothing to index"
    click.echo(summary)


@appview.command(name="mcp", help="Serve an AppView's queries as MCP tools for AI assistants (over stdio unless --transport http).")
@click.option("--url", help="The AppView whose XRPC API the tools ask ([appview] url).")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio for an MCP client that launches this command; http for streamable HTTP at /mcp.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --transport http: a loopback address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=2591, show_default=True, help="With --transport http: the port.")
def mcp_server(url: str | None, transport: str, host: str, port: int) -> None:
    from atdata_core.errors import ConfigError

    settings = _settings(url=url)
    if not settings.url:
        raise ConfigError(
            "atdata appview mcp asks an AppView: give --url https://... or set [appview] url (or ATDATA_APPVIEW_URL)"
        )
    try:
        from atdata_index_appview.mcp import LOOPBACK_HOSTS, AppViewTools, run_server
    except ImportError as err:
        raise click.ClickException(
            f"the MCP server needs the mcp package ({err}): pip install 'atdata-index-appview[mcp]'"
        ) from None
    if transport == "http" and host not in LOOPBACK_HOSTS:
        raise click.BadParameter(
            f"the MCP server has no authentication, so it listens only on this machine "
            f"({', '.join(LOOPBACK_HOSTS)}), not {host}", param_hint="--host",
        )
    tools = AppViewTools(settings.url, timeout=settings.timeout, retries=settings.retries)
    # stdout carries the protocol over stdio: everything said to a person goes to stderr.
    click.echo(f"MCP tools over the AppView at {tools.url} ({transport}"
               + (f" on http://{host}:{port}/mcp)" if transport == "http" else ")"), err=True)
    try:
        run_server(tools, transport=transport, host=host, port=port, version=_version())
    except KeyboardInterrupt:
        pass


@click.command(help="Search datasets across the network through the AppView ([appview] url).")
@click.argument("text", required=False, default="")
@click.option("--tag", "tags", multiple=True, help="Only datasets carrying this tag (repeat for several).")
@click.option("--repo", help="Only datasets of this account (handle or DID).")
@click.option("--schema", "schema_ref", help="Only datasets of this schema (AT-URI).")
@click.option("--limit", type=click.IntRange(1, 1000), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def search(text: str, tags: tuple[str, ...], repo: str | None, schema_ref: str | None, limit: int, as_json: bool) -> None:
    from atdata_core.plugins import index_provider

    provider = index_provider("appview")
    found = provider.search(text, tags=tags, repo=repo, schema_ref=schema_ref, limit=limit)
    if as_json:
        click.echo(json.dumps([{"uri": r.uri, "cid": r.cid, "value": dict(r.value)} for r in found], indent=2, ensure_ascii=False))
        return
    for record in found:
        value = record.value if isinstance(record.value, Mapping) else {}
        tag_list = value.get("tags") if isinstance(value.get("tags"), list) else []
        tag_text = " ".join(f"#{tag}" for tag in tag_list if isinstance(tag, str))
        click.echo(safe_text(f"{value.get('name', '?')}  {tag_text}".rstrip()))
        click.echo("  " + safe_text(record.uri))
        description = value.get("description")
        if isinstance(description, str) and description.strip():
            line = " ".join(description.split())
            click.echo("  " + safe_text(line[:200] + ("..." if len(line) > 200 else "")))
    if not found:
        click.echo("no datasets found")


class _Stop(Exception):
    """A stop signal arrived (after uvicorn shut down)."""


def _stopped(signum: int, frame: Any) -> None:
    raise _Stop()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atdata-index-appview")
    except PackageNotFoundError:
        return ""
