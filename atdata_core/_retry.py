"""One retry policy for every HTTP request the core makes: the ATProto client and HTTP storage.

The rules, with the ``[http]`` settings (:class:`~atdata_core.config.HttpSettings`)
that tune them:

- a dropped or refused connection, a timeout (``timeout`` seconds per request)
  and a server error (HTTP 5xx except 501, and 408) are tried again up to
  ``retries`` times after the first attempt, sleeping ``backoff * 2**n``
  seconds (at most 30) before retry ``n``;
- a host name that does not resolve (DNS) is final for the call: asking again
  a second later gets the same answer, so it is reported at once;
- HTTP 429 waits until the reset time the server gives (``RateLimit-Reset``,
  epoch seconds or seconds from now; ``Retry-After``, seconds or an HTTP
  date) when that is within ``max_rate_wait`` seconds, and then tries again.
  A longer wait, including absurd ones (``1e30``, ``inf``), is not waited:
  :class:`~atdata_core.errors.RateLimited` says when to come back. A 429
  without a reset time backs off like a failure;
- ``deadline``: no retry and no wait starts that would end more than
  ``deadline`` seconds after the first attempt (nor after the ``until`` a
  caller gives: HTTP storage passes the end of its ``shard_deadline``).

A caller runs its own loop and reports its own error (the ATProto client
raises :class:`~atdata_core.errors.ServiceUnavailable`, storage a
:class:`~atdata_core.errors.StorageError`); :class:`Attempts` keeps the count,
the sleeps and the story::

    attempts = policy.attempts(what="com.atproto.repo.getRecord", host="https://pds.example")
    while True:
        try:
            response = send()
        except ConnectionError as err:
            if is_name_resolution_failure(err):
                raise ...                                  # final
            reason = "connection refused"
        else:
            if response.status_code == 429:
                attempts.rate_limited(response.headers)    # sleeps, or raises RateLimited
                continue
            if response.status_code < 500:
                return response
            reason = f"HTTP {response.status_code}"
        if not attempts.failed(reason):                    # sleeps, or says no more
            raise ServiceUnavailable(f"... {reason}. {attempts.summary()}")
"""

from __future__ import annotations

import email.utils
import math
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from atdata_core.config import HttpSettings
from atdata_core.errors import RateLimited

__all__ = ["Attempts", "RetryPolicy", "is_name_resolution_failure", "retryable_status"]

#: One backoff sleep never exceeds this, however many retries are configured.
MAX_BACKOFF_SLEEP = 30.0
# A RateLimit-Reset below this is seconds from now rather than an epoch time (ten years of seconds).
_DELTA_SECONDS_BELOW = 10 * 365 * 24 * 3600


