"""The other federation's published client, unchanged, searching and resolving against this AppView.

Its wheel (the one the core's interop tests use, fetched by the setup script)
is opened and its AppView code run as it ships: ``Atmosphere.xrpc_query``
(httpx), the dataset, schema, label and lens loaders, ``search_datasets``,
``get_entries``, ``describe_service`` and the ``AppViewSearchBackend``. The
package as a whole needs dependencies this environment does not install
(pandas, redis-om, s3fs...), so only the modules on that path are loaded, from
the wheel, under their own names; the two functions of its schema codec they
use are taken from the wheel's source too (the rest of that module loads
numpy-typed sample classes). Their PDS client is a stub that fails: every
answer must come from the AppView, since each loader falls back to the PDS
when the AppView fails.
"""

from __future__ import annotations

import ast
import glob
import os
import sys
import types
import zipfile
from pathlib import Path

import pytest

from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[3]
REPO = "did:plc:appviewtests0000000000000"
SCHEMA_URI = f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.10.0"
BLOB_CID = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"

_MODULES = [
    "_exceptions", "_logging", "_type_utils", "atmosphere/_types", "atmosphere/_lexicon_types", "atmosphere/client",
    "atmosphere/schema", "atmosphere/records", "atmosphere/labels", "atmosphere/lens", "search",
]


def _wheel() -> str:
    candidates = [os.environ.get("ATDATA_INTEROP_WHEEL", "")] + sorted(glob.glob(str(ROOT / ".cache" / "interop" / "atdata-*.whl")))
    wheel = next((c for c in candidates if c and os.path.exists(c)), None)
    if wheel is None:
        message = "the other client's wheel is missing: run scripts/setup.sh (it downloads it) or set ATDATA_INTEROP_WHEEL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return wheel


