"""The network policy: what a URL or host named by someone else's record may reach (DESIGN D8).

A record is data written by a stranger. The URLs it names (an entry's shard
URLs), the PDS endpoint of an account's DID document and the host of a
``did:web`` DID are the stranger's choice, so before the core connects to one:

- its scheme must be one its storage type allows: ``storageHttp`` shards are
  ``https`` URLs, plain ``http`` only with ``[network] allow_http`` (or for a
  host listed in ``allow_hosts``); never ``file:``, a relative or absolute
  local path, or an opaque URL (``javascript:``, ``data:``);
- its host must be public: loopback (``localhost``, ``127.0.0.0/8``, ``::1``),
  private (``10/8``, ``172.16/12``, ``192.168/16``, ``fc00::/7``), link-local
  (``169.254/16``, where cloud metadata services answer, ``fe80::/10``),
  unspecified, multicast, reserved and other special-purpose addresses are
  refused, in IPv4 and IPv6 form (IPv4-mapped, 6to4 and NAT64 IPv6 addresses
  are judged by the IPv4 address inside), unless ``[network] allow_private``
  is true or the host is listed in ``[network] allow_hosts`` (``"host"`` or
  ``"host:port"``).

A URL is checked twice. :meth:`NetworkPolicy.check_url` judges its text
(scheme, IP literals, ``localhost`` names) before anything is sent; then every
connection made for it, including each redirect hop, is judged by the address
it actually reached (:mod:`atdata_core._netguard`), so a host name that
resolves, or is re-pointed, to a private address is refused too.

A shard URL that passed is handed to the dataset as a :class:`RecordUrl`: a
``str`` that remembers the policy it passed, the record that named it and the
size the record gives it, so that HTTP storage checks its redirects and bounds
its body, and file storage refuses to open it. Your own URLs and paths
(``Dataset("/data/x.tar")``, ``Dataset("http://127.0.0.1:8000/x.tar")``) are
plain strings and are not checked.

>>> policy = NetworkPolicy()
>>> policy.check_url("https://example.org/a.tar", what="a shard")
'https://example.org/a.tar'
>>> policy.check_url("file:///etc/passwd", what="a shard")
Traceback (most recent call last):
...
atdata_core.errors.NetworkPolicyError: a shard: refused 'file:///etc/passwd': it names a local file; ...
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import attrs

from atdata_core.config import NetworkSettings
from atdata_core.errors import NetworkPolicyError

__all__ = ["NetworkPolicy", "RecordUrl", "address_problem", "redact_credentials", "url_credentials"]

#: The schemes a storageHttp record may name (http only when the policy allows it).
HTTP_SCHEMES = ("https", "http")
#: How far past the size its record gives a shard's body may run before the read stops.
SIZE_SLACK = 1 << 20

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# Host names that mean this machine whatever DNS says (RFC 6761, and Debian's /etc/hosts).
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# Forms inet_aton reads as IPv4 although ipaddress does not: 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Query parameters that carry credentials in presigned or token URLs (compared lower-case).
_SECRET_PARAMS = {
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "signature",
    "x-goog-signature", "x-goog-credential", "googleaccessid", "sig", "token", "access_token", "id_token",
    "refresh_token", "api_key", "apikey", "api-key", "x-api-key", "client_secret", "secret", "password",
    "passwd", "auth", "authorization", "session_token", "x-ms-signature",
}


@attrs.frozen
class NetworkPolicy(NetworkSettings):
    """The ``[network]`` settings as the rules that apply them (see the module docstring).

    :meth:`from_config` reads ``[network]``; :meth:`of` turns a
    :class:`~atdata_core.config.NetworkSettings` into a policy. The default
    policy allows public ``https`` hosts only.
    """

    @classmethod
    def of(cls, settings: NetworkSettings | None) -> NetworkPolicy:
        """The policy for ``settings`` (the defaults when None)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls(**attrs.asdict(settings))

    # -- the rules

    def check_url(self, url: Any, *, what: str, schemes: Iterable[str] = HTTP_SCHEMES) -> str:
        """``url`` when a record may name it; :class:`NetworkPolicyError` saying why not otherwise.

        ``schemes`` are the remote schemes the record's storage type allows
        (``http`` among them still needs ``allow_http`` or an ``allow_hosts``
        entry). Hosts are judged by their text here (IP literals, ``localhost``);
        the address a host name resolves to is judged when it is connected to.
        """
        if not isinstance(url, str) or not url:
            raise NetworkPolicyError(f"{what}: refused {_shown(url)}: it is not a URL")
        if _UNSAFE_CHARS.search(url):
            raise NetworkPolicyError(
                f"{what}: refused {_shown(url)}: it holds spaces, control characters or backslashes, "
                "which no well-formed URL has"
            )
        allowed = tuple(scheme.lower() for scheme in schemes)
        match = _SCHEME.match(url)
        scheme = match.group(1).lower() if match else ""
        if scheme == "file":
            raise NetworkPolicyError(f"{what}: refused {_shown(url)}: it names a local file; {_LOCAL_HINT}")
        if not scheme:
            raise NetworkPolicyError(
                f"{what}: refused {_shown(url)}: it is a relative or local path, not a remote URL; {_LOCAL_HINT}"
            )
        if scheme in allowed and not url[match.end():].startswith("//"):
            raise NetworkPolicyError(f"{what}: refused {_shown(url)}: it is not of the form {scheme}://host/...")
        if scheme not in allowed:
            kinds = " or ".join(f"{name}://" for name in allowed) or "no URL"
            raise NetworkPolicyError(
                f"{what}: refused {_shown(url)}: the {scheme}: scheme is not one its storage type allows "
                f"({kinds}). Records name remote storage only; no setting allows other schemes"
            )
        if scheme not in HTTP_SCHEMES:
            return url  # another backend's remote scheme (s3://...): that backend judges its hosts
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as err:
            raise NetworkPolicyError(f"{what}: refused {_shown(url)}: not a valid URL ({err})") from None
        if not host:
            raise NetworkPolicyError(f"{what}: refused {_shown(url)}: it names no host")
        if scheme == "http" and not self.allow_http and not self.allows_host(host, port):
            raise NetworkPolicyError(
                f"{what}: refused {_shown(url)}: plain http is not accepted from records (https only). Set "
                f"[network] allow_http = true (ATDATA_NETWORK_ALLOW_HTTP=1) to accept it, or list the host in "
                f"[network] allow_hosts = [{_entry(host, port)!r}]"
            )
        self.check_host(host, port, what=what, url=url)
        return url

    def check_host(self, host: str, port: int | None, *, what: str, url: str | None = None) -> None:
        """Refuse a host whose text already says it is not public (an IP literal, a ``localhost`` name)."""
        name = host.lower().strip("[]").rstrip(".")
        if self.allow_private or self.allows_host(name, port):
            return
        problem = None
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            problem = "a name for this machine (loopback)"
        else:
            literal = _ip_literal(name)
            if literal is not None:
                problem = address_problem(literal)
        if problem:
            raise NetworkPolicyError(f"{what}: refused {_shown(url or host)}: its host {name} is {problem}. {self._hint(name, port)}")

    def check_address(self, address: str, *, host: str, port: int | None, what: str) -> None:
        """Refuse a connection to ``host`` that reached ``address`` when that address is not public."""
        name = (host or "").lower().strip("[]").rstrip(".")
        bare = address.split("%", 1)[0]
        if self.allow_private or self.allows_host(name, port) or self.allows_host(bare, port):
            return
        problem = address_problem(bare)
        if problem:
            where = f"{name} resolves to {bare}" if name and name != bare else f"{bare}"
            raise NetworkPolicyError(
                f"{what}: refused the connection to {name or bare}{f':{port}' if port else ''}: {where}, {problem}. "
                f"{self._hint(name or bare, port)}"
            )

    def allows_host(self, host: str, port: int | None) -> bool:
        """Whether ``[network] allow_hosts`` lists ``host`` (with any port, or with ``port``)."""
        name = host.lower().strip("[]").rstrip(".")
        for entry_host, entry_port in self.host_entries():
            if entry_host == name and (entry_port is None or entry_port == port):
                return True
        return False

    def permits(self, url: str, *, schemes: Iterable[str] = HTTP_SCHEMES) -> bool:
        """Whether :meth:`check_url` accepts ``url``."""
        try:
            self.check_url(url, what="", schemes=schemes)
        except NetworkPolicyError:
            return False
        return True

    def _hint(self, host: str, port: int | None) -> str:
        return (
            "Records may only name public hosts. If you trust this server, allow it with "
            f"[network] allow_hosts = [{_entry(host, port)!r}] (ATDATA_NETWORK_ALLOW_HOSTS), or every "
            "private address with [network] allow_private = true"
        )


