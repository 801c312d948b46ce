"""A process that checks firehose frames beside the one that writes them.

Ingestion is bound to one core by the GIL: decoding a frame, hashing its
blocks, proving its operations against the signed tree and validating its
records take about as long as writing them. A :class:`FrameChecker` sends the
frames of one firehose reader to a process of its own, which decodes each one
and does those checks (:func:`check_frame`), and hands the results back in the
order the frames came. What depends on more than the frame (the repository's
revision in the index, the account's signing key, the signature itself) stays
with the ingestor, which takes each result where it would have computed it
(:class:`~atdata_index_appview.ingest._checked.Checked`): an event is indexed,
refused or counted exactly as without the process.

Nothing a frame does to the checking process can stop ingestion: a check that
fails unexpectedly sends the frame back to be handled in the ingestor's process,
and when the process dies (or cannot start), the frames it held are decoded in
the reader's process, in order, and so is every frame after.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from atdata_index_appview.ingest._checked import Checked, Rejected
from atdata_index_appview.ingest._frames import CommitEvent, FrameError, decode_frame

__all__ = ["FrameChecker", "check_frame"]

logger = logging.getLogger("atdata_index_appview.ingest")

# What comes back for a frame: ("event", event), ("commit", the fields of a checked commit: see
# _commit_fields), ("undecodable", reason), or ("raw", None): check it here.
_EVENT, _COMMIT, _UNDECODABLE, _RAW = "event", "commit", "undecodable", "raw"


def check_frame(data: bytes) -> tuple[str, Any]:
    """What one frame holds: its event, a ``#commit`` as the fields of the event carrying its
    :class:`Checked` checks (:func:`commit_event` makes it)."""
    try:
        event = decode_frame(data)
    except FrameError as err:
        return _UNDECODABLE, str(err)
    if isinstance(event, CommitEvent) and not event.too_big:
        return _COMMIT, _commit_fields(event, _check_commit(event))
    return _EVENT, event


def _refusal(err: Rejected | None) -> tuple[str, str] | None:
    return None if err is None else (err.metric, err.reason)


def _refused(pair: tuple[str, str] | None) -> Rejected | None:
    return None if pair is None else Rejected(*pair)


def _commit_fields(event: CommitEvent, checked: Checked) -> tuple:
    """A checked commit as plain values (tuples, bytes, str, the records' JSON form), which are
    read back several times faster than the classes they make."""
    complete = checked.proven_ops is not None or checked.ops_refused is not None
    ops = None
    if checked.proven_ops is not None:
        proven, quarantined = checked.proven_ops
        ops = ([(op.action, op.uri, op.cid, op.record, op.raw, op.warnings) for op in proven], quarantined)
    car = checked.car_read
    return (
        event.seq, event.repo, event.rev, event.since, event.commit,
        # The blocks are needed no more once every check is made.
        b"" if complete else event.blocks,
        tuple((op.action, op.path, op.cid) for op in event.ops), event.time, event.prev_data,
        None if car is None else (car.roots, {} if complete else car.blocks), _refusal(checked.car_refused),
        checked.commit_decoded, _refusal(checked.commit_refused), ops, _refusal(checked.ops_refused),
    )


def commit_event(fields: tuple) -> CommitEvent:
    """The :class:`CommitEvent` of :func:`_commit_fields`, carrying its checks."""
    from atdata_index_appview.ingest._car import Car
    from atdata_index_appview.ingest._frames import OpRef
    from atdata_index_appview.ingest._interface import RecordOp

    (seq, repo, rev, since, commit, blocks, op_refs, time, prev_data,
     car, car_refused, decoded, commit_refused, ops, ops_refused) = fields
    proven = None
    if ops is not None:
        records, quarantined = ops
        proven = ([RecordOp(action=action, uri=uri, cid=cid, record=record, raw=raw, warnings=warnings)
                   for action, uri, cid, record, raw, warnings in records], quarantined)
    checked = Checked(
        car_read=None if car is None else Car(roots=car[0], blocks=car[1]), car_refused=_refused(car_refused),
        commit_decoded=decoded, commit_refused=_refused(commit_refused),
        proven_ops=proven, ops_refused=_refused(ops_refused),
    )
    return CommitEvent(seq=seq, repo=repo, rev=rev, since=since, commit=commit, blocks=blocks,
                       ops=tuple(OpRef(action=a, path=p, cid=c) for a, p, c in op_refs), time=time,
                       prev_data=prev_data, checked=checked)


def _check_commit(event: CommitEvent) -> Checked:
    from atdata_index_appview.ingest._ingestor import _commit_ops, _read_car, decode_commit, indexed

    try:
        car = _read_car(event.blocks)
    except Rejected as err:
        return Checked(car_refused=err)
    if not car.roots or car.roots[0] != event.commit:
        return Checked(car_read=car)
    try:
        decoded = decode_commit(car, event.commit)
    except Rejected as err:
        return Checked(car_read=car, commit_refused=err)
    commit = decoded[0]
    if not isinstance(commit, dict) or not isinstance(commit.get("data"), bytes):
        return Checked(car_read=car, commit_decoded=decoded)  # refused by the ingestor, which says why
    ours = [op for op in event.ops if indexed(op.path)]
    try:
        ops = _commit_ops(event.repo, car, commit["data"], ours)
    except Rejected as err:
        return Checked(car_read=car, commit_decoded=decoded, ops_refused=err)
    return Checked(car_read=car, commit_decoded=decoded, proven_ops=ops)


_LENGTH = struct.Struct(">I")


def _read_exactly(stream: Any, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the stream ended")
    return data


def _serve(frames: int, results: Any) -> None:
    """The checking process: frames (length-prefixed bytes) read from the descriptor ``frames`` as
    they come, and for all those that came together one answer (length-prefixed, pickled): the
    list of their results, in order. Ends when the frames end."""
    buffer = bytearray()
    while True:
        try:
            chunk = os.read(frames, 1 << 20)
        except OSError:
            return
        if not chunk:
            return
        buffer += chunk
        answers, at = [], 0
        while len(buffer) - at >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, at)
            if len(buffer) - at - _LENGTH.size < size:
                break
            data = bytes(buffer[at + _LENGTH.size:at + _LENGTH.size + size])
            at += _LENGTH.size + size
            try:
                result = check_frame(data)
            except BaseException:  # noqa: BLE001 - whatever a frame provokes, its reader handles it itself
                result = (_RAW, None)
            answers.append(result)
        del buffer[:at]
        if answers:
            answer = _pickled(answers)
            results.write(_LENGTH.pack(len(answer)))
            results.write(answer)
            results.flush()


def _pickled(answers: list) -> bytes:
    try:
        return pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a result that does not pickle is checked by the reader instead
        kept = []
        for answer in answers:
            try:
                pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001
                answer = (_RAW, None)
            kept.append(answer)
        return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)


class FrameChecker:
    """Frames of one reader checked in a process of its own, their results given to ``deliver``
    (``deliver(data, kind, payload)``: ``"event"`` and an event, or ``"undecodable"`` and the reason) in order, on a
    thread of the checker's. ``handle_here(data)`` handles a frame in this process instead
    (when the process failed). At most ``limit`` frames are in the process at once."""

    def __init__(self, name: str, deliver: Callable[[bytes, str, Any], None],
                 handle_here: Callable[[bytes], None], *, limit: int = 512):
        self.name = name
        self._deliver = deliver
        self._handle_here = handle_here
        self._room = threading.Semaphore(limit)
        self._sent: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._failed = False
        # A program of its own (not multiprocessing, which would run the parent's main script again
        # in the child when that script has no __main__ guard).
        # It imports what this process imports (the same search path).
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "atdata_index_appview.ingest._checking"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1 << 20, env=environment,
        )
        self._frames = self._process.stdin  # written by the reader's thread only
        self._results = self._process.stdout
        self._receiver = threading.Thread(target=self._receive, name=f"checked frames of {name}", daemon=True)
        self._receiver.start()

    @property
    def failed(self) -> bool:
        return self._failed

    def submit(self, data: bytes) -> bool:
        """Send a frame to be checked; False when the process cannot take it (it failed): the
        caller handles the frame itself, after :meth:`wait_idle`."""
        if self._failed:
            return False
        self._room.acquire()
        with self._lock:
            if self._failed:
                self._room.release()
                return False
            self._sent.append(data)
        try:
            self._frames.write(_LENGTH.pack(len(data)))
            self._frames.write(data)
            self._frames.flush()
        except (OSError, ValueError):
            # The receiving thread hands this frame, and those before it, to handle_here once
            # the process is gone (its results' pipe then ends).
            self._process.kill()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every frame sent was delivered."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._sent, timeout)

    def _receive(self) -> None:
        while True:
            try:
                (size,) = _LENGTH.unpack(_read_exactly(self._results, _LENGTH.size))
                answer = _read_exactly(self._results, size)
            except (EOFError, OSError, ValueError):
                self._fail("it stopped")
                return
            try:
                results = pickle.loads(answer)
            except Exception as err:  # noqa: BLE001 - an answer that does not unpickle: the process is not ours to trust
                logger.warning("%s: checked frames could not be read back (%s)", self.name, err)
                self._process.kill()
                continue
            with self._lock:
                sent = [self._sent[i] for i in range(min(len(results), len(self._sent)))]
            done = 0
            try:
                for data, (kind, payload) in zip(sent, results):
                    try:
                        if kind == _COMMIT:
                            kind, payload = _EVENT, commit_event(payload)
                    except Exception as err:  # noqa: BLE001 - checked here instead
                        logger.warning("%s: a checked frame could not be read back (%s); checking it here", self.name, err)
                        kind = _RAW
                    if kind == _RAW:
                        self._handle_here(data)
                    else:
                        self._deliver(data, kind, payload)
                    done += 1
            finally:
                with self._idle:
                    for _ in range(done):
                        self._sent.popleft()
                        self._room.release()
                    self._idle.notify_all()

    def _fail(self, why: str) -> None:
        """The process is gone: the frames it held are handled here, in order, and every frame after."""
        with self._lock:
            if self._failed:
                return
            self._failed = True
        if not self.closing:
            logger.warning("%s: the frame-checking process failed (%s); frames are checked in the reader's process",
                           self.name, why)
        while True:
            with self._lock:
                if not self._sent:
                    break
                data = self._sent[0]
            try:
                if not self.closing:
                    self._handle_here(data)
            finally:
                with self._idle:
                    if self._sent and self._sent[0] is data:
                        self._sent.popleft()
                        self._room.release()
                    self._idle.notify_all()

    closing = False

    def close(self) -> None:
        """Stop the process (by its own handle) and the thread."""
        self.closing = True
        try:
            self._frames.close()
        except OSError:
            pass
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._receiver.join(timeout=2)
        try:
            self._results.close()
        except OSError:
            pass


if __name__ == "__main__":
    _serve(sys.stdin.fileno(), sys.stdout.buffer)