@attrs.frozen
class RetryPolicy(HttpSettings):
    """The ``[http]`` settings as the rules that apply them (see the module docstring).

    >>> policy = RetryPolicy(retries=3, backoff=0.5)
    >>> [policy.sleep_before(n) for n in range(3)]
    [0.5, 1.0, 2.0]

    :meth:`from_config` reads ``[http]`` (keyword arguments that are not None
    win); :meth:`of` turns an :class:`~atdata_core.config.HttpSettings` into a policy.
    """

    @classmethod
    def of(cls, settings: HttpSettings | None) -> RetryPolicy:
        """The policy for ``settings`` (the defaults when None)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls(**attrs.asdict(settings))

    def sleep_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return min(self.backoff * (2 ** min(retry, 64)), MAX_BACKOFF_SLEEP)

    def attempts(
        self,
        *,
        what: str = "the request",
        host: str = "",
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        until: float | None = None,
    ) -> Attempts:
        """The bookkeeping of one call's attempts under this policy (no wait past ``until``, a ``clock`` time)."""
        return Attempts(self, what=what, host=host, sleep=sleep, clock=clock, until=until)


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer with this status is a passing failure worth another attempt."""
    return status == 408 or (status >= 500 and status != 501)


class Attempts:
    """One call's attempts: how many failed, why, and whether another may start."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        what: str,
        host: str,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        until: float | None = None,
    ):
        self.policy = policy
        self.what = what
        self.host = host
        self.failures: list[str] = []
        self.rate_waits = 0
        self.out_of_time = False
        self._sleep = sleep
        self._clock = clock
        self._started = clock()
        self._until = until

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def failed(self, reason: str) -> bool:
        """Record a failed attempt; sleep the backoff and return True if another may start, else False."""
        self.failures.append(reason)
        retry = len(self.failures) - 1
        if retry >= self.policy.retries:
            return False
        pause = self.policy.sleep_before(retry)
        if self._too_late(pause):
            self.out_of_time = True
            return False
        self._sleep(pause)
        return True

    def rate_limited(self, headers: Mapping[str, str]) -> None:
        """An HTTP 429 with these headers: sleep until its reset time, or raise RateLimited."""
        wait, until = rate_limit_wait(headers)
        if wait is None:  # no reset time given: back off as after a failure
            wait = self.policy.sleep_before(self.rate_waits)
        policy = self.policy
        if wait > policy.max_rate_wait or self.rate_waits > policy.retries:
            raise RateLimited(self._rate_limited_message(wait, until))
        if self._too_late(wait):
            raise RateLimited(self._rate_limited_message(wait, until, deadline=True))
        self.rate_waits += 1
        self._sleep(wait)

    def _too_late(self, wait: float) -> bool:
        """Whether a wait of ``wait`` seconds would pass the deadline (or the caller's ``until``)."""
        if self.elapsed + wait > self.policy.deadline:
            return True
        return self._until is not None and self._clock() + wait > self._until

    def summary(self) -> str:
        """``Tried 3 times over 1.5 s (earlier: ...)``, and why it stopped when the deadline did it."""
        tried = len(self.failures)
        earlier = "; ".join(dict.fromkeys(self.failures[:-1])) or "none"
        text = f"Tried {tried} time{'s' if tried != 1 else ''} over {self.elapsed:.1f} s (earlier: {earlier})"
        if self.out_of_time:
            text += f"; the next retry would have passed the {self.policy.deadline:g} s deadline ([http] deadline)"
        return text

    def _rate_limited_message(self, wait: float, until: datetime | None, *, deadline: bool = False) -> str:
        policy = self.policy
        where = f"{self.host} " if self.host else ""
        when = until.strftime("%Y-%m-%d %H:%M:%S UTC") if until else None
        if wait > policy.max_rate_wait:
            how_long = f"{wait:.0f} s from now" if math.isfinite(wait) and wait < 1e12 else "an unreasonable time from now"
            after = f"Try again after {when}" if when else "Try again later"
            return (
                f"{where}rate-limited {self.what} (HTTP 429) until {when or 'a time it did not say'}, {how_long}, "
                f"longer than the {policy.max_rate_wait:g} s this client waits ([http] max_rate_wait). {after}"
            )
        after = f"try again after {when}" if when else f"try again in {wait:.0f} s"
        if deadline:
            return (
                f"{where}rate-limited {self.what} (HTTP 429); waiting {wait:.0f} s would pass the "
                f"{policy.deadline:g} s deadline of this call ([http] deadline); {after}"
            )
        return f"{where}kept rate-limiting {self.what} (HTTP 429) after {self.rate_waits} waits; {after}"


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> tuple[float | None, datetime | None]:
    """Seconds until a 429's rate limit resets, and the reset time when it is a real date.

    ``(None, None)`` when the headers give no usable reset time. A reset too
    far away to be a date (``1e30``, ``inf``) is ``(inf, None)``: longer than
    any wait, without an overflow.
    """
    now = time.time() if now is None else now
    lowered = {key.lower(): value for key, value in headers.items()}
    reset = _number(lowered.get("ratelimit-reset"))
    if reset is not None:
        at = now + reset if 0 <= reset < _DELTA_SECONDS_BELOW else reset
        return _until(at, now)
    retry_after = lowered.get("retry-after")
    if retry_after is None:
        return None, None
    seconds = _number(retry_after)
    if seconds is not None:
        return _until(now + max(seconds, 0.0), now)
    try:
        when = email.utils.parsedate_to_datetime(retry_after.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(when.timestamp() - now, 0.0), when


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _until(at: float, now: float) -> tuple[float, datetime | None]:
    try:
        return max(at - now, 0.0), datetime.fromtimestamp(at, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return math.inf, None


def is_name_resolution_failure(err: BaseException) -> bool:
    """Whether a connection error (``requests``, ``urllib3``, ``socket``) is a host name that does not resolve."""
    seen: set[int] = set()
    stack: list[Any] = [err]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError":
            return True
        stack.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return False
