"""The websocket path: run_ingest subscribed to a firehose on loopback that plays crafted frames.

Undecodable frames, a frame over the size limit and a cursor the host does
not know yet all pass without stopping the subscription; a second run resumes
from the cursor the store saved.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter

import pytest

from atdata_core.plugins import Client, reset_plugins

from atdata_index_appview.ingest import IngestSettings, IngestStatus, MemoryIngestStore, run_ingest
from atdata_index_appview.ingest._crafting import CraftedRepo, serve_frames, serve_repo

LABEL = "science.alt.dataset.label"


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_NETWORK_ALLOW_PRIVATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", "localhost")
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    reset_plugins()
    yield
    reset_plugins()


def label(name: str = "v1", **extra) -> dict:
    return {"$type": LABEL, "name": name, "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
            "createdAt": "2024-01-01T00:00:00.000Z", **extra}


def wait_for(predicate, *, timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


@contextlib.contextmanager
def ingesting(store, settings, status=None):
    """run_ingest in a thread for the block; its result (counts, or the error) in the yielded dict."""
    stop = threading.Event()
    outcome: dict = {}

    def run():
        try:
            outcome["counts"] = run_ingest(settings, store, stop_event=stop, client=Client.anonymous(), status=status)
        except BaseException as err:  # reported by the test, not lost in the thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="ingest under test")
    thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "run_ingest did not stop within 30 s of stop_event"
    assert "error" not in outcome, outcome.get("error")


@pytest.mark.parametrize("apart", [False, True], ids=["checked here", "checked apart"])
def test_frames_that_do_not_decode_or_are_too_big_pass_and_the_stream_goes_on(apart):
    alice = CraftedRepo()
    with serve_repo(alice), contextlib.ExitStack() as stack:
        frames: list = []
        frames.append((1, alice.commit_frame(alice.commit([("create", f"{LABEL}/3kaaa", label())]), 1)))
        frames.append((None, b"\xff\x00 not a frame"))
        frames.append((None, "a text message"))
        frames.append((2, alice.commit_frame(alice.commit([("create", f"{LABEL}/3kbbb", label())]), 2)))
        big = alice.commit([("create", f"{LABEL}/3kbig", label(description="x" * 200_000))])
        frames.append((3, alice.commit_frame(big, 3)))  # over the limit below: skipped by the reader
        frames.append((4, alice.commit_frame(alice.commit([("create", f"{LABEL}/3kccc", label())]), 4)))
        url = stack.enter_context(serve_frames(frames))
        store = MemoryIngestStore()
        settings = IngestSettings(subscribe=[url], max_frame_bytes=64 * 1024, resync_interval=0, check_frames_apart=apart)
        with ingesting(store, settings):
            wait_for(lambda: store.cursor(settings.subscribe[0]) == 4 and store.stats["oversized"] == 1,
                     what="ingesting the four commits")
    # The big record arrives anyway: the commit after it does not follow on, so the repository is resynced.
    assert set(store.records) == {f"at://{alice.did}/{LABEL}/{key}" for key in ("3kaaa", "3kbbb", "3kbig", "3kccc")}
    assert store.stats["undecodable"] == 2 and store.stats["resyncs"] == 1


@pytest.mark.parametrize("apart", [False, True], ids=["checked here", "checked apart"])
def test_a_second_run_resumes_from_the_saved_cursor_and_applies_nothing_twice(apart):
    alice = CraftedRepo()
    with serve_repo(alice), contextlib.ExitStack() as stack:
        frames = [(seq, alice.commit_frame(alice.commit([("create", f"{LABEL}/3k{seq}", label())]), seq))
                  for seq in (1, 2)]
        url = stack.enter_context(serve_frames(frames))
        store = MemoryIngestStore()
        settings = IngestSettings(subscribe=[url], replay=True, check_frames_apart=apart)
        with ingesting(store, settings):
            wait_for(lambda: store.cursor(settings.subscribe[0]) == 2)
        frames += [(seq, alice.commit_frame(alice.commit([("create", f"{LABEL}/3k{seq}", label())]), seq))
                   for seq in (3, 4)]
        with ingesting(store, settings):
            wait_for(lambda: store.cursor(settings.subscribe[0]) == 4)
    assert [uri.rsplit("/", 1)[1] for _, uri, _ in store.applied] == ["3k1", "3k2", "3k3", "3k4"]


def test_a_cursor_the_host_does_not_have_yet_reads_the_host_from_its_start():
    alice = CraftedRepo()
    with serve_repo(alice), contextlib.ExitStack() as stack:
        frames = [(seq, alice.commit_frame(alice.commit([("create", f"{LABEL}/3k{seq}", label())]), seq))
                  for seq in (1, 2)]
        url = stack.enter_context(serve_frames(frames))
        store = MemoryIngestStore()
        settings = IngestSettings(subscribe=[url])
        store.advance(settings.subscribe[0], 1000)  # from an earlier life of the host
        with ingesting(store, settings):
            wait_for(lambda: store.cursor(settings.subscribe[0]) == 2)
    assert len(store.records) == 2 and store.stats["error_frames"] == 1


def test_the_status_reports_hosts_cursors_lag_and_counts():
    alice = CraftedRepo()
    with serve_repo(alice), contextlib.ExitStack() as stack:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5))
        frames = [(seq, alice.commit_frame(alice.commit([("create", f"{LABEL}/3k{seq}", label())]), seq, time=stamp))
                  for seq in (1, 2, 3)]
        frames.append((None, b"\xff"))
        url = stack.enter_context(serve_frames(frames))
        store, status = MemoryIngestStore(), IngestStatus()
        settings = IngestSettings(subscribe=[url], replay=True)
        with ingesting(store, settings, status):
            wait_for(lambda: store.cursor(settings.subscribe[0]) == 3 and status.totals().get("undecodable"))
            live = status.snapshot()
        assert not status.snapshot()["running"] and status.snapshot()["error"] is None
    assert live["running"] and live["eventsPerSecond"] > 0
    (source,) = live["sources"]
    assert source["url"] == settings.subscribe[0] and source["connected"] and source["cursor"] == 3
    assert 4 <= source["lagSeconds"] < 120  # stamped 5 s before it was sent
    assert live["counts"]["records_indexed"] == 3 and live["counts"]["undecodable"] == 1


def test_without_a_host_to_follow_run_ingest_says_what_to_set():
    with pytest.raises(ValueError, match="subscribe"):
        run_ingest(IngestSettings(), MemoryIngestStore(), stop_event=threading.Event())


def test_an_unreachable_host_is_retried_until_stopped():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = MemoryIngestStore()
    readers = []
    settings = IngestSettings(subscribe=[f"http://127.0.0.1:{port}"])
    stop = threading.Event()
    thread = threading.Thread(target=run_ingest, args=(settings, store),
                              kwargs={"stop_event": stop, "client": Client.anonymous(), "on_ready": readers.extend})
    thread.start()
    try:
        wait_for(lambda: readers, what="the reader to start")
        time.sleep(0.5)
        assert thread.is_alive() and readers[0].is_alive() and readers[0].connections == 0
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_run_of_events_from_two_hosts_moves_each_hosts_cursor_count_and_lag():
    from types import SimpleNamespace as Event

    now = time.time()
    status = IngestStatus(clock=lambda: now)
    status.begin(["a", "b"], [], Counter())
    stamp_a = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
    stamp_b = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 8))
    status.handled_run([
        ("a", Event(seq=1, time=stamp_a)), ("b", Event(seq=7, time=stamp_b)),
        ("a", Event(seq=2, time=None)), ("a", Event(seq=None, time=None)),  # an error frame: no cursor
    ])
    sources = {source["url"]: source for source in status.snapshot()["sources"]}
    assert sources["a"]["cursor"] == 2 and sources["b"]["cursor"] == 7
    assert sources["a"]["events"] == 3 and sources["b"]["events"] == 1
    assert 29 <= sources["a"]["lagSeconds"] <= 31 and 7 <= sources["b"]["lagSeconds"] <= 9
    assert status.events_per_second() > 0
