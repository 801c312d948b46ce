"""Schemas: sample classes as ``science.alt.dataset.schema`` records, and back.

::

    from atdata_core.schema import schema_record, sample_type_from_record, check_version_bump

    record = schema_record(ImageSample, name="com.example.image", version="1.0.0")
    Rebuilt = sample_type_from_record(record)      # a working sample class, no generated code
    check_version_bump(old_record, new_record)     # refuses a breaking change under a minor bump

The record's ``schemaType`` and ``schema`` union ``$type`` choose a schema
format through the plugin registry (DESIGN D2); ``jsonSchema`` is built in.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from atdata_core.errors import IncompatibleSchema, MissingImplementation, SchemaError, UnknownSchemaFormat
from atdata_core.schema._codegen import generate_python
from atdata_core.schema._compat import Change, classify_changes, compare_fields, field_mismatches
from atdata_core.schema._jsonschema import (
    DRAFT_07,
    NDARRAY_SHIM_VERSION,
    SCHEMA_TYPE,
    UNION_TYPE,
    JsonSchemaFormat,
    class_name_for,
    ndarray_ref,
)

__all__ = [
    "DRAFT_07",
    "JSON_SCHEMA_TYPE",
    "JSON_SCHEMA_UNION_TYPE",
    "LAYOUT_VERSION",
    "NDARRAY_SHIM_VERSION",
    "SCHEMA_NSID",
    "Change",
    "JsonSchemaFormat",
    "check_compatible",
    "check_version_bump",
    "classify_change",
    "clear_type_cache",
    "diff_schemas",
    "format_for_record",
    "generate_python",
    "ndarray_ref",
    "sample_type_from_record",
    "schema_changes",
    "schema_record",
]

SCHEMA_NSID = "science.alt.dataset.schema"
JSON_SCHEMA_TYPE = SCHEMA_TYPE
JSON_SCHEMA_UNION_TYPE = UNION_TYPE
#: The ``atdataSchemaVersion`` this library writes and the highest it reads.
LAYOUT_VERSION = 1

_cache: dict[tuple[str, str], type] = {}
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------- records


def schema_record(
    cls: type,
    *,
    name: str,
    version: str,
    description: str | None = None,
    license: str | None = None,
    tags: Iterable[str] = (),
    format: str = SCHEMA_TYPE,
) -> dict[str, Any]:
    """A complete ``science.alt.dataset.schema`` record for a packable class, validated strictly.

    ``format`` is the ``schemaType`` (``"jsonSchema"``, or one a plugin adds).
    Raises :class:`~atdata_core.errors.ValidationError` for a record the
    lexicon refuses (a name over 100 characters, a version that is not a
    semver or carries ``+build`` metadata, ...).

    >>> record = schema_record(ImageSample, name="com.example.image", version="1.0.0")  # doctest: +SKIP
    """
    from atdata_core.errors import ValidationError
    from atdata_core.lexicon import validate_record
    from atdata_core.records import format_datetime, parse_version, utc_now

    parsed = parse_version(version)
    if parsed.build:
        raise ValidationError(
            f"version {version!r} carries build metadata ('+{parsed.build}'), which cannot appear in a "
            "record key; use a prerelease tag instead",
            path="$.version",
            rule="semver:build",
            nsid=SCHEMA_NSID,
        )
    try:
        fmt = _format(schema_type=format)
    except MissingImplementation as err:
        raise UnknownSchemaFormat(f"cannot write a {format!r} schema: {err}") from err
    record: dict[str, Any] = {
        "$type": SCHEMA_NSID,
        "name": name,
        "version": version,
        "schemaType": format,
        "schema": fmt.schema_from_type(cls),
        "atdataSchemaVersion": LAYOUT_VERSION,
        "createdAt": format_datetime(utc_now()),
    }
    if description:
        record["description"] = description
    tags = [str(tag) for tag in tags]
    if license or tags:
        metadata: dict[str, Any] = {}
        if license:
            metadata["license"] = license
        if tags:
            metadata["tags"] = tags
        record["metadata"] = metadata
    validate_record(record, SCHEMA_NSID)
    return record


def format_for_record(record: Mapping[str, Any]) -> Any:
    """The schema format that reads ``record``: by its ``schema`` member's ``$type``, else its ``schemaType``.

    Raises :class:`~atdata_core.errors.UnknownSchemaFormat` naming the plugin
    to install when nothing installed understands it.
    """
    if not isinstance(record, Mapping):
        raise SchemaError(f"a schema record is an object, got {type(record).__name__}")
    body = record.get("schema")
    union_type = body.get("$type") if isinstance(body, Mapping) else None
    schema_type = record.get("schemaType")
    if not isinstance(union_type, str) and not isinstance(schema_type, str):
        raise SchemaError("the schema record has neither a schemaType nor a schema with a $type")
    errors: list[str] = []
    for key, value in (("union_type", union_type), ("schema_type", schema_type)):
        if not isinstance(value, str):
            continue
        try:
            return _format(**{key: value})
        except MissingImplementation as err:
            errors.append(str(err))
    # Prefer the message that names a distribution to install.
    reason = next((e for e in errors if "pip install" in e), errors[-1])
    raise UnknownSchemaFormat(
        f"no installed schema format reads this record (schemaType {schema_type!r}, schema $type "
        f"{union_type!r}): {reason}"
    )


def sample_type_from_record(record: Mapping[str, Any], *, name: str | None = None) -> type:
    """A packable class for the samples a schema record describes, built at run time.

    The class is named ``name``, else after the record's ``name``
    (``"com.example.image"`` gives ``Image``). The same schema body and name
    give the same class object every time, so loading a dataset twice yields
    samples of one type.
    """
    layout = record.get("atdataSchemaVersion", 1) if isinstance(record, Mapping) else 1
    if isinstance(layout, int) and layout > LAYOUT_VERSION:
        raise SchemaError(
            f"this schema record has layout version {layout} (atdataSchemaVersion); this atdata-core reads "
            f"up to {LAYOUT_VERSION}. Upgrade atdata-core to read it"
        )
    fmt = format_for_record(record)
    if not isinstance(record.get("schema"), Mapping):
        raise SchemaError("the schema record has no 'schema' object to build a class from")
    class_name = class_name_for(name or str(record.get("name") or ""), fallback="Sample")
    key = (_body_hash(record), class_name)
    with _cache_lock:
        cls = _cache.get(key)
    if cls is not None:
        return cls
    cls = fmt.type_from_schema(record["schema"], name=class_name)
    description = record.get("description")
    if isinstance(description, str) and description:
        cls.__doc__ = description
    with _cache_lock:
        # Two threads may build it at once; everyone gets the first one stored.
        stored = _cache.setdefault(key, cls)
    if stored is cls:
        _leave_rebuild_recipes(cls, dict(record), name)
    return stored


def _leave_rebuild_recipes(cls: type, record: dict[str, Any], name: str | None) -> None:
    """Let generated classes (and the nested ones inside them) pickle as "rebuild from this record"."""
    from atdata_core.sample import set_rebuild_recipe

    set_rebuild_recipe(cls, _rebuild_sample_type, record, name)
    for path, nested in _nested_classes(cls, ()):
        set_rebuild_recipe(nested, _nested_sample_type, record, name, path)


def _nested_classes(cls: type, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], type]]:
    from atdata_core.sample import sample_fields

    found = []
    for field in sample_fields(cls):
        inner = _unwrap(field.type)
        if inner is not None:
            found.append(((*path, field.name), inner))
            found.extend(_nested_classes(inner, (*path, field.name)))
    return found


def _unwrap(field_type: Any) -> type | None:
    from atdata_core.sample import DictOf, ListOf, Nested, Optional

    while isinstance(field_type, (Optional, ListOf, DictOf)):
        field_type = getattr(field_type, "inner", None) or getattr(field_type, "item", None) or field_type.value
    return field_type.cls if isinstance(field_type, Nested) else None


def _rebuild_sample_type(record: dict[str, Any], name: str | None) -> type:
    return sample_type_from_record(record, name=name)


def _nested_sample_type(record: dict[str, Any], name: str | None, path: tuple[str, ...]) -> type:
    """The nested class at ``path`` inside the class built from ``record`` (used when unpickling)."""
    cls = sample_type_from_record(record, name=name)
    for part in path:
        cls = dict(_nested_classes(cls, ()))[(part,)]
    return cls


def clear_type_cache() -> None:
    """Forget the classes :func:`sample_type_from_record` built."""
    with _cache_lock:
        _cache.clear()


def _body_hash(record: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"schemaType": record.get("schemaType"), "schema": record.get("schema")},
        sort_keys=True,
        separators=(",", ":"),
        default=repr,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _format(*, schema_type: str | None = None, union_type: str | None = None) -> Any:
    from atdata_core.plugins import schema_format

    if schema_type is not None:
        return schema_format(schema_type)
    return schema_format(union_type=union_type)


# --------------------------------------------------------------------------- compatibility


def check_compatible(cls: type, record: Mapping[str, Any]) -> None:
    """Raise :class:`~atdata_core.errors.IncompatibleSchema` unless ``cls`` can read the record's samples.

    The error lists every mismatch (a missing required field, a type or dtype
    mismatch...) and carries them as ``err.mismatches``. Extra optional fields
    in the class are fine.
    """
    from atdata_core.sample import sample_fields

    schema_cls = sample_type_from_record(record)
    problems = field_mismatches(sample_fields(cls), sample_fields(schema_cls))
    if problems:
        label = f"{record.get('name')!s} {record.get('version')!s}".strip()
        lines = "\n".join(f"  - {problem}" for problem in problems)
        err = IncompatibleSchema(
            f"{cls.__name__} cannot read samples of schema {label}:\n{lines}\n"
            "Fix the class, or load without a class to get one built from the schema."
        )
        err.mismatches = problems  # type: ignore[attr-defined]
        raise err


def schema_changes(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> list[Change]:
    """Every change from one schema record to the next, each with its semver kind."""
    changes: list[Change] = []
    old_format, new_format = format_for_record(old_record), format_for_record(new_record)
    if type(old_format) is not type(new_format) or old_record.get("schemaType") != new_record.get("schemaType"):
        changes.append(
            Change("major", f"schema format {old_record.get('schemaType')!r} -> {new_record.get('schemaType')!r}")
        )
        changes.extend(_field_changes(old_record, new_record))
        return changes
    old_body, new_body = old_record.get("schema"), new_record.get("schema")
    if isinstance(old_format, JsonSchemaFormat):
        from atdata_core.schema._compat import compare_bodies

        old_format.validate_schema(old_body)
        old_format.validate_schema(new_body)
        changes.extend(compare_bodies(old_body, new_body))
    else:
        changes.extend(_field_changes(old_record, new_record))
        if old_format.classify_change(old_body, new_body) == "major" and classify_changes(changes) != "major":
            changes.append(Change("major", "the schema format reports a breaking change"))
    for key in ("name", "description"):
        if old_record.get(key) != new_record.get(key):
            changes.append(Change("patch", f"record {key} changed"))
    if (old_record.get("metadata") or {}) != (new_record.get("metadata") or {}):
        changes.append(Change("patch", "record metadata changed (license, tags...)"))
    return changes


def _field_changes(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> list[Change]:
    from atdata_core.sample import sample_fields

    old_cls = sample_type_from_record(old_record)
    new_cls = sample_type_from_record(new_record)
    return compare_fields(sample_fields(old_cls), sample_fields(new_cls))


def classify_change(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> str:
    """``"patch"`` (documentation only), ``"minor"`` (only optional fields added) or ``"major"``."""
    return classify_changes(schema_changes(old_record, new_record))


def diff_schemas(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable changes from ``old`` to ``new`` (schema records), for ``atdata schema diff``.

    >>> diff_schemas(v1, v2)  # doctest: +SKIP
    ["minor: added optional field 'caption' (str)", "major: field 'image': dtype uint8 -> float32"]
    """
    return [str(change) for change in schema_changes(old, new)]


