"""Login sessions: create, refresh, and keep them in the user's config folder.

A session is what ``com.atproto.server.createSession`` returns: the account's
DID and handle, the PDS it lives on, a short-lived access token and a longer
refresh token. Sessions are saved one file per account::

    {config_dir}/sessions/{did}.json     the session, mode 0600
    {config_dir}/sessions/default        the DID of the default account

and the folder is mode 0700, because the tokens act as the password until they
expire. ``atdata login`` writes them; :meth:`Client.from_saved` reads them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from atdata_core.errors import AuthError, XrpcError
from atdata_core.atproto._xrpc import Transport, host_of

__all__ = ["Session", "SessionStore", "create_session", "refresh_session"]

_DEFAULT_POINTER = "default"


@attrs.define
class Session:
    """A logged-in account on a PDS."""

    did: str
    handle: str
    pds_url: str
    access_jwt: str = attrs.field(repr=False)
    refresh_jwt: str = attrs.field(repr=False)

    def to_json(self) -> dict[str, str]:
        return {
            "did": self.did,
            "handle": self.handle,
            "pdsUrl": self.pds_url,
            "accessJwt": self.access_jwt,
            "refreshJwt": self.refresh_jwt,
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "a saved session") -> Session:
        try:
            return cls(
                did=str(data["did"]),
                handle=str(data.get("handle") or ""),
                pds_url=str(data["pdsUrl"]),
                access_jwt=str(data["accessJwt"]),
                refresh_jwt=str(data["refreshJwt"]),
            )
        except (KeyError, TypeError) as err:
            raise AuthError(f"{source} is incomplete ({err}); log in again") from None


class SessionStore:
    """Saved sessions in a folder (default: ``config_dir()/sessions``)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        if directory is None:
            from atdata_core.config import config_dir

            directory = config_dir() / "sessions"
        self.directory = Path(directory)

    def path_for(self, did: str) -> Path:
        # A DID holds ':' and, for did:web, '%'; both are fine in POSIX file names.
        return self.directory / f"{did.replace('/', '_')}.json"

    def save(self, session: Session, *, make_default: bool = True) -> Path:
        """Write the session (mode 0600) and, by default, make it the default account."""
        self._ensure_directory()
        path = self.path_for(session.did)
        _write_private(path, json.dumps(session.to_json(), indent=2) + "\n")
        if make_default:
            _write_private(self.directory / _DEFAULT_POINTER, session.did + "\n")
        return path

    def load(self, handle_or_did: str | None = None) -> Session:
        """The saved session of an account (by DID or handle), or of the default account."""
        if handle_or_did is None:
            did = self.default_did()
            if did is None:
                raise AuthError(
                    f"no saved session in {self.directory}: log in first (atdata login, or atdata_core.atproto.login)"
                )
            return self._read(self.path_for(did))
        key = handle_or_did.strip().lstrip("@").lower() if not handle_or_did.startswith("did:") else handle_or_did
        if key.startswith("did:"):
            path = self.path_for(key)
            if path.is_file():
                return self._read(path)
        else:
            for session in self.sessions():
                if session.handle.lower() == key:
                    return session
        raise AuthError(f"no saved session for {handle_or_did} in {self.directory}: log in as that account first")

    def sessions(self) -> list[Session]:
        """Every saved session."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(self._read(path))
            except AuthError:
                continue
        return found

    def default_did(self) -> str | None:
        pointer = self.directory / _DEFAULT_POINTER
        try:
            did = pointer.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return did or None

    def delete(self, did: str) -> bool:
        """Forget an account's session; True if one was saved."""
        path = self.path_for(did)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        if self.default_did() == did:
            (self.directory / _DEFAULT_POINTER).unlink(missing_ok=True)
        return existed

    def _read(self, path: Path) -> Session:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AuthError(f"the saved session {path} is gone; log in again") from None
        except (OSError, ValueError) as err:
            raise AuthError(f"the saved session {path} cannot be read ({err}); log in again") from None
        return Session.from_json(data, source=str(path))

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only from the first byte."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_session(transport: Transport, pds_url: str, identifier: str, password: str) -> Session:
    """``com.atproto.server.createSession``: log in with a handle or DID and a password or app password."""
    try:
        response = transport.xrpc(
            pds_url, "com.atproto.server.createSession", procedure=True,
            json_body={"identifier": identifier, "password": password},
        )
    except XrpcError as err:
        if err.status in (400, 401) or err.error in ("AuthenticationRequired", "AuthFactorTokenRequired"):
            raise AuthError(
                f"login as {identifier} on {host_of(pds_url)} failed: {err.error}"
                + (f" ({err.message})" if err.message else "")
                + ". Check the handle and password (an app password works too)"
            ) from err
        raise
    return _session_from(response.json(), pds_url, "createSession")


def refresh_session(transport: Transport, session: Session) -> Session:
    """``com.atproto.server.refreshSession``: new tokens for a session whose access token expired."""
    try:
        response = transport.xrpc(
            session.pds_url, "com.atproto.server.refreshSession", procedure=True, token=session.refresh_jwt
        )
    except XrpcError as err:
        if err.status in (400, 401):
            raise AuthError(
                f"the session of {session.handle or session.did} on {host_of(session.pds_url)} has expired and "
                f"could not be refreshed ({err.error}: {err.message or 'no message'}); log in again"
            ) from err
        raise
    refreshed = _session_from(response.json(), session.pds_url, "refreshSession")
    if refreshed.did != session.did:
        raise AuthError(f"refreshSession on {host_of(session.pds_url)} answered for {refreshed.did}, not {session.did}")
    return refreshed


def _session_from(body: Any, pds_url: str, method: str) -> Session:
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("did", "accessJwt", "refreshJwt")):
        raise AuthError(f"{method} on {host_of(pds_url)} answered without a DID and tokens")
    return Session(
        did=body["did"],
        handle=str(body.get("handle") or ""),
        pds_url=pds_url.rstrip("/"),
        access_jwt=body["accessJwt"],
        refresh_jwt=body["refreshJwt"],
    )
