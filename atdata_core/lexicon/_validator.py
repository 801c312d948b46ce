"""Check a value against a lexicon definition.

One walk over the value, driven by the definition. The first broken rule
raises :class:`~atdata_core.errors.ValidationError` with the JSON path of the
value and the name of the rule. In tolerant mode (``strict=False``, used when
reading records other clients wrote) a deviation that loses no meaning is
recorded as a :class:`LexiconWarning` instead; see ``_TOLERATED`` and the
``deviate`` calls for the exact list.
"""

from __future__ import annotations

from typing import Any

import attrs

from atdata_core._bytes import decode_bytes
from atdata_core.errors import ValidationError
from atdata_core.lexicon._catalog import find_definition, split_ref
from atdata_core.lexicon._formats import FORMATS, count_graphemes, strict_datetime

# Rules that only bound a size or a count. Breaking one loses no meaning, so a
# tolerant reader accepts the value with a warning; a writer never does.
_LIMIT_RULES = frozenset(
    {"maxLength", "minLength", "maxGraphemes", "minGraphemes", "minimum", "maximum", "maxSize"}
)


@attrs.frozen
class LexiconWarning:
    """A deviation from a lexicon that a tolerant reader accepted."""

    path: str
    rule: str
    message: str
    nsid: str | None = None

    def __str__(self) -> str:
        where = f"{self.nsid} " if self.nsid else ""
        return f"{where}{self.path}: {self.message} [{self.rule}]"


def _full_ref(ref: str, context_nsid: str) -> str:
    nsid, name = split_ref(ref, context_nsid)
    return f"{nsid}#{name}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def _mime_accepted(mime: str, patterns: list[str]) -> bool:
    mime = mime.split(";", 1)[0].strip().lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern in ("*/*", mime):
            return True
        if pattern.endswith("/*") and mime.startswith(pattern[:-1]):
            return True
    return False


