"""The lexicon documents atdata-core knows, loaded on first use.

The built-in documents ship inside the package under
``atdata_core/lexicons/science/alt/dataset/``. Plugins that define their own
union members (a protobuf schema format, say) register their documents with
:func:`register_lexicon`, so records using them validate here too.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from atdata_core.errors import RecordError

_lock = threading.Lock()
_documents: dict[str, dict[str, Any]] | None = None
_extra: dict[str, dict[str, Any]] = {}


def _load_builtin() -> dict[str, dict[str, Any]]:
    from importlib.resources import files

    docs: dict[str, dict[str, Any]] = {}
    folder = files("atdata_core").joinpath("lexicons", "science", "alt", "dataset")
    for item in folder.iterdir():
        if not item.name.endswith(".json"):
            continue
        doc = json.loads(item.read_text(encoding="utf-8"))
        docs[doc["id"]] = doc
    return docs


def documents() -> dict[str, dict[str, Any]]:
    """Every known lexicon document by NSID (built in, then registered)."""
    global _documents
    if _documents is None:
        with _lock:
            if _documents is None:
                _documents = _load_builtin()
    if not _extra:
        return _documents
    return {**_documents, **_extra}


def _check_document(doc: Any) -> None:
    if not isinstance(doc, dict) or doc.get("lexicon") != 1 or not isinstance(doc.get("id"), str):
        raise RecordError("a lexicon document is a JSON object with \"lexicon\": 1 and an \"id\"")
    if not isinstance(doc.get("defs"), dict) or not doc["defs"]:
        raise RecordError(f"lexicon {doc['id']} has no defs")
    for name, definition in doc["defs"].items():
        if not isinstance(definition, dict) or "type" not in definition:
            raise RecordError(f"lexicon {doc['id']}#{name} has no type")


def register_lexicon(doc: dict[str, Any], *, replace: bool = False) -> None:
    """Make another lexicon document known to the validator.

    Refuses to shadow a built-in or already registered document unless
    ``replace`` is true, so two plugins cannot silently disagree about an NSID.
    """
    _check_document(doc)
    nsid = doc["id"]
    if not replace and nsid in documents():
        raise RecordError(f"lexicon {nsid} is already known; pass replace=True to override it")
    _extra[nsid] = doc
    _definition_cache.clear()


def unregister_lexicon(nsid: str) -> None:
    """Forget a document added with :func:`register_lexicon` (built-ins stay)."""
    _extra.pop(nsid, None)
    _definition_cache.clear()


def lexicon(nsid: str) -> dict[str, Any]:
    """The document with this NSID. Raises :class:`RecordError` if unknown."""
    try:
        return documents()[nsid]
    except KeyError:
        raise RecordError(f"no lexicon document for {nsid}") from None


# By "nsid#name", and by (ref, context NSID) as asked.
_definition_cache: dict[Any, tuple[str, dict[str, Any]] | None] = {}
_MAX_CACHED = 10_000
_MISSING: Any = object()


def split_ref(ref: str, context_nsid: str) -> tuple[str, str]:
    """``#def`` / ``nsid`` / ``nsid#def`` -> (nsid, def name)."""
    if ref.startswith("#"):
        return context_nsid, ref[1:]
    nsid, _, name = ref.partition("#")
    return nsid, name or "main"


def find_definition(ref: str, context_nsid: str = "") -> tuple[str, dict[str, Any]] | None:
    """Resolve a reference to (owning NSID, definition), or None when unknown."""
    # Kept by (ref, context) as asked, too: a validation asks the same few for every record.
    asked = (ref, context_nsid)
    found = _definition_cache.get(asked, _MISSING)
    if found is not _MISSING:
        return found
    nsid, name = split_ref(ref, context_nsid)
    key = f"{nsid}#{name}"
    found = _definition_cache.get(key, _MISSING)
    if found is _MISSING:
        doc = documents().get(nsid)
        definition = doc["defs"].get(name) if doc else None
        found = (nsid, definition) if definition is not None else None
    if len(_definition_cache) >= _MAX_CACHED:  # refs a stranger's record names must not grow it without end
        _definition_cache.clear()
    _definition_cache[key] = found
    _definition_cache[asked] = found
    return found
