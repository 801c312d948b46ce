"""Frames checked in a process of their own (``_checking``): results in order, nothing lost or
doubled when the process dies, and the same events as the reader's own decoding."""

from __future__ import annotations

import threading

import attrs

from atdata_index_appview.ingest._checking import FrameChecker
from atdata_index_appview.ingest._crafting import CraftedRepo, frame
from atdata_index_appview.ingest._frames import CommitEvent, IdentityEvent, decode_frame

LABEL = "science.alt.dataset.label"


def frames(n: int) -> list[bytes]:
    repo = CraftedRepo(did="did:plc:checkingtests00000000000")
    out = []
    for seq in range(1, n + 1):
        if seq % 5 == 0:
            out.append(b"\x00 not a frame")
        elif seq % 7 == 0:
            out.append(frame("#identity", {"seq": seq, "did": repo.did, "time": "2024-01-01T00:00:00.000Z"}))
        else:
            commit = repo.commit([("create", f"{LABEL}/3k{seq:011d}", {
                "$type": LABEL, "name": f"v{seq}", "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
                "createdAt": "2024-01-01T00:00:00.000Z"})])
            out.append(repo.commit_frame(commit, seq))
    return out


class Collected:
    def __init__(self):
        self.items: list[tuple[bytes, str, object]] = []
        self.lock = threading.Lock()

    def deliver(self, data, kind, payload):
        with self.lock:
            self.items.append((data, kind, payload))

    def here(self, data):
        try:
            payload = decode_frame(data)
        except ValueError as err:
            self.deliver(data, "undecodable", str(err))
        else:
            self.deliver(data, "here", payload)


def test_frames_come_back_checked_in_order():
    sent = frames(60)
    got = Collected()
    checker = FrameChecker("test", got.deliver, got.here, limit=8)
    try:
        for data in sent:
            assert checker.submit(data)
        assert checker.wait_idle(60)
    finally:
        checker.close()
    assert [data for data, _, _ in got.items] == sent
    for data, kind, payload in got.items:
        if data.startswith(b"\x00"):
            assert kind == "undecodable"
        elif isinstance(payload, CommitEvent):
            assert kind == "event" and payload.checked is not None and payload.checked.proven_ops is not None
            # The same event, its checks aside, without the blocks (every check that reads them is made).
            assert payload == attrs.evolve(decode_frame(data), blocks=b"")
        else:
            assert kind == "event" and isinstance(payload, IdentityEvent)


def test_the_frames_of_a_process_that_dies_are_handled_here_once_and_in_order():
    sent = frames(80)
    got = Collected()
    checker = FrameChecker("test", got.deliver, got.here, limit=16)
    try:
        for n, data in enumerate(sent):
            if n == 30:
                checker._process.kill()  # the checking process dies with frames in it
            if not checker.submit(data):
                checker.wait_idle()
                got.here(data)
        assert checker.wait_idle(60)
        assert checker.failed
    finally:
        checker.close()
    assert [data for data, _, _ in got.items] == sent
    assert any(kind == "here" for _, kind, _ in got.items)
