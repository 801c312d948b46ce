"""subscribeChanges: what the index changes, streamed in order from a cursor, over each store."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from atdata_core.plugins import ENTRY_NSID, LABEL_NSID

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.store._model import record_json

REPO = "did:plc:appviewtests0000000000000"
OTHER = "did:plc:someoneelse00000000000000"
NSID = "science.alt.dataset.subscribeChanges"


def _entry(name):
    return {"$type": ENTRY_NSID, "name": name, "createdAt": "2025-01-01T00:00:00Z", "storage": {}, "schemaRef": "at://x/y/z"}


@pytest.fixture
def ws_url(store):
    with serve_in_thread(create_app(store, poll=0.02, keepalive=0.3)) as server:
        yield server.url.replace("http://", "ws://") + f"/xrpc/{NSID}"


def receive(socket, count):
    messages = []
    while len(messages) < count:
        message = json.loads(socket.recv(timeout=20))
        if message.get("type") != "keepalive":
            messages.append(message)
    return messages


def test_changes_stream_in_order_and_resume_from_a_cursor(store, make_op, commit, ws_url):
    first = make_op(ENTRY_NSID, "3kaaaaaaaaa2a", _entry("first"))
    commit(store, [first])
    with connect(f"{ws_url}?cursor=0") as socket:
        [created] = receive(socket, 1)
        assert created["type"] == "create" and created["uri"] == first.uri and created["cid"] == first.cid
        assert created["collection"] == ENTRY_NSID and created["did"] == REPO and created["rkey"] == "3kaaaaaaaaa2a"
        assert created["record"] == first.record
        commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", _entry("renamed"), action="update"),
                       make_op(ENTRY_NSID, "3kbbbbbbbbb2a", _entry("second"))])
        commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", None)])
        updated, second, deleted = receive(socket, 3)
    assert [m["type"] for m in (updated, second, deleted)] == ["update", "create", "delete"]
    assert updated["record"]["name"] == "renamed" and "record" not in deleted and "cid" not in deleted
    assert created["seq"] < updated["seq"] < second["seq"] < deleted["seq"]
    with connect(f"{ws_url}?cursor={second['seq']}") as socket:
        [again] = receive(socket, 1)
    assert again == deleted


def test_the_record_is_streamed_as_stored(store, make_op, commit, ws_url):
    record = dict(_entry("bytes"), metadata={"$bytes": "gaFhAQ"}, note="ünïcode \u0000")
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", record)])
    with connect(f"{ws_url}?cursor=0") as socket:
        text = socket.recv(timeout=20)
    assert f'"record":{record_json(record)}' in text


def test_without_a_cursor_the_stream_starts_now(store, make_op, commit, ws_url):
    commit(store, [make_op(ENTRY_NSID, "3kaaaaaaaaa2a", _entry("before"))])
    with connect(ws_url) as socket:
        assert json.loads(socket.recv(timeout=20)) == {"type": "keepalive"}  # nothing old is replayed
        commit(store, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", _entry("after"))])
        [message] = receive(socket, 1)
    assert message["record"]["name"] == "after"


def test_a_collection_filter_and_hidden_accounts(store, make_op, commit, ws_url):
    with connect(f"{ws_url}?cursor=0&collection={ENTRY_NSID}") as socket:
        commit(store, [make_op(LABEL_NSID, "3kaaaaaaaaa2a", {"$type": LABEL_NSID, "name": "x", "datasetUri": "at://a/b/c",
                                                             "createdAt": "2025-01-01T00:00:00Z"})])
        commit(store, [make_op(ENTRY_NSID, "3kbbbbbbbbb2a", _entry("kept"))])
        store.set_account_active(REPO, False)
        commit(store, [make_op(ENTRY_NSID, "3kccccccccc2a", _entry("while hidden"))])
        store.set_account_active(REPO, True)
        messages = receive(socket, 4)
    assert [(m["type"], m["rkey"]) for m in messages] == [
        ("create", "3kbbbbbbbbb2a"),   # the label was filtered out
        ("delete", "3kbbbbbbbbb2a"),   # the account was hidden
        ("create", "3kbbbbbbbbb2a"),   # and shown again, with what it wrote meanwhile
        ("create", "3kccccccccc2a"),
    ]


@pytest.mark.parametrize("query, error", [
    ("cursor=abc", "InvalidRequest"), ("cursor=-1", "InvalidRequest"), ("cursor=1&cursor=2", "InvalidRequest"),
    ("collection=not%20an%20nsid", "InvalidRequest"), ("cursor=999999", "FutureCursor"),
])
def test_bad_subscriptions_are_refused_with_a_reason(ws_url, query, error):
    with connect(f"{ws_url}?{query}") as socket:
        message = json.loads(socket.recv(timeout=20))
        assert message["type"] == "error" and message["error"] == error and message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=20)
    assert closed.value.rcvd.code == 1008


def test_a_pruned_cursor_says_so_and_resumes_at_the_oldest(store, make_op, commit, ws_url, monkeypatch):
    monkeypatch.setattr(type(store), "changes_kept", 3)
    monkeypatch.setattr(store, "_emitted", 1018)  # the log is pruned as the sixth change is written
    commit(store, [make_op(ENTRY_NSID, f"3k{i:011d}", _entry(f"d{i}")) for i in range(6)])
    oldest, newest = store.change_bounds()
    assert newest - oldest == 2
    with connect(f"{ws_url}?cursor=0") as socket:
        info = json.loads(socket.recv(timeout=20))
        changes = receive(socket, 3)
    assert info["type"] == "info" and info["name"] == "OutdatedCursor"
    assert [m["seq"] for m in changes] == [oldest, oldest + 1, newest]
