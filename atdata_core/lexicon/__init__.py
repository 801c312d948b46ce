"""Lexicon documents and the record validator (DESIGN D6).

A PDS does not validate records of lexicons it does not know, so this module
is the only check our records get. Writers validate strictly::

    from atdata_core.lexicon import validate_record
    validate_record(record)            # raises ValidationError(path=..., rule=...)

Readers (and the AppView, when it ingests) validate tolerantly, accepting
deviations that lose no meaning and keeping a warning for each::

    warnings = validate_record(record, strict=False)

Deviations a tolerant reader accepts:

- a size or count limit broken (``maxLength``, ``minLength``, ``maxGraphemes``,
  ``minGraphemes``, ``minimum``, ``maximum``, a blob's ``maxSize``);
- a ``bytes`` field holding a JSON object or array (entry ``metadata`` written
  as JSON instead of msgpack);
- a blob in the legacy ``{"cid", "mimeType"}`` form, or with a MIME type
  outside its ``accept`` list;
- an optional field set to ``null``; an integer written as ``3.0`` (also
  inside free-form ``unknown`` data, where a float with a fraction is refused:
  the ATProto data model has no floats); a record
  without ``$type`` when the caller names its NSID; a non-object in an
  ``unknown`` field;
- a JSON Schema member wrapped as ``{"draft", "content"}``.

Everything else (a missing required field, a wrong type, a malformed
identifier, an unknown member of a closed union) is refused in both modes.

The documents are read from the package on first use, not at import.
"""

from __future__ import annotations

from typing import Any

from atdata_core.errors import RecordError, ValidationError
from atdata_core.lexicon._catalog import (
    documents as _documents,
    find_definition as _find_definition,
    lexicon,
    register_lexicon,
    unregister_lexicon,
)
from atdata_core.lexicon._formats import FORMATS as _FORMATS, count_graphemes
from atdata_core.lexicon._validator import LexiconWarning, Validation as _Validation, compile_definition as _compile

from atdata_core._nsids import NAMESPACE


def known_lexicons() -> list[str]:
    """NSIDs of every lexicon document the validator knows, sorted."""
    return sorted(_documents())


def record_key_type(nsid: str) -> str:
    """The record-key kind a record lexicon declares (``tid``, ``any``, ``literal:self``...)."""
    main = lexicon(nsid)["defs"].get("main", {})
    if main.get("type") != "record":
        raise RecordError(f"{nsid} is not a record lexicon")
    return main.get("key", "any")


def check_format(name: str, value: str) -> str | None:
    """Check ``value`` against a lexicon string format; the reason it fails, or None.

    ``check_format("record-key", "com.example.image:1.0.0")`` is None;
    ``check_format("record-key", "a@b")`` explains what is wrong.
    """
    try:
        checker = _FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown string format {name!r}; known: {', '.join(sorted(_FORMATS))}") from None
    return checker(value)


def validate_record(record: dict[str, Any], nsid: str | None = None, *, strict: bool = True) -> list[LexiconWarning]:
    """Validate a record against its lexicon.

    ``nsid`` defaults to ``record["$type"]``. Raises
    :class:`~atdata_core.errors.ValidationError` naming the JSON path and the
    rule broken. Returns the warnings of a tolerant (``strict=False``) run;
    a strict run returns an empty list or raises.
    """
    if nsid is None:
        nsid = record.get("$type") if isinstance(record, dict) else None
        if not isinstance(nsid, str):
            raise ValidationError("the record has no \"$type\" and no NSID was given", path="$.$type", rule="$type")
    run = _Validation(nsid, strict=strict)
    found = _find_definition(nsid)
    if found is None or found[1].get("type") != "record":
        raise ValidationError(f"no record lexicon is known for {nsid}", path="$.$type", rule="$type", nsid=nsid)
    _compile(found[1], nsid, f"{nsid}#main")(run, record, "$")
    return run.warnings


def validate_definition(ref: str, value: Any, *, strict: bool = True) -> list[LexiconWarning]:
    """Validate a value against any named definition, e.g. ``science.alt.dataset.storageHttp``.

    Useful to check one union member (a storage block, a schema body) alone.
    """
    run = _Validation(ref, strict=strict)
    run.check_ref(ref, value, "$", "")
    return run.warnings


def _query(nsid: str) -> dict[str, Any]:
    found = _find_definition(nsid)
    if found is None or found[1].get("type") not in ("query", "procedure"):
        raise RecordError(f"no query lexicon is known for {nsid}")
    return found[1]


def _coerce_param(definition: dict[str, Any], value: Any, path: str, nsid: str) -> Any:
    """Turn a query-string value into the type its parameter declares."""
    kind = definition.get("type")
    if kind == "array":
        values = value if isinstance(value, (list, tuple)) else [value]
        items = definition.get("items", {})
        return [_coerce_param(items, item, f"{path}[{i}]", nsid) for i, item in enumerate(values)]
    if isinstance(value, str) and kind == "integer":
        try:
            return int(value, 10)
        except ValueError:
            raise ValidationError(f"expected an integer, got {value!r}", path=path, rule="type", nsid=nsid) from None
    if isinstance(value, str) and kind == "boolean":
        if value in ("true", "false"):
            return value == "true"
        raise ValidationError(f"expected true or false, got {value!r}", path=path, rule="type", nsid=nsid)
    return value


def validate_query_params(nsid: str, params: dict[str, Any], *, coerce: bool = True) -> dict[str, Any]:
    """Validate XRPC query parameters; return them typed, with defaults filled in.

    With ``coerce`` (the default), strings from a query string become the
    integers, booleans and arrays the lexicon declares. Unknown parameters are
    dropped from the result.
    """
    definition = _query(nsid).get("parameters") or {"type": "params", "properties": {}}
    properties = definition.get("properties", {})
    typed: dict[str, Any] = {}
    for name, prop in properties.items():
        if name in params and params[name] is not None:
            value = params[name]
            typed[name] = _coerce_param(prop, value, f"$.{name}", nsid) if coerce else value
        elif "default" in prop:
            typed[name] = prop["default"]
    run = _Validation(nsid, strict=True)
    run.check(definition, typed, "$", nsid)
    return typed


def validate_query_output(nsid: str, output: Any, *, strict: bool = True) -> list[LexiconWarning]:
    """Validate the JSON body a query answered with."""
    body = _query(nsid).get("output", {}).get("schema")
    if body is None:
        return []
    run = _Validation(nsid, strict=strict)
    run.check(body, output, "$", nsid)
    return run.warnings


def query_errors(nsid: str) -> list[str]:
    """Names of the errors a query declares (``SchemaNotFound``...)."""
    return [error["name"] for error in _query(nsid).get("errors", ())]


__all__ = [
    "NAMESPACE",
    "LexiconWarning",
    "check_format",
    "count_graphemes",
    "known_lexicons",
    "lexicon",
    "query_errors",
    "record_key_type",
    "register_lexicon",
    "unregister_lexicon",
    "validate_definition",
    "validate_query_output",
    "validate_query_params",
    "validate_record",
]
