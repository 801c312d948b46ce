"""Query parameters, read and checked against the methods' lexicon documents.

The documents of the federation's query methods ship with atdata-core (the
same files its validator reads); the methods this plugin adds
(``resolveBlobs``, ``getRecord``, ``listRecords``) ship here and are
registered with the core's validator, so clients validate against them too.

Every rule a document states is enforced before a handler runs: required
parameters, types (integers, booleans, arrays of repeated keys), ``minimum``
and ``maximum``, ``minLength`` and ``maxLength`` (UTF-8 bytes for strings,
items for arrays), ``enum``, and the string formats (``at-uri``, ``did``,
``handle``, ``at-identifier``, ``nsid``, ``cid``, ``datetime``). On top, no
value may hold a NUL character or be longer than :data:`MAX_VALUE_CHARS`. A
parameter the document does not declare is ignored, as XRPC servers do.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

__all__ = ["MAX_VALUE_CHARS", "ParamError", "method_document", "parse_params", "plugin_documents", "register_plugin_lexicons"]

#: No parameter value may be longer (an AT-URI is at most 8 KiB).
MAX_VALUE_CHARS = 8192
#: No array parameter may repeat more often than this, whatever its lexicon allows.
MAX_ITEMS = 100

_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_HANDLE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_NSID = re.compile(r"^[a-zA-Z]([a-zA-Z0-9-]{0,62})?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})?)+\.[a-zA-Z][a-zA-Z0-9]{0,62}$")
_CID = re.compile(r"^[a-zA-Z0-9+=]{8,256}$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$")
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")

_lock = threading.Lock()
_documents: dict[str, dict[str, Any]] = {}


class ParamError(ValueError):
    """A parameter breaks its method's lexicon: the client's mistake (HTTP 400)."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(f"{name}: {message}" if name else message)


def _read_folder(package: str) -> dict[str, dict[str, Any]]:
    folder = files(package).joinpath("lexicons", "science", "alt", "dataset")
    found: dict[str, dict[str, Any]] = {}
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            doc = json.loads(item.read_text(encoding="utf-8"))
            found[doc["id"]] = doc
    return found


def plugin_documents() -> dict[str, dict[str, Any]]:
    """The lexicon documents this plugin ships (the query methods it adds), by NSID."""
    return _read_folder("atdata_index_appview")


def _all_documents() -> dict[str, dict[str, Any]]:
    with _lock:
        if not _documents:
            _documents.update(_read_folder("atdata_core"))
            _documents.update(plugin_documents())
        return _documents


def register_plugin_lexicons() -> None:
    """Make the core's validator know this plugin's query methods (once per process)."""
    from atdata_core.errors import RecordError
    from atdata_core.plugins import register_lexicon

    for doc in plugin_documents().values():
        try:
            register_lexicon(doc)
        except RecordError:
            pass  # already registered by an earlier app in this process


def method_document(nsid: str, kind: str = "query") -> dict[str, Any] | None:
    """The ``main`` definition of a method of ``kind`` (``query``, ``subscription``), or None if no document declares one."""
    doc = _all_documents().get(nsid)
    if doc is None:
        return None
    main = doc.get("defs", {}).get("main")
    return main if isinstance(main, dict) and main.get("type") == kind else None


def _check_format(fmt: str | None, value: str) -> str | None:
    if fmt is None:
        return None
    if fmt == "did":
        return None if len(value) <= 2048 and _DID.match(value) else "not a DID (did:method:identifier)"
    if fmt == "handle":
        return None if len(value) <= 253 and _HANDLE.match(value) else "not a handle (name.example.com)"
    if fmt == "at-identifier":
        if value.startswith("did:"):
            return _check_format("did", value)
        return _check_format("handle", value.removeprefix("@"))
    if fmt == "nsid":
        return None if len(value) <= 317 and _NSID.match(value) else "not an NSID (com.example.record)"
    if fmt == "cid":
        return None if _CID.match(value) else "not a CID"
    if fmt == "datetime":
        return None if _DATETIME.match(value) else "not an RFC 3339 datetime"
    if fmt == "at-uri":
        from atdata_core.plugins import AtUri

        if not value.startswith("at://"):
            return "not an AT-URI (at://did/collection/rkey)"
        try:
            AtUri.parse(value)
        except Exception as err:  # noqa: BLE001 - the toolkit's parser says what is wrong
            return f"not an AT-URI: {str(err)[:200]}"
        return None
    if fmt == "uri":
        return None if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", value) else "not a URI"
    return None


def _scalar(name: str, definition: Mapping[str, Any], raw: str) -> Any:
    kind = definition.get("type")
    if "\x00" in raw:
        raise ParamError(name, "holds a NUL character")
    if len(raw) > MAX_VALUE_CHARS:
        raise ParamError(name, f"is longer than {MAX_VALUE_CHARS} characters")
    if kind == "integer":
        if not _INTEGER.match(raw):
            raise ParamError(name, f"expected an integer, got {raw[:50]!r}")
        value = int(raw)
        if "minimum" in definition and value < definition["minimum"]:
            raise ParamError(name, f"must be at least {definition['minimum']}, got {value}")
        if "maximum" in definition and value > definition["maximum"]:
            raise ParamError(name, f"must be at most {definition['maximum']}, got {value}")
        if "enum" in definition and value not in definition["enum"]:
            raise ParamError(name, f"must be one of {definition['enum']}")
        return value
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise ParamError(name, f"expected true or false, got {raw[:50]!r}")
        return raw == "true"
    if kind == "string":
        size = len(raw.encode("utf-8", "surrogatepass"))
        if "maxLength" in definition and size > definition["maxLength"]:
            raise ParamError(name, f"is longer than {definition['maxLength']} bytes")
        if "minLength" in definition and size < definition["minLength"]:
            raise ParamError(name, f"is shorter than {definition['minLength']} bytes")
        if "enum" in definition and raw not in definition["enum"]:
            raise ParamError(name, f"must be one of {', '.join(definition['enum'])}")
        problem = _check_format(definition.get("format"), raw)
        if problem:
            raise ParamError(name, f"{problem}, got {raw[:100]!r}")
        return raw
    raise ParamError(name, f"parameters of type {kind!r} are not supported")


def parse_params(definition: Mapping[str, Any] | None, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Typed parameters of one call, from ``{name: [values...]}``; defaults filled in.

    Raises :class:`ParamError` for anything the method's ``parameters`` refuse.
    """
    params = (definition or {}).get("parameters") or {}
    properties: Mapping[str, Any] = params.get("properties", {})
    required = set(params.get("required", ()))
    typed: dict[str, Any] = {}
    for name, prop in properties.items():
        values = [value for value in query.get(name, ())]
        if not values:
            if name in required:
                raise ParamError(name, "is required")
            if "default" in prop:
                typed[name] = prop["default"]
            continue
        if prop.get("type") == "array":
            if len(values) > MAX_ITEMS:
                raise ParamError(name, f"is given more than {MAX_ITEMS} times")
            items = [_scalar(name, prop.get("items", {}), value) for value in values]
            if "maxLength" in prop and len(items) > prop["maxLength"]:
                raise ParamError(name, f"takes at most {prop['maxLength']} values, got {len(items)}")
            if "minLength" in prop and len(items) < prop["minLength"]:
                raise ParamError(name, f"takes at least {prop['minLength']} values, got {len(items)}")
            typed[name] = items
            continue
        if len(values) > 1:
            raise ParamError(name, "is given more than once")
        typed[name] = _scalar(name, prop, values[0])
    return typed
