"""HTTP and XRPC transport: one pooled connection per host, retries, rate limits.

Every request the ATProto client makes goes through :class:`Transport`, so
every request is retried the same way:

- connection refused, connection reset, timeouts and HTTP 5xx (except 501)
  are retried with exponential backoff (``backoff * 2**n`` seconds, capped),
  ``retries`` times, and then reported as
  :class:`~atdata_core.errors.ServiceUnavailable` naming the host, the call
  and what was tried;
- HTTP 429 waits until the reset time the server gives (the ``RateLimit-Reset``
  header, epoch seconds, or ``Retry-After``, seconds or an HTTP date) when that
  is within ``max_rate_wait`` seconds, then retries; a longer wait raises
  :class:`~atdata_core.errors.RateLimited` saying when to try again;
- an XRPC error envelope (``{"error": Name, "message": text}``) becomes
  :class:`~atdata_core.errors.XrpcError`.

A write whose answer was lost (a timeout after the PDS committed it) is sent
again: ``putRecord`` and ``applyWrites`` updates with a record key are
idempotent, a ``createRecord`` without one may then land twice.

Settings come from the ``[http]`` configuration section (``retries``,
``backoff``, ``timeout``, ``max_rate_wait``) unless given as arguments.

``requests`` is imported when the first request is made, not at import.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from atdata_core.errors import NetworkError, RateLimited, ServiceUnavailable, XrpcError

__all__ = ["RetryPolicy", "Transport", "host_of"]

DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RATE_WAIT = 60.0
# One backoff sleep never exceeds this, however many retries are configured.
MAX_BACKOFF_SLEEP = 30.0
_USER_AGENT = "atdata-core"


class RetryPolicy:
    """How hard to try: ``retries`` after the first attempt, ``backoff`` seconds doubling,
    ``timeout`` seconds per request, and at most ``max_rate_wait`` seconds of waiting
    for a rate limit to reset."""

    __slots__ = ("retries", "backoff", "timeout", "max_rate_wait")

    def __init__(
        self,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        max_rate_wait: float = DEFAULT_MAX_RATE_WAIT,
    ):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.max_rate_wait = float(max_rate_wait)

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> RetryPolicy:
        """Read ``[http]`` from ``config`` (default: :func:`~atdata_core.config.load_config`);
        keyword arguments that are not None win."""
        if config is None:
            from atdata_core.config import load_config

            config = load_config()
        values = {
            "retries": config.get_int("http.retries", DEFAULT_RETRIES),
            "backoff": config.get_float("http.backoff", DEFAULT_BACKOFF),
            "timeout": config.get_float("http.timeout", DEFAULT_TIMEOUT),
            "max_rate_wait": config.get_float("http.max_rate_wait", DEFAULT_MAX_RATE_WAIT),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def sleep_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return min(self.backoff * (2**retry), MAX_BACKOFF_SLEEP)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(retries={self.retries}, backoff={self.backoff}, timeout={self.timeout}, "
            f"max_rate_wait={self.max_rate_wait})"
        )


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


class Transport:
    """Sends HTTP requests with the retry rules above, over one pooled ``requests.Session``."""

    def __init__(self, policy: RetryPolicy | None = None):
        self.policy = policy or RetryPolicy()
        self._http = None

    @property
    def http(self):
        """The underlying ``requests.Session`` (created on first use)."""
        if self._http is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = _USER_AGENT
            self._http = session
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ------------------------------------------------------------------ plain HTTP

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ):
        """Send one request, retrying as the module docstring says; return the response.

        Answers below 500 other than 429 are returned as they are (the caller reads
        the status). ``what`` names the call in error messages
        (``"com.atproto.repo.createRecord"``, ``"the DID document of did:web:..."``).
        A ``data`` that is a file object is rewound before each retry.
        """
        import requests

        policy = self.policy
        host = host_of(url)
        failures: list[str] = []
        started = time.monotonic()
        retry = 0
        rate_waits = 0
        rewind = data.tell() if hasattr(data, "seek") and hasattr(data, "tell") else None
        while True:
            if rewind is not None:
                data.seek(rewind)
            try:
                response = self.http.request(
                    method, url, params=params, data=data, headers=dict(headers or {}),
                    timeout=policy.timeout, stream=stream,
                )
            except requests.exceptions.Timeout:
                failures.append(f"no answer within {policy.timeout:g} s")
            except requests.exceptions.ConnectionError as err:
                failures.append(_describe_connection_error(err))
            except requests.exceptions.RequestException as err:
                raise NetworkError(f"{what}: request to {host} failed: {err}") from err
            else:
                status = response.status_code
                if status == 429:
                    wait, until = _rate_limit_wait(response.headers)
                    response.close()
                    if wait is None:
                        wait = policy.sleep_before(rate_waits)
                    if wait > policy.max_rate_wait or rate_waits > policy.retries:
                        raise RateLimited(_rate_limited_message(what, host, wait, until, policy, rate_waits))
                    rate_waits += 1
                    time.sleep(max(wait, 0.0))
                    continue
                if status >= 500 and status != 501:
                    failures.append(f"HTTP {status}{_error_suffix(response)}")
                    response.close()
                else:
                    return response
            if retry >= policy.retries:
                elapsed = time.monotonic() - started
                tried = len(failures)
                raise ServiceUnavailable(
                    f"{host} did not answer {what}: {failures[-1]}. Tried {tried} time{'s' if tried != 1 else ''} "
                    f"over {elapsed:.1f} s (earlier: {'; '.join(dict.fromkeys(failures[:-1])) or 'none'}). "
                    f"Check that the server is up and reachable; [http] retries and backoff set how hard to try"
                )
            time.sleep(policy.sleep_before(retry))
            retry += 1

    def get_json(self, url: str, *, what: str, params: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """GET a JSON document; ``(status, parsed body or None)``."""
        response = self.request("GET", url, what=what, params=params, headers={"Accept": "application/json"})
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    # ------------------------------------------------------------------ XRPC

    def xrpc(
        self,
        base_url: str,
        nsid: str,
        *,
        procedure: bool = False,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        content_type: str | None = None,
        token: str | None = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ):
        """Call XRPC method ``nsid`` on the server at ``base_url``; the response on success.

        A query is a GET, a procedure a POST. ``json_body`` is JSON-encoded here;
        ``data`` (bytes or a file object) is sent as it is, with ``content_type``.
        Raises :class:`XrpcError` for an error answer.
        """
        send_headers = dict(headers or {})
        if token:
            send_headers["Authorization"] = f"Bearer {token}"
        body = data
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            content_type = content_type or "application/json"
        if content_type:
            send_headers["Content-Type"] = content_type
        if params:
            params = {key: _param(value) for key, value in params.items() if value is not None}
        url = f"{base_url.rstrip('/')}/xrpc/{nsid}"
        response = self.request(
            "POST" if procedure else "GET", url, what=nsid, params=params, data=body,
            headers=send_headers, stream=stream,
        )
        if response.status_code >= 400:
            raise xrpc_error(nsid, response)
        return response


def xrpc_error(nsid: str, response) -> XrpcError:
    """The :class:`XrpcError` for an error answer (envelope or not)."""
    error, message = "", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"]
        message = body.get("message") if isinstance(body.get("message"), str) else ""
    else:
        error = response.reason or f"HTTP{response.status_code}"
        text = (response.text or "").strip()
        message = text[:300]
    response.close()
    return XrpcError(nsid, response.status_code, error, message)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _error_suffix(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body.get("message")
        return f" {body['error']}" + (f" ({message})" if isinstance(message, str) and message else "")
    return ""


def _describe_connection_error(err: Exception) -> str:
    text = str(err)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "reset" in lowered:
        return "connection reset"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "failed to resolve" in lowered:
        return "host name does not resolve"
    if "timed out" in lowered:
        return "connection timed out"
    return f"connection failed ({type(err).__name__})"


def _rate_limit_wait(headers: Mapping[str, str]) -> tuple[float | None, datetime | None]:
    """Seconds until the rate limit resets and the reset time, from the 429's headers."""
    now = time.time()
    reset = headers.get("ratelimit-reset")
    if reset is not None:
        try:
            at = float(reset.strip())
        except ValueError:
            at = None
        if at is not None:
            return max(at - now, 0.0), datetime.fromtimestamp(at, timezone.utc)
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        text = retry_after.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None, None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            return max(when.timestamp() - now, 0.0), when
        return max(seconds, 0.0), datetime.fromtimestamp(now + seconds, timezone.utc)
    return None, None


def _rate_limited_message(
    what: str, host: str, wait: float, until: datetime | None, policy: RetryPolicy, waited: int
) -> str:
    when = until.strftime("%Y-%m-%d %H:%M:%S UTC") if until else f"in {wait:.0f} s"
    if wait > policy.max_rate_wait:
        return (
            f"{host} rate-limited {what} (HTTP 429) until {when}, {wait:.0f} s from now, longer than the "
            f"{policy.max_rate_wait:g} s this client waits ([http] max_rate_wait). Try again after {when}"
        )
    return (
        f"{host} kept rate-limiting {what} (HTTP 429) after {waited} waits; try again after {when}"
    )
