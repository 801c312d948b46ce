"""DID and handle resolution.

A DID names an account for good; a handle is its changeable, human name; the
DID document says which PDS holds the account's repository. Resolution:

- ``did:plc:...``: ``GET {plc}/{did}`` on the PLC directory (``[plc] url``,
  ``ATDATA_PLC_URL``, default ``https://plc.directory``; a running local
  sandbox sets it to its own directory);
- ``did:web:host``: ``https://host/.well-known/did.json`` (plain http only for
  ``localhost`` and loopback addresses, with the port percent-encoded:
  ``did:web:localhost%3A8080``);
- a handle, in this order until one answers with a DID:

  1. under the local sandbox's domain (``.test``) while a sandbox runs
     (``[sandbox] pds_url``): ``com.atproto.identity.resolveHandle`` on the
     sandbox PDS, a loopback server, on purpose;
  2. the DNS TXT record ``_atproto.<handle>`` (``did=...``), through the
     system's DNS servers or ``[atproto] nameservers``;
  3. ``https://<handle>/.well-known/atproto-did``;
  4. ``com.atproto.identity.resolveHandle`` on the servers given: an explicit
     PDS (the logged-in account's), then ``[atproto] resolver``.

  The answer is only believed when the DID document names the handle back
  (bidirectional check).

Results are cached in memory for ``[atproto] identity_ttl`` seconds (60 by
default), so a burst of reads resolves each account once.

What a stranger names is held to the network policy (``[network]``,
:mod:`atdata_core._netpolicy`): a ``did:web`` host, a handle's well-known
file, and the PDS endpoint of a DID document (when :meth:`IdentityResolver.pds_of`
hands it out, or it is asked to confirm a handle) must be public ``https``
hosts unless the configuration allows them: ``did:web:localhost%3A8080``
resolves only with ``localhost:8080`` in ``[network] allow_hosts``. The PLC
directory, resolver servers and PDS URLs you give are yours and not judged.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any
from urllib.parse import quote, unquote

import attrs

from atdata_core._netpolicy import NetworkPolicy
from atdata_core._retry import RetryPolicy, is_name_resolution_failure
from atdata_core.atproto._xrpc import Transport, host_of
from atdata_core.config import AtprotoSettings, Config, NetworkSettings
from atdata_core.errors import IdentityError, NetworkError, NetworkPolicyError, XrpcError

__all__ = [
    "DidDocument",
    "Identity",
    "IdentityResolver",
    "clear_identity_cache",
    "is_did",
    "normalize_handle",
]

_DID_RE = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_HANDLE_RE = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
# A DNS lookup waits at most this long, whatever the HTTP timeout.
_MAX_DNS_LIFETIME = 10.0

# (kind, directory/server, key) -> (expires at, value)
_cache: dict[tuple[str, str, str], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def clear_identity_cache() -> None:
    """Forget every cached DID document and handle."""
    with _cache_lock:
        _cache.clear()


def is_did(value: str) -> bool:
    return isinstance(value, str) and bool(_DID_RE.match(value))


def normalize_handle(handle: str) -> str:
    """``@Alice.Test`` -> ``alice.test``; raises IdentityError for a malformed handle."""
    text = handle.strip()
    if text.startswith("at://"):
        text = text[5:]
    text = text.lstrip("@").lower()
    if len(text) > 253 or not _HANDLE_RE.match(text):
        raise IdentityError(f"{handle!r} is neither a DID nor a valid handle (like alice.bsky.social)")
    return text


@attrs.frozen
class DidDocument:
    """What a DID document says: the ``handle`` it claims (its first ``at://``
    alias, unverified) and the ``pds_url`` of its ``#atproto_pds`` service."""

    did: str
    handle: str | None
    pds_url: str | None
    also_known_as: tuple[str, ...] = ()
    raw: dict = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def parse(cls, did: str, document: Any, source: str) -> DidDocument:
        if not isinstance(document, dict):
            raise IdentityError(f"the DID document of {did} from {source} is not a JSON object")
        if document.get("id") != did:
            raise IdentityError(
                f"{source} answered for {did} with a DID document for {document.get('id')!r}; refusing it"
            )
        aliases = tuple(a for a in document.get("alsoKnownAs") or () if isinstance(a, str))
        handle = None
        for alias in aliases:
            if alias.startswith("at://"):
                handle = alias[5:].lower()
                break
        pds_url = None
        for service in document.get("service") or ():
            if not isinstance(service, dict):
                continue
            sid = str(service.get("id", ""))
            if (sid == "#atproto_pds" or sid == f"{did}#atproto_pds") and service.get(
                "type"
            ) == "AtprotoPersonalDataServer":
                endpoint = service.get("serviceEndpoint")
                if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")):
                    pds_url = endpoint.rstrip("/")
                break
        return cls(did=did, handle=handle, pds_url=pds_url, also_known_as=aliases, raw=document)


