"""Connections that answer to the network policy and to a deadline.

:mod:`atdata_core._netpolicy` judges a URL by its text; this module judges the
connections made for it. The core's HTTP sessions (:func:`guarded_session`)
open their connections through classes that, while a :class:`Guard` is active
in the calling thread (:func:`guarded`):

- check the address each connection actually reached against the guard's
  policy before a byte is sent, so a host name that resolves (or is
  re-pointed between two lookups) to a loopback, private or link-local
  address is refused, and so is every redirect hop, since each hop is a
  connection too;
- record the addresses reached (:attr:`Guard.peers`), so a caller can tell a
  redirect that leaves a public server for a private one;
- hand their sockets to the guard's :class:`Deadline`, which shuts them down
  when it passes: a server that drips one byte every two seconds, into the
  headers or the body, cannot keep a read alive past it.

With no guard active the sessions behave as plain ``requests`` sessions.
Connections through a proxy are the proxy's: their address is not judged.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from atdata_core._netpolicy import HTTP_SCHEMES, NetworkPolicy, address_problem
from atdata_core.errors import NetworkPolicyError, StorageError

__all__ = ["Deadline", "Guard", "GuardedAdapter", "guarded", "guarded_session", "send_checked"]

_active: ContextVar[Guard | None] = ContextVar("atdata_network_guard", default=None)


class Deadline:
    """A moment after which the sockets read under it are shut down.

    >>> deadline = Deadline(30.0)
    >>> deadline.expired, round(deadline.remaining)
    (False, 30)
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.at = clock() + seconds
        self._clock = clock
        self._sockets: list[weakref.ref[socket.socket]] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self.closed = False
        self.fired = False

    @property
    def remaining(self) -> float:
        return self.at - self._clock()

    @property
    def expired(self) -> bool:
        return self.fired or self.remaining <= 0

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once when it already has)."""
        if sock is None or self.closed:
            return
        with self._lock:
            self._sockets.append(weakref.ref(sock))
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            _watchdog.schedule(self)
        if self.expired:
            self._fire()

    def close(self) -> None:
        """The work is done: stop watching its sockets."""
        with self._lock:
            self.closed = True
            self._sockets.clear()

    def _fire(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.fired = True
            sockets = [ref() for ref in self._sockets]
        for sock in sockets:
            if sock is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                # socket.socket's own shutdown: it wakes a thread blocked in recv on the same socket,
                # and (unlike SSLSocket.shutdown) leaves the TLS object to that thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread firing deadlines in time order (per process: a forked worker starts its own)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def schedule(self, deadline: Deadline) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._cond:
            if len(self._heap) > 4096:  # finished transfers far from their deadline: forget them
                self._heap = [item for item in self._heap if not item[2].closed]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="atdata-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if not deadline.closed:
                deadline._fire()


_watchdog = _Watchdog()


class Guard:
    """What the connections made in a ``with guarded(guard)`` block answer to.

    ``policy``: each connection's address must pass it (None: addresses are
    only recorded). ``deadline``: each connection's socket is shut down when
    it passes. ``what`` names the request in errors.
    """

    def __init__(self, policy: NetworkPolicy | None, *, what: str, deadline: Deadline | None = None):
        self.policy = policy
        self.what = what
        self.deadline = deadline
        self.peers: list[str] = []

    def screen(self, conn: Any, sock: socket.socket) -> None:
        """Judge the address ``conn`` reached (its own, not a proxy's)."""
        if getattr(conn, "proxy", None) is not None or getattr(conn, "_tunnel_host", None):
            return
        try:
            address = str(sock.getpeername()[0]).split("%", 1)[0]
        except (OSError, IndexError, TypeError):
            return
        self.peers.append(address)
        if self.policy is not None:
            self.policy.check_address(address, host=str(conn.host), port=conn.port, what=self.what)

    @property
    def reached_public(self) -> bool | None:
        """Whether the last connection reached a public address (None: none was seen)."""
        return address_problem(self.peers[-1]) is None if self.peers else None


@contextlib.contextmanager
def guarded(guard: Guard) -> Iterator[Guard]:
    """Make ``guard`` the one the connections of this thread answer to, for the block."""
    token = _active.set(guard)
    try:
        yield guard
    finally:
        _active.reset(token)


def _screen(conn: Any, sock: socket.socket) -> None:
    guard = _active.get()
    if guard is not None:
        guard.screen(conn, sock)


def _watch(conn: Any) -> None:
    guard = _active.get()
    if guard is not None and guard.deadline is not None:
        guard.deadline.watch(conn.sock)


class _Screened:
    """The connection hooks: judge a new socket before it is used, and a pooled one before it is reused."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        try:
            _screen(self, sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # type: ignore[attr-defined]  # a kept-alive connection: judged again
            try:
                _screen(self, self.sock)  # type: ignore[attr-defined]
            except BaseException:
                self.close()  # type: ignore[attr-defined]
                raise
        super().request(*args, **kwargs)  # type: ignore[misc]
        _watch(self)


class _HTTPConnection(_Screened, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Screened, urllib3.connection.HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` adapter whose connections answer to the active :class:`Guard`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


def guarded_session(user_agent: str = "atdata-core") -> requests.Session:
    """A ``requests.Session`` whose connections answer to the active guard."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    session.mount("http://", GuardedAdapter())
    session.mount("https://", GuardedAdapter())
    return session


def send_checked(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    policy: NetworkPolicy | None,
    max_redirects: int,
    deadline: Deadline | None = None,
    public_policy: NetworkPolicy | None = None,
    rewind: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request, following redirects one hop at a time under the policy.

    ``policy`` (a URL some record named): every hop's URL must pass
    :meth:`~NetworkPolicy.check_url` and every connection its address check.
    ``public_policy`` (your own URL): a hop is held to it only when the hop
    before reached a public address, so a public server cannot redirect you
    into your own network. At most ``max_redirects`` hops are followed;
    ``rewind`` is called before a request body is sent again.
    """
    current = url
    hold_to: NetworkPolicy | None = policy
    hop = 0
    while True:
        if policy is not None:
            policy.check_url(current, what=what if hop == 0 else f"{what}, redirected")
        elif hold_to is not None:
            _check_redirect_target(hold_to, current, what)
        guard = Guard(hold_to, what=what if hop == 0 else f"{what}, redirected to {current}", deadline=deadline)
        with guarded(guard):
            response = session.request(method, current, allow_redirects=False, **kwargs)
        if not response.is_redirect:
            return response
        location = response.headers.get("Location", "")
        response.close()
        if hop >= max_redirects:
            raise StorageError(
                f"{what}: more than {max_redirects} redirects (the last to {location[:200]!r}); [http] max_redirects "
                "sets how many are followed"
            )
        target = urljoin(current, location.strip())
        if urlsplit(target).scheme.lower() not in HTTP_SCHEMES:
            raise NetworkPolicyError(f"{what}: refused a redirect from {current} to {target[:200]!r}: not an http(s) URL")
        if response.status_code == 303 and method != "HEAD":
            method = "GET"
            kwargs.pop("data", None)
        elif rewind is not None and kwargs.get("data") is not None:
            rewind()
        if policy is None and public_policy is not None:
            # Your own chain of hops: held to the policy from the moment it passes through a public server.
            hold_to = public_policy if guard.reached_public else None
        current = target
        hop += 1


def _check_redirect_target(policy: NetworkPolicy, url: str, what: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    policy.check_host(host, port, what=f"{what}, redirected from a public server", url=url)