_LOCAL_HINT = (
    "records may only name remote URLs (https://...). Local files are for your own code "
    "(Dataset('/path/to/shards')); no setting lets a record name them"
)


class RecordUrl(str):
    """A URL named by a record, as :meth:`NetworkPolicy.check_url` passed it.

    It is a ``str`` (storage backends and datasets use it as the URL it is)
    that also carries ``policy``, the policy it passed (HTTP storage applies
    it to every redirect and connection), ``named_by``, the ``at://`` URI of
    the record that named it (for messages), and ``recorded_bytes``, the most
    bytes the record says the shard holds (its own size, else the entry's
    total; None when the record gives none): HTTP storage reads at most that
    plus :data:`SIZE_SLACK`. File storage refuses to open it.

    Derived strings (``url + "x"``, ``url.strip()``) are plain ``str``: pass
    it on as it is.
    """

    policy: NetworkPolicy
    named_by: str | None
    recorded_bytes: int | None

    def __new__(
        cls,
        url: str,
        *,
        policy: NetworkPolicy,
        named_by: str | None = None,
        recorded_bytes: int | None = None,
    ) -> RecordUrl:
        self = super().__new__(cls, url)
        self.policy = policy
        self.named_by = named_by
        self.recorded_bytes = recorded_bytes
        return self

    @property
    def max_bytes(self) -> int | None:
        """The most body bytes HTTP storage reads for this shard (None: no bound from the record)."""
        return None if self.recorded_bytes is None else self.recorded_bytes + SIZE_SLACK

    def __reduce__(self) -> tuple[Any, ...]:
        # Data loader workers receive the shard list pickled; the URL stays a RecordUrl there.
        return (_rebuild_record_url, (str(self), self.policy, self.named_by, self.recorded_bytes))


