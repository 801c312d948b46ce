"""The ``appview`` index provider: the core's contract against a live API, and what it does when the AppView is down."""

from __future__ import annotations

import socket

import pytest

from atdata_core.errors import ConfigError, IdentityError, NetworkError, RecordNotFound
from atdata_core.plugins import (
    ENTRY_NSID,
    LABEL_NSID,
    SCHEMA_NSID,
    IndexedRecord,
    index_provider,
    search_records,
    select_label,
    select_schema,
)
from atdata_core.plugins.conformance import IndexProviderConformance

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.ingest import CommitBatch
from atdata_index_appview.provider import AppViewIndex
from atdata_index_appview.settings import AppViewSettings

CONFORMANCE_REPO = "did:plc:conformance00000000000000"


class Unreachable:
    """A fallback that must not be used: the AppView answered everything."""

    def __getattr__(self, name):
        raise AssertionError(f"the provider fell back to the PDS index ({name}) although the AppView is up")


class MemoryIndex:
    """A PDS index stand-in holding records in memory, following the core's rules (the fallback in these tests)."""

    def __init__(self, records=(), handles=None):
        self.records = list(records)
        self.handles = handles or {}
        self.calls = []

    def get_record(self, uri):
        self.calls.append("get_record")
        for record in self.records:
            if record.uri == uri:
                return record
        raise RecordNotFound(uri)

    def list_records(self, collection, *, repo=None, query=None, tags=(), limit=None):
        self.calls.append("list_records")
        mine = [r for r in self.records if f"/{collection}/" in r.uri and (repo is None or r.uri.startswith(f"at://{repo}/"))]
        return search_records(mine, query=query, tags=tags, limit=limit)

    def resolve_schema(self, repo, schema_id, version=None):
        self.calls.append("resolve_schema")
        return select_schema([r for r in self.records if f"/{SCHEMA_NSID}/" in r.uri], repo, schema_id, version)

    def resolve_label(self, repo, name, version=None):
        self.calls.append("resolve_label")
        return select_label([r for r in self.records if f"/{LABEL_NSID}/" in r.uri], repo, name, version)

    def resolve_repo(self, handle_or_did):
        self.calls.append("resolve_repo")
        text = handle_or_did.lstrip("@")
        if text.startswith("did:"):
            return text
        if text in self.handles:
            return self.handles[text]
        raise IdentityError(f"no account {text}")


@pytest.fixture
def live(store):
    """The API on loopback over ``store`` (each store in turn)."""
    with serve_in_thread(create_app(store)) as server:
        yield server


class TestAppViewProvider(IndexProviderConformance):
    """The core's index conformance suite, against the API fed by each store."""

    @pytest.fixture
    def index_provider(self, live):
        return AppViewIndex(AppViewSettings(url=live.url), fallback=Unreachable())

    @pytest.fixture
    def publish(self, store, make_op, repo):
        seq = iter(range(1, 1000))

        def publish(collection, rkey, record):
            op = make_op(collection, rkey, record, repo=repo)
            store.apply(CommitBatch(source="https://pds.test", seq=next(seq), did=repo, rev=f"3l{next(seq):011d}", ops=(op,)))
            return op.uri

        return publish


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def down_url():
    return f"http://127.0.0.1:{_closed_port()}"


def _fallback_records():
    schema = {"$type": SCHEMA_NSID, "name": "com.example.image", "version": "1.0.0", "createdAt": "2025-01-01T00:00:00Z"}
    entry = {"$type": ENTRY_NSID, "name": "mnist", "tags": ["vision"], "createdAt": "2025-02-01T00:00:00Z"}
    label = {"$type": LABEL_NSID, "name": "stable", "datasetUri": "at://did:plc:a/x/y", "createdAt": "2025-02-01T00:00:00Z"}
    return [
        IndexedRecord(uri=f"at://{CONFORMANCE_REPO}/{SCHEMA_NSID}/com.example.image:1.0.0", value=schema),
        IndexedRecord(uri=f"at://{CONFORMANCE_REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a", value=entry),
        IndexedRecord(uri=f"at://{CONFORMANCE_REPO}/{LABEL_NSID}/3kbbbbbbbbb2a", value=label),
    ]


def test_an_unreachable_appview_falls_back_to_pds_reads(down_url):
    fallback = MemoryIndex(_fallback_records(), {"alice.test": CONFORMANCE_REPO})
    provider = AppViewIndex(AppViewSettings(url=down_url, retries=0, timeout=2), fallback=fallback)
    assert provider.resolve_schema(CONFORMANCE_REPO, "com.example.image").value["version"] == "1.0.0"
    assert [r.value["name"] for r in provider.list_records(ENTRY_NSID, repo=CONFORMANCE_REPO, tags=["vision"])] == ["mnist"]
    assert provider.get_record(f"at://{CONFORMANCE_REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a").value["name"] == "mnist"
    assert provider.resolve_label(CONFORMANCE_REPO, "stable").value["name"] == "stable"
    assert provider.resolve_repo("@alice.test") == CONFORMANCE_REPO
    assert [r.value["name"] for r in provider.search("mni", repo=CONFORMANCE_REPO)] == ["mnist"]
    with pytest.raises(RecordNotFound):
        provider.resolve_schema(CONFORMANCE_REPO, "com.example.none")
    assert fallback.calls == ["resolve_schema", "list_records", "get_record", "resolve_label", "resolve_repo",
                              "list_records", "resolve_schema"]


