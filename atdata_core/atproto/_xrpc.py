"""HTTP and XRPC transport: one pooled connection per host, the shared retry policy.

Every request the ATProto client makes goes through :class:`Transport`, so
every request is retried by the same rules, those of
:class:`~atdata_core._retry.RetryPolicy` (the ``[http]`` settings), which HTTP
storage follows too:

- connection refused, connection reset, timeouts and HTTP 5xx (except 501)
  are retried with exponential backoff, then reported as
  :class:`~atdata_core.errors.ServiceUnavailable` naming the host, the call
  and what was tried;
- a host name that does not resolve is reported at once, not retried;
- HTTP 429 waits for the reset time the server gives when that is within
  ``max_rate_wait`` seconds; a longer wait raises
  :class:`~atdata_core.errors.RateLimited` saying when to try again;
- an XRPC error envelope (``{"error": Name, "message": text}``) becomes
  :class:`~atdata_core.errors.XrpcError`;
- a request to a host someone else named (a PDS endpoint from a DID
  document, a ``did:web`` host, a handle's well-known file) is given the
  network policy (``policy=``, :mod:`atdata_core._netpolicy`): its URL and
  each redirect hop must pass it, and every connection must reach an address
  it allows (:mod:`atdata_core._netguard`). Servers from your own
  configuration (the PLC directory, resolvers, your PDS) are not judged.

A write whose answer was lost (a timeout after the PDS committed it) is sent
again: ``putRecord`` and ``applyWrites`` updates with a record key are
idempotent, a ``createRecord`` without one may then land twice.

``requests`` is imported when the first request is made, not at import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from atdata_core._netpolicy import NetworkPolicy
from atdata_core._retry import RetryPolicy, is_name_resolution_failure, retryable_status
from atdata_core.config import HttpSettings
from atdata_core.errors import NetworkError, ServiceUnavailable, XrpcError

__all__ = ["RetryPolicy", "Transport", "host_of"]

_USER_AGENT = "atdata-core"


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


class Transport:
    """Sends HTTP requests with the retry rules above, over one pooled ``requests.Session``."""

    def __init__(self, policy: RetryPolicy | HttpSettings | None = None):
        self.policy = RetryPolicy.of(policy)
        self._http = None

    @property
    def http(self):
        """The underlying ``requests.Session`` (created on first use)."""
        if self._http is None:
            from atdata_core._netguard import guarded_session

            self._http = guarded_session(_USER_AGENT)
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
        policy: RetryPolicy | None = None,
        network: NetworkPolicy | None = None,
    ):
        """Send one request, retrying as the module docstring says; return the response.

        Answers other than 429, 408 and 5xx (but 501) are returned as they are
        (the caller reads the status). ``what`` names the call in error messages
        (``"com.atproto.repo.createRecord"``, ``"the DID document of did:web:..."``).
        A ``data`` that is a file object is rewound before each retry. ``policy``
        replaces this transport's for one call. ``network``: the URL was named
        by someone else; it, its redirects and its connections must pass this
        network policy (:class:`~atdata_core.errors.NetworkPolicyError` otherwise).
        """
        import requests

        if network is not None:
            network.check_url(url, what=what)
        policy = policy or self.policy
        host = host_of(url)
        attempts = policy.attempts(what=what, host=host)
        rewind = data.tell() if hasattr(data, "seek") and hasattr(data, "tell") else None
        while True:
            if rewind is not None:
                data.seek(rewind)
            try:
                response = self._send(
                    method, url, what=what, network=network, params=params, data=data,
                    headers=dict(headers or {}), timeout=policy.timeout, stream=stream,
                )
            except requests.exceptions.Timeout:
                reason = f"no answer within {policy.timeout:g} s"
            except requests.exceptions.ConnectionError as err:
                if is_name_resolution_failure(err):
                    raise ServiceUnavailable(
                        f"{what}: the host name of {host} does not resolve (DNS), so it was not retried. "
                        f"Check the spelling of the name and this machine's network"
                    ) from err
                reason = _describe_connection_error(err)
            except requests.exceptions.RequestException as err:
                raise NetworkError(f"{what}: request to {host} failed: {err}") from err
            else:
                status = response.status_code
                if status == 429:
                    response.close()
                    attempts.rate_limited(response.headers)
                    continue
                if not retryable_status(status):
                    return response
                reason = f"HTTP {status}{_error_suffix(response)}"
                response.close()
            if not attempts.failed(reason):
                raise ServiceUnavailable(
                    f"{host} did not answer {what}: {reason}. {attempts.summary()}. "
                    f"Check that the server is up and reachable; [http] retries and backoff set how hard to try"
                )

    def _send(self, method: str, url: str, *, what: str, network: NetworkPolicy | None, **kwargs: Any):
        if network is None:
            return self.http.request(method, url, **kwargs)
        from atdata_core._netguard import send_checked

        return send_checked(
            self.http, method, url, what=what, policy=network, max_redirects=self.policy.max_redirects, **kwargs
        )

    def get_json(
        self, url: str, *, what: str, params: Mapping[str, Any] | None = None, network: NetworkPolicy | None = None
    ) -> tuple[int, Any]:
        """GET a JSON document; ``(status, parsed body or None)``."""
        response = self.request(
            "GET", url, what=what, params=params, headers={"Accept": "application/json"}, network=network
        )
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
        network: NetworkPolicy | None = None,
    ):
        """Call XRPC method ``nsid`` on the server at ``base_url``; the response on success.

        A query is a GET, a procedure a POST. ``json_body`` is JSON-encoded here;
        ``data`` (bytes or a file object) is sent as it is, with ``content_type``.
        ``network``: ``base_url`` was named by someone else (see :meth:`request`).
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
            headers=send_headers, stream=stream, network=network,
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