class Validation:
    """One validation run: strictness, the record's NSID and collected warnings."""

    def __init__(self, nsid: str | None, *, strict: bool):
        self.nsid = nsid
        self.strict = strict
        self.warnings: list[LexiconWarning] = []

    # --- outcomes -----------------------------------------------------------

    def fail(self, path: str, rule: str, message: str) -> None:
        raise ValidationError(message, path=path, rule=rule, nsid=self.nsid)

    def deviate(self, path: str, rule: str, message: str) -> None:
        """A deviation a tolerant reader may accept; fatal when strict."""
        if self.strict:
            self.fail(path, rule, message)
        self.warnings.append(LexiconWarning(path, rule, message, self.nsid))

    def limit(self, path: str, rule: str, message: str) -> None:
        if rule in _LIMIT_RULES:
            self.deviate(path, rule, message)
        else:
            self.fail(path, rule, message)

    # --- dispatch -----------------------------------------------------------

    def check(self, definition: dict[str, Any], value: Any, path: str, context: str, key: str = "") -> None:
        """Validate ``value`` against ``definition`` found in lexicon ``context``.

        ``key`` is the ``nsid#name`` of the definition when it is a named one,
        which is what tolerated-deviation adapters are keyed by.
        """
        kind = definition.get("type")
        method = getattr(self, f"_check_{str(kind).replace('-', '_')}", None)
        if method is None:
            self.fail(path, "lexicon", f"the lexicon uses type {kind!r}, which this validator does not know")
        method(definition, value, path, context, key)

    def check_ref(self, ref: str, value: Any, path: str, context: str) -> None:
        found = find_definition(ref, context)
        if found is None:
            self.fail(path, "ref", f"the lexicon refers to {ref}, which is not a known definition")
        owner, definition = found
        self.check(definition, value, path, owner, _full_ref(ref, context))

    # --- containers ---------------------------------------------------------

    def _check_record(self, definition, value, path, context, key) -> None:
        if not isinstance(value, dict):
            self.fail(path, "type", f"expected a record object, got {_describe(value)}")
        declared = value.get("$type")
        if declared is None:
            self.deviate(path + ".$type", "$type", f"a record carries \"$type\": \"{context}\"")
        elif declared != context:
            self.fail(path + ".$type", "$type", f"this is a {declared!r} record, not {context}")
        self.check(definition["record"], value, path, context, key)

    def _check_object(self, definition, value, path, context, key) -> None:
        if not isinstance(value, dict):
            self.fail(path, "type", f"expected an object, got {_describe(value)}")
        if not self.strict and key in _TOLERATED:
            adapted = _TOLERATED[key](value)
            if adapted is not None:
                value, message = adapted
                self.deviate(path, "layout", message)
        properties = definition.get("properties", {})
        nullable = set(definition.get("nullable", ()))
        for name in definition.get("required", ()):
            if name not in value:
                self.fail(f"{path}.{name}", "required", f"the required field {name!r} is missing")
        for name, prop in properties.items():
            if name not in value:
                continue
            item = value[name]
            item_path = f"{path}.{name}"
            if item is None:
                if name in nullable:
                    continue
                if name in definition.get("required", ()):
                    self.fail(item_path, "nullable", f"{name!r} is required and may not be null")
                # An optional field set to null means the same as leaving it out.
                self.deviate(item_path, "nullable", f"{name!r} is null; leave an absent field out instead")
                continue
            self.check(prop, item, item_path, context)

    def _check_params(self, definition, value, path, context, key) -> None:
        self._check_object(definition, value, path, context, key)

    def _check_array(self, definition, value, path, context, key) -> None:
        if not isinstance(value, (list, tuple)):
            self.fail(path, "type", f"expected an array, got {_describe(value)}")
        if "maxLength" in definition and len(value) > definition["maxLength"]:
            self.limit(path, "maxLength", f"{len(value)} items; at most {definition['maxLength']} allowed")
        if "minLength" in definition and len(value) < definition["minLength"]:
            self.limit(path, "minLength", f"{len(value)} items; at least {definition['minLength']} required")
        items = definition.get("items")
        if items:
            for index, item in enumerate(value):
                self.check(items, item, f"{path}[{index}]", context)

    def _check_ref(self, definition, value, path, context, key) -> None:
        self.check_ref(definition["ref"], value, path, context)

    def _check_union(self, definition, value, path, context, key) -> None:
        if not isinstance(value, dict):
            self.fail(path, "type", f"expected an object with a \"$type\", got {_describe(value)}")
        member = value.get("$type")
        if not isinstance(member, str) or not member:
            self.fail(path + ".$type", "$type", "a union member must say what it is with \"$type\"")
        member_ref = member if "#" in member else f"{member}#main"
        refs = [_full_ref(ref, context) for ref in definition.get("refs", ())]
        if member_ref in refs:
            self.check_ref(member_ref, value, path, context)
            return
        if definition.get("closed"):
            allowed = ", ".join(ref.removesuffix("#main") for ref in refs)
            self.fail(path + ".$type", "closed", f"{member!r} is not one of the allowed types: {allowed}")
        # Open union: a member we know (a plugin registered its lexicon) is
        # still checked; an unknown one is passed through for its owner to read.
        if find_definition(member_ref) is not None:
            self.check_ref(member_ref, value, path, context)

    def _check_unknown(self, definition, value, path, context, key) -> None:
        if not isinstance(value, dict):
            self.deviate(path, "type", f"an 'unknown' field holds an object, got {_describe(value)}")
        self._check_data(value, path)

    def _check_data(self, value: Any, path: str) -> None:
        """Free-form data must still fit the ATProto data model: no floats, string keys."""
        if isinstance(value, float):
            if value.is_integer():
                self.deviate(path, "float", f"{value!r} is a float; records hold integers only")
            else:
                self.fail(path, "float", f"{value!r}: records cannot hold floats (the ATProto data model has "
                          "integers only); store it as a string or scale it to an integer")
        elif isinstance(value, dict):
            for name, item in value.items():
                if not isinstance(name, str):
                    self.fail(path, "type", f"object keys are strings, got {_describe(name)}")
                self._check_data(item, f"{path}.{name}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self._check_data(item, f"{path}[{index}]")

    # --- scalars ------------------------------------------------------------

    def _check_string(self, definition, value, path, context, key) -> None:
        if not isinstance(value, str):
            self.fail(path, "type", f"expected a string, got {_describe(value)}")
        if "const" in definition and value != definition["const"]:
            self.fail(path, "const", f"must be {definition['const']!r}, got {value!r}")
        if "enum" in definition and value not in definition["enum"]:
            self.fail(path, "enum", f"{value!r} is not one of {definition['enum']}")
        # knownValues is an open set: any other value is legal.
        max_bytes = definition.get("maxLength")
        min_bytes = definition.get("minLength")
        if max_bytes is not None or min_bytes is not None:
            size = len(value.encode("utf-8"))
            if max_bytes is not None and size > max_bytes:
                self.limit(path, "maxLength", f"{size} bytes of UTF-8; at most {max_bytes} allowed")
            if min_bytes is not None and size < min_bytes:
                self.limit(path, "minLength", f"{size} bytes of UTF-8; at least {min_bytes} required")
        max_graphemes = definition.get("maxGraphemes")
        min_graphemes = definition.get("minGraphemes")
        if max_graphemes is not None or min_graphemes is not None:
            graphemes = count_graphemes(value)
            if max_graphemes is not None and graphemes > max_graphemes:
                self.limit(path, "maxGraphemes", f"{graphemes} characters; at most {max_graphemes} allowed")
            if min_graphemes is not None and graphemes < min_graphemes:
                self.limit(path, "minGraphemes", f"{graphemes} characters; at least {min_graphemes} required")
        fmt = definition.get("format")
        if fmt in FORMATS:
            problem = FORMATS[fmt](value)
            if problem and fmt == "datetime" and not self.strict and strict_datetime(value) is not None:
                # Lowercase t / z: RFC 3339, the same instant, only not the ATProto spelling.
                self.deviate(
                    path, f"format:{fmt}",
                    f"{value[:200]!r} spells its 't' or 'z' in lowercase; read as {strict_datetime(value)!r}",
                )
            elif problem:
                self.fail(path, f"format:{fmt}", f"{value[:200]!r}: {problem}")

    def _check_integer(self, definition, value, path, context, key) -> None:
        if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
            self.deviate(path, "type", f"{value!r} is a float; integers are written without a fraction")
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, "type", f"expected an integer, got {_describe(value)}")
        if "const" in definition and value != definition["const"]:
            self.fail(path, "const", f"must be {definition['const']}, got {value}")
        if "enum" in definition and value not in definition["enum"]:
            self.fail(path, "enum", f"{value} is not one of {definition['enum']}")
        if "minimum" in definition and value < definition["minimum"]:
            self.limit(path, "minimum", f"{value} is below the minimum {definition['minimum']}")
        if "maximum" in definition and value > definition["maximum"]:
            self.limit(path, "maximum", f"{value} is above the maximum {definition['maximum']}")

    def _check_boolean(self, definition, value, path, context, key) -> None:
        if not isinstance(value, bool):
            self.fail(path, "type", f"expected a boolean, got {_describe(value)}")
        if "const" in definition and value != definition["const"]:
            self.fail(path, "const", f"must be {definition['const']}, got {value}")

    def _check_token(self, definition, value, path, context, key) -> None:
        if value != key.removesuffix("#main"):
            self.fail(path, "const", f"expected the token {key!r}, got {value!r}")

    def _check_bytes(self, definition, value, path, context, key) -> None:
        data = decode_bytes(value)
        if data is None:
            if isinstance(value, (dict, list)) and "$bytes" not in value:
                # Seen in the wild: entry metadata written as a JSON object
                # instead of msgpack bytes. The content is all there.
                self.deviate(path, "bytes", "a JSON value where the lexicon says bytes ({\"$bytes\": base64})")
                return
            if isinstance(value, str):
                self.fail(path, "bytes", "bytes are written as {\"$bytes\": \"<base64>\"}, not a bare string")
            self.fail(path, "bytes", f"expected bytes ({{\"$bytes\": base64}}), got {_describe(value)}")
        if "maxLength" in definition and len(data) > definition["maxLength"]:
            self.limit(path, "maxLength", f"{len(data)} bytes; at most {definition['maxLength']} allowed")
        if "minLength" in definition and len(data) < definition["minLength"]:
            self.limit(path, "minLength", f"{len(data)} bytes; at least {definition['minLength']} required")

    def _check_cid_link(self, definition, value, path, context, key) -> None:
        if not (isinstance(value, dict) and set(value) == {"$link"} and isinstance(value["$link"], str)):
            self.fail(path, "cid-link", f"expected {{\"$link\": cid}}, got {_describe(value)}")
        problem = FORMATS["cid"](value["$link"])
        if problem:
            self.fail(path + ".$link", "format:cid", problem)

    def _check_blob(self, definition, value, path, context, key) -> None:
        if not isinstance(value, dict):
            self.fail(path, "blob", f"expected a blob reference object, got {_describe(value)}")
        if value.get("$type") == "blob":
            ref = value.get("ref")
            if not (isinstance(ref, dict) and isinstance(ref.get("$link"), str)):
                self.fail(path + ".ref", "blob", "a blob's ref is {\"$link\": cid}")
            problem = FORMATS["cid"](ref["$link"])
            if problem:
                self.fail(path + ".ref.$link", "format:cid", problem)
            if not isinstance(value.get("mimeType"), str) or not value["mimeType"]:
                self.fail(path + ".mimeType", "blob", "a blob names its mimeType")
            size = value.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                self.fail(path + ".size", "blob", "a blob gives its size in bytes as a non-negative integer")
        elif isinstance(value.get("cid"), str) and isinstance(value.get("mimeType"), str):
            # The legacy blob form, still found in old records: same content,
            # without the size.
            problem = FORMATS["cid"](value["cid"])
            if problem:
                self.fail(path + ".cid", "format:cid", problem)
            self.deviate(path, "blob", "legacy blob {cid, mimeType}; write {\"$type\": \"blob\", \"ref\", \"mimeType\", \"size\"}")
            size = None
        else:
            self.fail(path, "blob", "expected {\"$type\": \"blob\", \"ref\": {\"$link\": cid}, \"mimeType\", \"size\"}")
        accept = definition.get("accept")
        if accept and not _mime_accepted(value["mimeType"], accept):
            self.deviate(path + ".mimeType", "accept", f"{value['mimeType']!r} is not one of {accept}")
        max_size = definition.get("maxSize")
        if max_size is not None and size is not None and size > max_size:
            self.limit(path + ".size", "maxSize", f"{size} bytes; at most {max_size} allowed")