def _codec_stub(source: str) -> str:
    """The schema-version functions of their schema codec, from its source, without its heavy imports."""
    tree = ast.parse(source)
    keep = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("_get_schema_version", "_check_schema_record_version"):
            keep.append(ast.get_source_segment(source, node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            segment = ast.get_source_segment(source, node)
            if "SCHEMA_VERSION" in segment:
                keep.append(segment)
    return "from typing import Any\nfrom atdata._exceptions import SchemaError\n\n" + "\n\n".join(keep) + "\n"


@pytest.fixture(scope="module")
def theirs(tmp_path_factory):
    """Their modules, loaded from the wheel as the ``atdata`` package (removed from sys.modules afterwards)."""
    if any(name == "atdata" or name.startswith("atdata.") for name in sys.modules):
        pytest.fail("a package named atdata is already imported; the interop test needs the name")
    folder = tmp_path_factory.mktemp("their_client")
    with zipfile.ZipFile(_wheel()) as zf:
        for module in _MODULES:
            target = folder / "atdata" / f"{module}.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(f"atdata/{module}.py"))
        (folder / "atdata" / "_schema_codec.py").write_text(_codec_stub(zf.read("atdata/_schema_codec.py").decode()))
    (folder / "atdata" / "__init__.py").write_text("")
    (folder / "atdata" / "atmosphere" / "__init__.py").write_text("")
    sys.path.insert(0, str(folder))
    try:
        import atdata.atmosphere.client as client
        import atdata.atmosphere.labels as labels
        import atdata.atmosphere.lens as lens
        import atdata.atmosphere.records as records
        import atdata.atmosphere.schema as schema
        import atdata.search as search

        yield types.SimpleNamespace(client=client, records=records, schema=schema, labels=labels, lens=lens, search=search)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name == "atdata" or name.startswith("atdata.")]:
            del sys.modules[name]


class _NoPds:
    """Their PDS client: any use means the AppView path failed and they fell back."""

    def __getattr__(self, name):
        raise AssertionError(f"the client fell back to its PDS ({name}): the AppView answer did not satisfy it")


def _schema(version, created):
    return {"$type": SCHEMA_NSID, "name": "com.example.image", "version": version, "schemaType": "jsonSchema",
            "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat", "$schema": "http://json-schema.org/draft-07/schema#",
                       "type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
            "atdataSchemaVersion": 1, "createdAt": created}


@pytest.fixture
def appview(store, make_op, commit):
    blobs = {"$type": "science.alt.dataset.storageBlobs",
             "blobs": [{"blob": {"$type": "blob", "ref": {"$link": BLOB_CID}, "mimeType": "application/x-tar", "size": 10240},
                        "checksum": {"algorithm": "sha256", "digest": "cd" * 32}}]}
    ops = [make_op(SCHEMA_NSID, f"com.example.image:{v}", _schema(v, f"2025-01-0{i + 1}T00:00:00Z"))
           for i, v in enumerate(["1.2.0", "1.10.0", "1.11.0-rc.1"])]
    for i in range(130):
        ops.append(make_op(ENTRY_NSID, f"3k{i:011d}", {
            "$type": ENTRY_NSID, "name": f"mnist-{i}", "schemaRef": SCHEMA_URI, "tags": ["vision"] + (["digits"] if i % 2 else []),
            "description": "handwritten digits", "storage": blobs if i == 7 else {
                "$type": "science.alt.dataset.storageHttp",
                "shards": [{"url": f"https://data.example.com/{i}.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
            "createdAt": f"2025-02-01T00:00:{i % 60:02d}Z"}))
    ops.append(make_op(LABEL_NSID, "3klabelaaaa2a", {"$type": LABEL_NSID, "name": "stable", "version": "1.0.0",
                                                     "datasetUri": f"at://{REPO}/{ENTRY_NSID}/3k00000000003", "createdAt": "2025-03-01T00:00:00Z"}))
    ops.append(make_op(LENS_NSID, "3klensaaaaa2a", {"$type": LENS_NSID, "name": "image to text", "sourceSchema": SCHEMA_URI,
                                                    "targetSchema": f"at://{REPO}/{SCHEMA_NSID}/com.example.text:1.0.0",
                                                    "getterCode": {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:get"},
                                                    "putterCode": {"repository": "https://github.com/x/y", "commit": "a" * 40, "path": "m/f.py:put"},
                                                    "createdAt": "2025-03-01T00:00:00Z"}))
    commit(store, ops)
    store.set_handle(REPO, "alice.test")
    app = create_app(store, service_did="did:web:appview.test", pds_of=lambda did: "https://pds.test")
    with serve_in_thread(app) as server:
        yield server.url


@pytest.fixture
def atmosphere(theirs, appview):
    client = theirs.client.Atmosphere(_client=_NoPds(), appview=appview)
    yield client
    if client._httpx_client is not None:
        client._httpx_client.close()


def test_their_dataset_loader(theirs, atmosphere):
    loader = theirs.records.DatasetLoader(atmosphere)
    entry = loader.get(f"at://{REPO}/{ENTRY_NSID}/3k00000000005")
    assert entry["name"] == "mnist-5" and entry["schemaRef"] == SCHEMA_URI
    listed = loader.list_all(repo="alice.test", limit=125)  # pages of 100 through our cursors
    assert len(listed) == 125 and len({e["uri"] for e in listed}) == 125
    assert len(loader.list_all(repo=REPO, limit=1000)) == 130
    assert loader.get_blob_urls(f"at://{REPO}/{ENTRY_NSID}/3k00000000007") == [
        f"https://pds.test/xrpc/com.atproto.sync.getBlob?did={REPO}&cid={BLOB_CID}"]


def test_their_schema_loader(theirs, atmosphere):
    loader = theirs.schema.SchemaLoader(atmosphere)
    assert loader.resolve("alice.test", "com.example.image")["version"] == "1.10.0"  # highest release
    assert loader.resolve(REPO, "com.example.image", "1.2.0")["version"] == "1.2.0"
    assert [s["version"] for s in loader.list_all(repo="alice.test")] == ["1.11.0-rc.1", "1.10.0", "1.2.0"]


def test_their_label_and_lens_loaders(theirs, atmosphere):
    assert theirs.labels.LabelLoader(atmosphere).resolve("alice.test", "stable") == f"at://{REPO}/{ENTRY_NSID}/3k00000000003"
    lenses = theirs.lens.LensLoader(atmosphere)
    assert [lens["name"] for lens in lenses.list_all(repo=REPO)] == ["image to text"]
    assert [lens["name"] for lens in lenses.find_by_schemas(SCHEMA_URI)] == ["image to text"]
    assert [lens["name"] for lens in atmosphere.search_lenses(source_schema=SCHEMA_URI)] == ["image to text"]


def test_their_search_and_service_calls(theirs, atmosphere):
    found = atmosphere.search_datasets("mnist-12", tags=["vision"], repo="alice.test", limit=5)
    assert found[0]["name"] == "mnist-12"
    assert all("digits" in e["tags"] for e in atmosphere.search_datasets("digits", tags=["digits"], limit=100))
    described = atmosphere.describe_service()
    assert described["did"] == "did:web:appview.test" and described["recordCount"][ENTRY_NSID] == 130
    uris = [f"at://{REPO}/{ENTRY_NSID}/3k{i:011d}" for i in (1, 2, 3)]
    assert [e["uri"] for e in atmosphere.get_entries(uris)] == uris


def test_their_search_backend_pages(theirs, atmosphere):
    backend = theirs.search.AppViewSearchBackend(atmosphere)
    assert backend.health_check() is True
    seen, cursor = [], None
    while True:
        results = backend.search(text="handwritten", tags=["vision"], limit=40, cursor=cursor)
        seen.extend(item.uri for item in results.items)
        cursor = results.cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 130