def check_version_bump(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> str:
    """Refuse a new schema version whose number understates its change; return the change's kind.

    A breaking change needs a major bump, an added optional field at least a
    minor one. A prerelease (``2.0.0-rc.1``) promises nothing, so any change
    to or from a prerelease of the same release is accepted.

    Raises :class:`~atdata_core.errors.IncompatibleSchema` listing the changes.
    """
    from atdata_core.errors import ValidationError
    from atdata_core.records import parse_version, version_bump

    old_version, new_version = str(old_record.get("version")), str(new_record.get("version"))
    try:
        bump = version_bump(old_version, new_version)
    except ValidationError as err:
        raise IncompatibleSchema(f"cannot compare versions {old_version!r} and {new_version!r}: {err}") from err
    if bump is None:
        raise IncompatibleSchema(
            f"version {new_version} is not above {old_version}: publish the new schema under a higher version"
        )
    changes = schema_changes(old_record, new_record)
    kind = classify_changes(changes)
    if bump == "prerelease" or parse_version(new_version).is_prerelease:
        return kind
    needed = {"patch": 0, "minor": 1, "major": 2}
    if needed[bump] < needed[kind]:
        listed = "\n".join(f"  - {change}" for change in changes if change.kind == kind)
        target = _next_version(old_version, kind)
        raise IncompatibleSchema(
            f"{old_version} -> {new_version} is a {bump} bump, but the schema changed in a {kind} way:\n"
            f"{listed}\nPublish it as {target} (or later), or undo the change."
        )
    return kind


def _next_version(version: str, kind: str) -> str:
    from atdata_core.records import parse_version

    v = parse_version(version)
    if kind == "major":
        return f"{v.major + 1}.0.0"
    if kind == "minor":
        return f"{v.major}.{v.minor + 1}.0"
    return f"{v.major}.{v.minor}.{v.patch + 1}"