def _json_schema_envelope(value: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Some clients wrap the JSON Schema as {"draft": "draft-07", "content": {...}}."""
    content = value.get("content")
    if "properties" not in value and isinstance(content, dict) and "properties" in content:
        unwrapped = {**content}
        unwrapped.setdefault("$schema", "http://json-schema.org/draft-07/schema#")
        if "arrayFormatVersions" in value:
            unwrapped.setdefault("arrayFormatVersions", value["arrayFormatVersions"])
        return unwrapped, "JSON Schema wrapped in {draft, content}; the schema fields belong at the member's top level"
    return None


_TOLERATED = {
    "science.alt.dataset.schema#jsonSchemaFormat": _json_schema_envelope,
}


# --- compiled validators ----------------------------------------------------------------
#
# The walk above reads each definition again for every value (its type, its rules, its refs
# resolved by name). A compiled validator reads a definition once: each node becomes a
# function ``(run, value, path)`` that accepts at once a value plainly within its rules and
# hands anything else (a missing field, a wrong type, a limit broken, a tolerated deviation,
# an unknown union member) to the walk above, for that node and what it holds. So every error
# and warning is the walk's own, with the same message, path and rule, in the same order.

_Compiled = Any  # Callable[[Validation, Any, str], None]


def _interpreted(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    def check(run: Validation, value: Any, path: str) -> None:
        run.check(definition, value, path, context, key)

    return check


_MAX_PASSED = 1024


def _compile_string(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    if "const" in definition or "enum" in definition or "minGraphemes" in definition:
        return _interpreted(definition, context, key)
    max_bytes = definition.get("maxLength")
    min_bytes = definition.get("minLength")
    max_graphemes = definition.get("maxGraphemes")
    checker = FORMATS.get(definition.get("format"))
    slow = _interpreted(definition, context, key)
    # Values that passed the format check: a format is a function of the text alone, and records
    # repeat many (the schema an entry names, its storage's host). Bounded: strangers write them.
    passed: set[str] = set()

    def check(run: Validation, value: Any, path: str) -> None:
        if value.__class__ is not str:
            return slow(run, value, path)
        length = len(value)
        if max_bytes is not None and length * 4 > max_bytes and (
            length > max_bytes or (not value.isascii() and len(value.encode("utf-8")) > max_bytes)
        ):
            return slow(run, value, path)
        if min_bytes is not None and length < min_bytes:
            return slow(run, value, path)
        if max_graphemes is not None and length > max_graphemes:  # never fewer characters than graphemes
            return slow(run, value, path)
        if checker is not None and value not in passed:
            if checker(value) is not None:
                return slow(run, value, path)
            if len(passed) >= _MAX_PASSED:
                passed.clear()
            passed.add(value)

    return check


def _compile_integer(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    if "const" in definition or "enum" in definition:
        return _interpreted(definition, context, key)
    minimum, maximum = definition.get("minimum"), definition.get("maximum")
    slow = _interpreted(definition, context, key)

    def check(run: Validation, value: Any, path: str) -> None:
        if value.__class__ is not int or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum
        ):
            slow(run, value, path)

    return check


def _compile_object(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    slow = _interpreted(definition, context, key)
    if key in _TOLERATED:
        return slow  # a tolerated layout is adapted by the walk
    required = tuple(definition.get("required", ()))
    properties = [(name, compile_definition(prop, context, "")) for name, prop in definition.get("properties", {}).items()]

    def check(run: Validation, value: Any, path: str) -> None:
        if value.__class__ is not dict:
            return slow(run, value, path)
        for name in required:
            if name not in value:
                return slow(run, value, path)
        checks = []
        for name, compiled in properties:
            if name in value:
                item = value[name]
                if item is None:
                    return slow(run, value, path)
                checks.append((compiled, item, name))
        for compiled, item, name in checks:
            compiled(run, item, f"{path}.{name}")

    return check


def _compile_record(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    slow = _interpreted(definition, context, key)
    inner = compile_definition(definition["record"], context, key)

    def check(run: Validation, value: Any, path: str) -> None:
        if value.__class__ is not dict or value.get("$type") != context:
            return slow(run, value, path)
        inner(run, value, path)

    return check


def _compile_array(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    slow = _interpreted(definition, context, key)
    max_length, min_length = definition.get("maxLength"), definition.get("minLength")
    items = definition.get("items")
    item_check = compile_definition(items, context, "") if items else None

    def check(run: Validation, value: Any, path: str) -> None:
        if value.__class__ is not list and value.__class__ is not tuple:
            return slow(run, value, path)
        if (max_length is not None and len(value) > max_length) or (min_length is not None and len(value) < min_length):
            return slow(run, value, path)
        if item_check is not None:
            for index, item in enumerate(value):
                item_check(run, item, f"{path}[{index}]")

    return check


def _compile_ref(ref: str, context: str) -> _Compiled:
    def slow(run: Validation, value: Any, path: str) -> None:
        run.check_ref(ref, value, path, context)

    compiled: list[Any] = []  # (the definition found, its compiled check), on first use: refs may recur

    def check(run: Validation, value: Any, path: str) -> None:
        found = find_definition(ref, context)
        if found is None:
            return slow(run, value, path)
        if not compiled or compiled[0] is not found:  # first use, or a lexicon registered or removed since
            compiled[:] = [found, compile_definition(found[1], found[0], _full_ref(ref, context))]
        compiled[1](run, value, path)

    return check


def _compile_union(definition: dict[str, Any], context: str, key: str) -> _Compiled:
    slow = _interpreted(definition, context, key)
    members = {_full_ref(ref, context): None for ref in definition.get("refs", ())}

    def check(run: Validation, value: Any, path: str) -> None:
        member = value.get("$type") if value.__class__ is dict else None
        if member.__class__ is not str or not member:
            return slow(run, value, path)
        member_ref = member if "#" in member else f"{member}#main"
        if member_ref not in members:
            return slow(run, value, path)
        compiled = members[member_ref]
        if compiled is None:
            compiled = members[member_ref] = _compile_ref(member_ref, context)
        compiled(run, value, path)

    return check


_COMPILERS = {
    "string": _compile_string,
    "integer": _compile_integer,
    "object": _compile_object,
    "record": _compile_record,
    "array": _compile_array,
    "union": _compile_union,
}
_compiled_cache: dict[tuple[int, str, str], tuple[dict[str, Any], _Compiled]] = {}


def compile_definition(definition: dict[str, Any], context: str, key: str = "") -> _Compiled:
    """A function ``(run, value, path)`` that checks ``value`` against ``definition`` (of lexicon
    ``context``; ``key`` its ``nsid#name`` when it is a named one) as :meth:`Validation.check`
    does, raising and warning exactly as it would. Compiled once per definition."""
    cache_key = (id(definition), context, key)
    cached = _compiled_cache.get(cache_key)
    if cached is not None and cached[0] is definition:
        return cached[1]
    kind = definition.get("type")
    if kind == "ref" and isinstance(definition.get("ref"), str):
        compiled = _compile_ref(definition["ref"], context)
    elif kind in _COMPILERS:
        compiled = _COMPILERS[kind](definition, context, key)
    else:
        compiled = _interpreted(definition, context, key)
    _compiled_cache[cache_key] = (definition, compiled)  # the definition kept: its id stays its own
    return compiled
