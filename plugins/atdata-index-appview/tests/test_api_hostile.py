"""Hostile queries: whatever a client sends, the answer is a 400 in the envelope or a correct result, never a 500.

Malformed limits and cursors, wrong types, repeated parameters, NUL
characters, SQL wildcards and FTS syntax in search text, very long values and
query strings: each against both stores, through a real HTTP server.
"""

from __future__ import annotations

import base64
import json
import socket

import httpx
import pytest

from atdata_core.plugins import ENTRY_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.ingest import CommitBatch
from atdata_index_appview.store import open_store

REPO = "did:plc:appviewtests0000000000000"
NS = "science.alt.dataset"
ENTRY_URI = f"at://{REPO}/{ENTRY_NSID}/3kentryaaaa2a"
HOSTILE = "100% pure_data [beta] \"quoted\" NEAR(x) a*b"


def build_op(collection, rkey, record):
    from atdata_index_appview.ingest import RecordOp

    return RecordOp(action="create", uri=f"at://{REPO}/{collection}/{rkey}", cid=None, record=record, raw=None)


def _entry(name, tags=()):
    return {"$type": ENTRY_NSID, "name": name, "schemaRef": f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0",
            "storage": {"$type": "science.alt.dataset.storageHttp", "shards": []}, "tags": list(tags),
            "createdAt": "2025-02-01T00:00:00Z"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    """One populated store of each kind and its API, for the whole module: the cases only read."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'appview.db'}"
    else:
        pg = request.getfixturevalue("pg_server")
        url = pg.create_database(template=request.getfixturevalue("pg_template"))
    store = open_store(url)
    ops = [
        build_op(ENTRY_NSID, "3kentryaaaa2a", _entry(HOSTILE, ["ta%g", "t_g"])),
        build_op(ENTRY_NSID, "3kentrybbbb2a", _entry("plain", ["tag"])),
    ]
    store.apply(CommitBatch(source="https://pds.test", seq=1, did=REPO, rev="3laaaaaaaaa2a", ops=tuple(ops)))
    store.set_handle(REPO, "alice.test")
    try:
        with serve_in_thread(create_app(store)) as running:
            yield running
    finally:
        store.close()
        if request.param != "sqlite":
            pg.drop_database(url)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _get(http, method, params):
    response = http.get(f"/xrpc/{NS}.{method}", params=params)
    assert response.status_code != 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error", "message"} and body["error"] and body["message"]
    return response.status_code, body


def _cursor(body):
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


BAD_LIMITS = ["", "abc", "-1", "0", "101", "1e3", "1.5", " 5", "5 ", "+5", "0x10", "9" * 40, "１０", "\u0000", "NaN", "true"]
BAD_CURSORS = [
    "", "garbage", "====", "%%%", "a" * 20_000, "\u0000", "null", _cursor(None), _cursor([1]), _cursor({"a": 1}),
    _cursor([1, None, 5, "at://x"]), _cursor([1, "1", "", "at://x"]), _cursor([9, None, "", "at://x"]),
    _cursor([1, None, "", "at://x\u0000"]), _cursor([1, 10**30, "", "at://x"]),
    base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
]


@pytest.mark.parametrize("limit", BAD_LIMITS)
@pytest.mark.parametrize("method", ["searchDatasets", "listEntries", "listSchemas", "listLenses", "searchLenses", "listRecords"])
def test_malformed_limits_are_400(http, method, limit):
    params = {"limit": limit, "q": "x", "collection": ENTRY_NSID}
    status, body = _get(http, method, params)
    assert status == 400 and body["error"] == "InvalidRequest" and "limit" in body["message"]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize("method", ["searchDatasets", "listEntries", "listRecords"])
def test_malformed_cursors_are_400(http, method, cursor):
    status, body = _get(http, method, {"cursor": cursor, "q": "plain", "collection": ENTRY_NSID})
    assert status == 400 and body["error"] == "InvalidRequest"


def test_a_cursor_of_one_kind_of_page_is_refused_by_the_other(http):
    listing = _get(http, "listEntries", {"limit": 1})[1]["cursor"]
    search = _get(http, "searchDatasets", {"q": "", "limit": 1})[1]["cursor"]
    assert _get(http, "searchDatasets", {"q": "plain", "cursor": listing})[0] == 400
    assert _get(http, "listEntries", {"cursor": search})[0] == 400


@pytest.mark.parametrize("method, params", [
    ("getEntry", {}),
    ("getEntry", {"uri": "not a uri"}),
    ("getEntry", {"uri": "https://example.com/x"}),
    ("getEntry", {"uri": "at://"}),
    ("getEntry", {"uri": "at://did:plc:x/" + "a" * 9000}),
    ("getEntry", {"uri": f"{ENTRY_URI}\u0000"}),
    ("getEntry", {"uri": [ENTRY_URI, ENTRY_URI]}),
    ("getEntries", {}),
    ("getEntries", {"uris": ["nope"]}),
    ("getEntries", {"uris": [ENTRY_URI] * 26}),
    ("getEntries", {"uris": [ENTRY_URI] * 500}),
    ("getSchema", {"uri": "at://did:plc:x/science.alt.dataset.schema/a b"}),
    ("resolveSchema", {"handle": "alice.test"}),
    ("resolveSchema", {"schemaId": "x"}),
    ("resolveSchema", {"handle": "not a handle!", "schemaId": "x"}),
    ("resolveSchema", {"handle": "did:", "schemaId": "x"}),
    ("resolveSchema", {"handle": "alice.test", "schemaId": "x" * 501}),
    ("resolveSchema", {"handle": "alice.test", "schemaId": "x", "version": "1" * 21}),
    ("resolveLabel", {"handle": "alice.test"}),
    ("resolveLabel", {"handle": "alice.test", "name": "n" * 201}),
    ("resolveBlobs", {}),
    ("resolveBlobs", {"uris": ["x"]}),
    ("searchDatasets", {}),
    ("searchDatasets", {"q": "x" * 1001}),
    ("searchDatasets", {"q": "é" * 501}),  # 1002 bytes of UTF-8
    ("searchDatasets", {"q": " ".join(f"w{i}" for i in range(40))}),
    ("searchDatasets", {"q": "x", "tags": [f"t{i}" for i in range(31)]}),
    ("searchDatasets", {"q": "x", "tags": ["t" * 151]}),
    ("searchDatasets", {"q": "x", "repo": "???"}),
    ("searchDatasets", {"q": "x", "schemaRef": "nope"}),
    ("searchDatasets", {"q": ["a", "b"]}),
    ("searchDatasets", {"q": "a\u0000b"}),
    ("listEntries", {"repo": "has space.test"}),
    ("listLenses", {"sourceSchema": "not-a-uri"}),
    ("listRecords", {}),
    ("listRecords", {"collection": "not an nsid"}),
    ("listRecords", {"collection": ENTRY_NSID, "q": "x" * 1001}),
    ("getRecord", {"uri": "at://did:plc:x"}),
])
def test_bad_parameters_are_400(http, method, params):
    status, body = _get(http, method, params)
    assert status == 400 and body["error"] == "InvalidRequest", body


@pytest.mark.parametrize("text", [
    "%", "_", "%%", "100%", "pure_data", "\\", "'", "\"", "\"quoted\"", "' OR '1'='1", "\"; DROP TABLE records; --",
    "*", "a*b", "NEAR(x)", "NEAR(a b)", "AND", "a OR b", "NOT plain", "-plain", "^plain", "name:plain", "(", ")", "[beta]",
    "{x}", "col:val", "\ufffd", "\U0001f600", "plain" * 200, "ta%g", "t_g",
])
def test_search_text_with_wildcards_and_syntax_is_only_text(http, text):
    status, body = _get(http, "searchDatasets", {"q": text})
    assert status == 200
    found = {entry["name"] for entry in body["entries"]}
    hostile = HOSTILE
    words = text.casefold().split()
    for name, tags in ((hostile, ["ta%g", "t_g"]), ("plain", ["tag"])):
        text_of = "\n".join([name, *tags, "com.example.image"]).casefold()
        assert (name in found) == all(word in text_of for word in words), (text, name)
    status, body = _get(http, "listRecords", {"collection": ENTRY_NSID, "q": text})
    assert status == 200
    assert {r["value"]["name"] for r in body["records"]} == {n for n in (hostile, "plain") if text.casefold() in n.casefold()}


@pytest.mark.parametrize("tag", ["%", "_", "t%g", "t_g", "ta%g", "'", "\"", "tag'--"])
def test_tag_filters_are_exact(http, tag):
    status, body = _get(http, "searchDatasets", {"q": "", "tags": [tag]})
    assert status == 200
    assert {e["name"] for e in body["entries"]} == ({HOSTILE} if tag in ("ta%g", "t_g") else set())


def test_unknown_parameters_are_ignored(http):
    status, body = _get(http, "listEntries", {"nonsense": "1", "limit": "1", "limit[]": "x"})
    assert status == 200 and len(body["entries"]) == 1


def test_repeated_array_parameters(http):
    status, body = _get(http, "getEntries", {"uris": [ENTRY_URI, ENTRY_URI]})
    assert status == 200 and len(body["entries"]) == 1


def test_a_very_long_query_string_is_refused_not_failed(server):
    # Up to the HTTP server's line limit the API answers 400 (q is longer than its lexicon allows);
    # past it the HTTP server refuses the request itself (400, or a closed connection while the client
    # is still sending). Never a 5xx.
    port = int(server.url.rsplit(":", 1)[1])
    for size in (10_000, 70_000, 1_000_000):
        request = f"GET /xrpc/{NS}.searchDatasets?q={'x' * size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(request.encode())
                while chunk := sock.recv(65536):
                    answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            assert size > 16_000, "refused without an answer, though short enough to read"
        if answer:
            status = int(answer.split(b" ", 2)[1])
            assert 400 <= status < 500, (size, answer[:200])
        else:
            assert size > 16_000


def test_percent_encoding_garbage(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for raw in ("q=%ff%fe", "q=%", "q=%zz", "q=%00", "limit=%ff", "q=a&q=b", "q"):
            response = client.get(f"/xrpc/{NS}.searchDatasets?{raw}")
            assert response.status_code in (200, 400), (raw, response.text)
            assert response.json()