@attrs.frozen
class Identity:
    """An account: its ``did``, its ``handle`` and the ``pds_url`` holding its repository.

    ``handle_verified`` is True when the handle resolves back to the DID;
    otherwise ``handle`` is only what the DID document claims.
    """

    did: str
    handle: str | None
    pds_url: str | None
    handle_verified: bool = True


class IdentityResolver:
    """Resolves DIDs and handles with one transport and one set of settings.

    ``settings`` (an :class:`~atdata_core.config.AtprotoSettings`) default to
    ``config`` (default: :func:`~atdata_core.config.load_config`); ``plc_url``,
    ``resolvers`` and ``ttl`` override single values. ``network`` (a
    :class:`~atdata_core.config.NetworkSettings`, default: ``config``'s
    ``[network]``) judges the hosts strangers name.
    """

    def __init__(
        self,
        *,
        settings: AtprotoSettings | None = None,
        plc_url: str | None = None,
        resolvers: list[str] | tuple[str, ...] | None = None,
        ttl: float | None = None,
        transport: Transport | None = None,
        config: Config | None = None,
        network: NetworkSettings | None = None,
    ):
        if config is None and (settings is None or transport is None or network is None):
            from atdata_core.config import load_config

            config = load_config()
        overrides = {
            key: value
            for key, value in (("plc_url", plc_url), ("resolvers", resolvers), ("identity_ttl", ttl))
            if value is not None
        }
        if settings is None:
            settings = AtprotoSettings.from_config(config, **overrides)
        elif overrides:
            settings = attrs.evolve(settings, **overrides)
        self.settings = settings
        self.plc_url = settings.plc_url.rstrip("/")
        self.resolvers = [url.rstrip("/") for url in settings.resolvers]
        self.ttl = float(settings.identity_ttl)
        self.transport = transport or Transport(RetryPolicy.from_config(config))
        self.network = NetworkPolicy.of(network if network is not None else NetworkSettings.from_config(config))

    # ------------------------------------------------------------------ DIDs

    def resolve_did(self, did: str, *, fresh: bool = False) -> DidDocument:
        """The DID document of ``did`` (``did:plc`` or ``did:web``).

        ``fresh``: ask its directory or host even when a cached copy is still
        young (an AppView told that the identity changed), and cache the answer.
        """
        if not is_did(did):
            raise IdentityError(f"{did!r} is not a DID (did:plc:... or did:web:...)")
        if did.startswith("did:plc:"):
            key = ("did", self.plc_url, did)
        else:
            key = ("did", "web", did)
        cached = None if fresh else self._cached(key)
        if cached is not None:
            return cached
        if did.startswith("did:plc:"):
            url = f"{self.plc_url}/{quote(did, safe=':')}"
            source = f"the PLC directory {self.plc_url}"
        elif did.startswith("did:web:"):
            url = did_web_url(did)
            source = url
        else:
            method = did.split(":")[1]
            raise IdentityError(f"{did}: DID method {method!r} is not supported; ATProto uses did:plc and did:web")
        # A did:web host is whoever wrote the DID; the PLC directory is the one you configured.
        network = self.network if did.startswith("did:web:") else None
        status, body = self.transport.get_json(url, what=f"the DID document of {did}", network=network)
        if status == 404 or status == 410:
            gone = "was deactivated in" if status == 410 else "is not known to"
            raise IdentityError(f"{did} {gone} {source}")
        if status != 200:
            raise IdentityError(f"{source} answered HTTP {status} for {did}")
        document = DidDocument.parse(did, body, source)
        self._store(key, document)
        return document

    # ------------------------------------------------------------------ handles

    def resolve_handle(self, handle: str, *, pds_url: str | None = None, verify: bool = True) -> str:
        """The DID a handle names (see the module docstring for where it asks), checked
        against that DID's document when ``verify``."""
        name = normalize_handle(handle)
        did = self._cached(("handle", "", name))
        tried: list[str] = []
        if did is None:
            did = self._lookup_handle(name, pds_url, tried)
        if did is None:
            raise IdentityError(
                f"the handle {name} did not resolve to a DID; tried {'; '.join(tried)}. Check the spelling, or "
                f"name the account's PDS (pds_url=..., or [atproto] resolver in the configuration)"
            )
        if verify:
            document = self.resolve_did(did)
            if document.handle != name:
                claimed = f"claims the handle {document.handle}" if document.handle else "claims no handle"
                raise IdentityError(
                    f"the handle {name} points at {did}, but that DID's document {claimed}: the handle is not "
                    f"verified, so it is not used. Use the DID itself, or ask the account's owner to fix the handle"
                )
        self._store(("handle", "", name), did)
        return did

    def _lookup_handle(
        self, name: str, pds_url: str | None, tried: list[str], *, pds_named: bool = False
    ) -> str | None:
        sandbox = self.settings.sandbox_pds_url
        if sandbox and name.endswith(self.settings.sandbox_handle_domain):
            did = self._ask_server(sandbox, name, tried, label="the running sandbox's PDS ")
            if did is not None:
                return did
        did = self._ask_dns(name, tried)
        if did is not None:
            return did
        did = self._ask_well_known(name, tried)
        if did is not None:
            return did
        for server in _unique([pds_url, *self.resolvers]):
            # The PDS a DID document names is the stranger's; resolvers are yours.
            named = pds_named and server == (pds_url or "").rstrip("/")
            did = self._ask_server(server, name, tried, network=self.network if named else None)
            if did is not None:
                return did
        return None

    def _ask_server(
        self, server: str, name: str, tried: list[str], label: str = "", network: NetworkPolicy | None = None
    ) -> str | None:
        """``com.atproto.identity.resolveHandle`` on one server."""
        try:
            response = self.transport.xrpc(
                server, "com.atproto.identity.resolveHandle", params={"handle": name}, network=network
            )
            did = response.json().get("did")
        except XrpcError as err:
            tried.append(f"{label}{host_of(server)} ({err.error or err.status}: {err.message or 'no message'})")
            return None
        except (NetworkError, ValueError, AttributeError) as err:
            tried.append(f"{label}{host_of(server)} ({err})")
            return None
        if isinstance(did, str) and is_did(did):
            return did
        tried.append(f"{label}{host_of(server)} (answered without a DID)")
        return None

    def _ask_dns(self, name: str, tried: list[str]) -> str | None:
        """The ``did=`` of the TXT record ``_atproto.<handle>``."""
        record = f"_atproto.{name}"
        try:
            import dns.exception
            import dns.resolver
        except ImportError:
            tried.append(f"DNS TXT {record} (skipped: dnspython is not installed)")
            return None
        resolver = _dns_resolver(self.settings.nameservers)
        lifetime = min(self.transport.policy.timeout, _MAX_DNS_LIFETIME)
        try:
            answer = resolver.resolve(record, "TXT", lifetime=lifetime, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            tried.append(f"DNS TXT {record} (no such record)")
            return None
        except dns.exception.DNSException as err:
            tried.append(f"DNS TXT {record} ({type(err).__name__}: {err})")
            return None
        dids = set()
        for rdata in answer:
            text = b"".join(rdata.strings).decode("ascii", "replace").strip()
            if text.startswith("did="):
                dids.add(text[4:].strip())
        valid = {did for did in dids if is_did(did)}
        if len(valid) == 1:
            return valid.pop()
        what = "several DIDs" if len(valid) > 1 else "no did= value"
        tried.append(f"DNS TXT {record} ({what})")
        return None

    def _ask_well_known(self, name: str, tried: list[str]) -> str | None:
        """The DID served at ``https://<handle>/.well-known/atproto-did``."""
        url = f"https://{name}/.well-known/atproto-did"
        # One of several ways to resolve a handle: try once more at most, not the full retries.
        quick = attrs.evolve(self.transport.policy, retries=min(self.transport.policy.retries, 1))
        try:
            # The handle's host is named by whoever claims the handle: held to the network policy.
            response = self.transport.request(
                "GET", url, what=f"the handle {name}", policy=quick, network=self.network
            )
        except NetworkPolicyError as err:
            tried.append(f"{url} ({err})")
            return None
        except NetworkError as err:
            tried.append(f"{url} ({'its host name does not resolve' if is_name_resolution_failure(err) else err})")
            return None
        text = response.text.strip() if response.status_code == 200 else ""
        if is_did(text):
            return text
        tried.append(f"{url} (HTTP {response.status_code}{', not a DID' if response.status_code == 200 else ''})")
        return None

    # ------------------------------------------------------------------ both

    def resolve_identity(self, handle_or_did: str, *, pds_url: str | None = None) -> Identity:
        """Resolve a handle or a DID to an :class:`Identity` with its PDS."""
        if handle_or_did.startswith("did:"):
            document = self.resolve_did(handle_or_did)
            verified = False
            if document.handle:
                try:
                    verified = self._confirm_handle(document, pds_url) == document.did
                except (IdentityError, NetworkError):
                    verified = False
            return Identity(document.did, document.handle, document.pds_url, handle_verified=verified)
        did = self.resolve_handle(handle_or_did, pds_url=pds_url)
        document = self.resolve_did(did)
        return Identity(document.did, document.handle, document.pds_url, handle_verified=True)

    def _confirm_handle(self, document: DidDocument, pds_url: str | None) -> str:
        """The DID the handle a document claims resolves to (unverified: the caller compares)."""
        name = normalize_handle(document.handle or "")
        did = self._cached(("handle", "", name))
        if did is not None:
            return did
        tried: list[str] = []
        hint, named = pds_url, False
        if hint is None and document.pds_url and self.network.permits(document.pds_url):
            hint, named = document.pds_url, True
        did = self._lookup_handle(name, hint, tried, pds_named=named)
        if did is None:
            raise IdentityError(f"the handle {name} did not resolve to a DID; tried {'; '.join(tried)}")
        self._store(("handle", "", name), did)
        return did

    def pds_of(self, handle_or_did: str, *, pds_url: str | None = None) -> str:
        """The URL of the PDS holding an account's repository, checked against the network policy.

        The endpoint is written in the account's DID document, by its owner:
        one that is not a public ``https`` host (``http://127.0.0.1:2583``)
        raises :class:`~atdata_core.errors.NetworkPolicyError` unless
        ``[network]`` allows it.
        """
        if handle_or_did.startswith("did:"):
            document = self.resolve_did(handle_or_did)
        else:
            document = self.resolve_did(self.resolve_handle(handle_or_did, pds_url=pds_url))
        if not document.pds_url:
            raise IdentityError(f"the DID document of {document.did} names no PDS (#atproto_pds service)")
        return self.checked_pds(document.did, document.pds_url)

    def checked_pds(self, did: str, pds_url: str) -> str:
        """``pds_url``, the PDS endpoint ``did``'s document names, when the network policy allows it."""
        return self.network.check_url(pds_url, what=f"the PDS endpoint in the DID document of {did}")

    # ------------------------------------------------------------------ cache

    def _cached(self, key: tuple[str, str, str]) -> Any:
        with _cache_lock:
            found = _cache.get(key)
            if found is None:
                return None
            expires, value = found
            if expires < time.monotonic():
                del _cache[key]
                return None
            return value

    def _store(self, key: tuple[str, str, str], value: Any) -> None:
        if self.ttl <= 0:
            return
        with _cache_lock:
            _cache[key] = (time.monotonic() + self.ttl, value)


def did_web_url(did: str) -> str:
    """Where a ``did:web`` DID's document lives."""
    rest = did[len("did:web:"):]
    if ":" in rest:
        raise IdentityError(
            f"{did}: did:web with a path is not used by ATProto; only host-level did:web DIDs are supported"
        )
    host = unquote(rest)
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    scheme = "http" if hostname.lower() in _LOOPBACK_HOSTS else "https"
    return f"{scheme}://{host}/.well-known/did.json"


def _unique(urls: list[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        if url:
            seen.setdefault(url.rstrip("/"), None)
    return list(seen)


def _dns_resolver(nameservers: tuple[str, ...]) -> Any:
    """A dnspython resolver: the system's, or one asking ``nameservers`` (``host`` or ``host:port``)."""
    import dns.resolver

    if not nameservers:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    hosts: list[str] = []
    ports: dict[str, int] = {}
    for entry in nameservers:
        host, port = _host_port(entry)
        hosts.append(host)
        if port is not None:
            ports[host] = port
    resolver.nameservers = hosts
    resolver.nameserver_ports = ports
    return resolver


def _host_port(entry: str) -> tuple[str, int | None]:
    """``"10.0.0.1"``, ``"127.0.0.1:5353"``, ``"[::1]:53"`` -> host and port."""
    text = entry.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise IdentityError(f"[atproto] nameservers: {entry!r} should be host or host:port")
    return host, int(port) if port else None
