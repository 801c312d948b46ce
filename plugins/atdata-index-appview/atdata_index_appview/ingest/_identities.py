"""What ingestion needs to know about an account: its signing key, its PDS, its handle.

Looked up from the DID document once and kept for ``identity_ttl`` seconds;
an ``#identity`` event asks again at once (:meth:`Identities.refresh`). A
signature that fails against the kept key asks again too, at most once per
``retry_interval`` per account, so a key rotation the AppView has not heard of
costs one lookup, and a stream of forged commits costs almost nothing.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs

from atdata_core.errors import IdentityError, NetworkError

from atdata_index_appview.ingest._signature import SigningKey, SigningKeyError, signing_key_of

__all__ = ["Identities", "Known"]

logger = logging.getLogger("atdata_index_appview.ingest")


@attrs.frozen
class Known:
    """An account as its DID document describes it. ``key`` is None when the document names no
    usable signing key (``key_problem`` says why); ``handle`` is None unless it verifies;
    ``handle_checked`` is False when the check could not be made (the network failed), and then
    the handle the store has should be kept."""

    did: str
    key: SigningKey | None
    pds_url: str | None
    handle: str | None
    handle_checked: bool = True
    key_problem: str | None = None
    fetched: float = 0.0


class Identities:
    """A bounded cache of :class:`Known` accounts over an ``IdentityResolver`` from the toolkit."""

    def __init__(
        self,
        resolver: Any,
        *,
        ttl: float = 3600.0,
        retry_interval: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.resolver = resolver
        self.ttl = ttl
        self.retry_interval = retry_interval
        self.max_entries = max_entries
        self.clock = clock
        self._known: OrderedDict[str, Known] = OrderedDict()
        self._retried: dict[str, float] = {}

    def get(self, did: str) -> tuple[Known, bool]:
        """``(the account, whether it was just looked up)``; raises IdentityError (the DID does
        not resolve) or NetworkError (its directory or host did not answer)."""
        known = self._known.get(did)
        if known is not None and self.clock() - known.fetched < self.ttl:
            self._known.move_to_end(did)
            return known, False
        return self._lookup(did, fresh=known is not None), True

    def cached(self, did: str) -> Known | None:
        """The account as kept, if it is still young; never asks (and never raises)."""
        known = self._known.get(did)
        if known is not None and self.clock() - known.fetched < self.ttl:
            return known
        return None

    def refresh(self, did: str) -> Known:
        """Ask the DID's directory again, whatever is cached (an ``#identity`` event)."""
        return self._lookup(did, fresh=True)

    def retry_key(self, did: str) -> SigningKey | None:
        """After a signature failed: the account's key looked up again, if it changed and this
        account was not retried within ``retry_interval``; else None."""
        now = self.clock()
        last = self._retried.get(did)
        if last is not None and now - last < self.retry_interval:
            return None
        if len(self._retried) >= self.max_entries:
            self._retried.clear()
        self._retried[did] = now
        before = self._known.get(did)
        try:
            known = self._lookup(did, fresh=True)
        except (IdentityError, NetworkError) as err:
            logger.info("looking up %s again after a failed signature: %s", did, err)
            return None
        if known.key is None or (before is not None and before.key == known.key):
            return None
        return known.key

    def forget(self, did: str) -> None:
        self._known.pop(did, None)

    def _lookup(self, did: str, *, fresh: bool) -> Known:
        document = self.resolver.resolve_did(did, fresh=fresh)
        key, problem = None, None
        try:
            key = signing_key_of(document.raw, did)
        except SigningKeyError as err:
            problem = str(err)
        handle, checked = self._verified_handle(did, document.handle)
        known = Known(
            did=did, key=key, pds_url=document.pds_url, handle=handle, handle_checked=checked,
            key_problem=problem, fetched=self.clock(),
        )
        self._known[did] = known
        self._known.move_to_end(did)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)
        return known

    def _verified_handle(self, did: str, claimed: str | None) -> tuple[str | None, bool]:
        """``(the handle the document claims if it resolves back to the DID, whether that was checked)``."""
        if not claimed:
            return None, True
        try:
            return (claimed if self.resolver.resolve_handle(claimed, verify=False) == did else None), True
        except IdentityError:
            return None, True
        except NetworkError as err:
            # Unknown is not wrong: the store keeps the handle it has rather than lose it over a DNS hiccup.
            logger.info("the handle %s of %s could not be checked: %s", claimed, did, err)
            return None, False