def _rebuild_record_url(url: str, policy: NetworkPolicy, named_by: str | None, recorded_bytes: int | None) -> RecordUrl:
    return RecordUrl(url, policy=policy, named_by=named_by, recorded_bytes=recorded_bytes)


def address_problem(address: str) -> str | None:
    """Why an IP address is not public (``"a loopback address (this machine)"``...), or None when it is.

    >>> address_problem("169.254.169.254")
    'a link-local address (where cloud metadata services answer)'
    >>> address_problem("::ffff:10.0.0.1")
    'a private address (::ffff:10.0.0.1 holds the IPv4 address 10.0.0.1)'
    >>> address_problem("93.184.215.14") is None
    True
    """
    text = address.split("%", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is None and ip.teredo is not None:
            inner = ip.teredo[1]
        if inner is not None:
            problem = address_problem(str(inner))
            return f"{problem} ({text} holds the IPv4 address {inner})" if problem else None
        if ip.is_site_local:
            return "a site-local address"
    if ip.is_loopback:
        return "a loopback address (this machine)"
    if ip.is_unspecified:
        return "the unspecified address (this machine)"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def url_credentials(url: str) -> list[str]:
    """What in ``url`` looks like a credential (a user name or password, a signature or token parameter).

    A published record is public: a presigned URL or one with a password in it
    would hand the secret to everyone who reads the record.

    >>> url_credentials("https://user:secret@host/a.tar")
    ['a user name and password before the host']
    >>> url_credentials("https://host/a.tar?X-Amz-Signature=abc&part=1")
    ['the query parameter X-Amz-Signature']
    """
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if "@" in parts.netloc:
        found.append("a user name and password before the host" if ":" in parts.netloc.rpartition("@")[0]
                     else "a user name before the host")
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if name.strip().lower() in _SECRET_PARAMS:
            found.append(f"the query parameter {name}")
    return found


def redact_credentials(url: str) -> str:
    """``url`` with what :func:`url_credentials` finds replaced by ``***``, to show in a message.

    >>> redact_credentials("https://user:secret@host/a.tar?sig=abc&part=1")
    'https://***@host/a.tar?sig=***&part=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a malformed URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if name.strip().lower() in _SECRET_PARAMS else (f"{name}={value}" if value or "=" in pair else name)
        for pair in parts.query.split("&") if pair
        for name, _, value in [pair.partition("=")]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _ip_literal(host: str) -> str | None:
    """The IP address a host's text denotes (``127.1`` and ``0x7f000001`` too), or None for a name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _entry(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def _shown(value: Any) -> str:
    """A URL for an error message: quoted and escaped (records may hold control characters), and short."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