def test_a_failing_appview_is_not_asked_again_for_a_while(down_url, monkeypatch):
    fallback = MemoryIndex(_fallback_records())
    provider = AppViewIndex(AppViewSettings(url=down_url, retries=0, timeout=2, retry_after=60), fallback=fallback)
    asked = []
    original = provider.query
    monkeypatch.setattr(provider, "query", lambda *a, **k: asked.append(a[0]) or original(*a, **k))
    for _ in range(3):
        provider.resolve_schema(CONFORMANCE_REPO, "com.example.image")
    assert asked == ["science.alt.dataset.resolveSchema"]
    assert fallback.calls == ["resolve_schema"] * 3


def test_without_fallback_an_unreachable_appview_is_a_network_error(down_url):
    provider = AppViewIndex(AppViewSettings(url=down_url, retries=0, timeout=2, fallback=False), fallback=Unreachable())
    with pytest.raises(NetworkError):
        provider.resolve_schema(CONFORMANCE_REPO, "com.example.image")


def test_an_appview_failing_with_5xx_falls_back(tmp_path):
    from atdata_index_appview.store import open_store

    broken = open_store(f"sqlite:///{tmp_path / 'broken.db'}")
    app = create_app(broken)
    broken.close()  # every query now fails inside the service: HTTP 500
    fallback = MemoryIndex(_fallback_records())
    with serve_in_thread(app) as server:
        provider = AppViewIndex(AppViewSettings(url=server.url, retries=0), fallback=fallback)
        assert provider.resolve_schema(CONFORMANCE_REPO, "com.example.image").value["version"] == "1.0.0"
    assert fallback.calls == ["resolve_schema"]


def test_handles_the_appview_does_not_know_are_asked_of_the_network(live, store):
    store.set_handle(CONFORMANCE_REPO, "alice.test")
    fallback = MemoryIndex(handles={"bob.test": "did:plc:bob00000000000000000000"})
    provider = AppViewIndex(AppViewSettings(url=live.url), fallback=fallback)
    assert provider.resolve_repo("alice.test") == CONFORMANCE_REPO
    assert fallback.calls == []
    assert provider.resolve_repo("bob.test") == "did:plc:bob00000000000000000000"
    with pytest.raises(IdentityError):
        provider.resolve_repo("nobody.test")


def test_answers_4xx_are_not_outages(live):
    provider = AppViewIndex(AppViewSettings(url=live.url), fallback=Unreachable())
    with pytest.raises(RecordNotFound):
        provider.get_record(f"at://{CONFORMANCE_REPO}/{ENTRY_NSID}/3kmissingaa2a")
    with pytest.raises(RecordNotFound):
        provider.resolve_label(CONFORMANCE_REPO, "nothing")


def test_the_provider_is_registered_with_the_core(monkeypatch, live):
    monkeypatch.setenv("ATDATA_APPVIEW_URL", live.url)
    monkeypatch.setenv("ATDATA_INDEX_DEFAULT", "appview")
    from atdata_core.plugins import reset_plugins

    reset_plugins()
    provider = index_provider()
    assert isinstance(provider, AppViewIndex) and provider.url == live.url
    assert index_provider("appview") is provider


def test_the_provider_needs_a_url(monkeypatch):
    from atdata_core.plugins import reset_plugins

    monkeypatch.delenv("ATDATA_APPVIEW_URL", raising=False)
    reset_plugins()
    with pytest.raises(ConfigError, match=r"\[appview\] url"):
        index_provider("appview")
    monkeypatch.setenv("ATDATA_APPVIEW_URL", "ftp://nope")
    reset_plugins()
    with pytest.raises(ConfigError, match="url"):
        index_provider("appview")


def test_an_appview_without_these_methods_stays_in_use_for_the_rest(tmp_path):
    """Another implementation (a FastAPI service answers 404 {"detail": ...} for a path it lacks)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    asked = []

    async def resolve_schema(request):
        asked.append("resolveSchema")
        record = {"$type": SCHEMA_NSID, "name": "com.example.image", "version": "2.0.0", "createdAt": "2025-01-01T00:00:00Z"}
        return JSONResponse({"uri": f"at://{CONFORMANCE_REPO}/{SCHEMA_NSID}/com.example.image:2.0.0", "cid": "", "record": record})

    async def missing(request, exc):
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    app = Starlette(routes=[Route("/xrpc/science.alt.dataset.resolveSchema", resolve_schema)], exception_handlers={404: missing})
    fallback = MemoryIndex(_fallback_records())
    with serve_in_thread(app) as server:
        provider = AppViewIndex(AppViewSettings(url=server.url), fallback=fallback)
        assert provider.get_record(f"at://{CONFORMANCE_REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a").value["name"] == "mnist"
        assert provider.resolve_schema(CONFORMANCE_REPO, "com.example.image").value["version"] == "2.0.0"
        assert [r.value["name"] for r in provider.list_records(ENTRY_NSID, repo=CONFORMANCE_REPO)] == ["mnist"]
    assert asked == ["resolveSchema"]
    assert fallback.calls == ["get_record", "list_records"]


def test_every_ingestion_setting_can_be_set_in_the_appview_section():
    import attrs

    from atdata_index_appview.ingest import IngestSettings

    ours = AppViewSettings()
    for field in attrs.fields(IngestSettings):
        assert hasattr(ours, field.name), f"[appview] lacks the ingestion setting {field.name}"
        assert IngestSettings.of(ours) == IngestSettings(), f"[appview] {field.name} defaults differently"
