"""Schema records: a sample class as a ``science.alt.dataset.schema`` record, and a class built from one.

The record's ``schema`` union member is written and read by the schema format
its ``$type`` (else its ``schemaType``) names, found through the plugin
registry (DESIGN D2). Classes built from records are cached by schema body and
name, and pickle as "rebuild from this record" so data-loader workers can
recreate them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from atdata_core._nsids import SCHEMA_NSID
from atdata_core.errors import MissingImplementation, SchemaError, UnknownSchemaFormat
from atdata_core.sample import DictOf, ListOf, Nested, Optional, sample_fields, set_rebuild_recipe
from atdata_core.schema._jsonschema import SCHEMA_TYPE
from atdata_core.schema._naming import class_name_for

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.plugins import SchemaFormat

__all__ = [
    "LAYOUT_VERSION",
    "check_layout",
    "clear_type_cache",
    "format_for_record",
    "sample_type_from_record",
    "schema_body",
    "schema_record",
]

#: The ``atdataSchemaVersion`` this library writes and the highest it reads.
LAYOUT_VERSION = 1

_cache: dict[tuple[str, str], type] = {}
_cache_lock = threading.Lock()


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


def format_for_record(record: Mapping[str, Any]) -> SchemaFormat:
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
    check_layout(record)
    fmt = format_for_record(record)
    body = schema_body(record)
    class_name = class_name_for(name or str(record.get("name") or ""), fallback="Sample")
    key = (_body_hash(record), class_name)
    with _cache_lock:
        cls = _cache.get(key)
    if cls is not None:
        return cls
    cls = fmt.type_from_schema(body, name=class_name)
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
    set_rebuild_recipe(cls, _rebuild_sample_type, record, name)
    for path, nested in _nested_classes(cls, ()):
        set_rebuild_recipe(nested, _nested_sample_type, record, name, path)


def _nested_classes(cls: type, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], type]]:
    found = []
    for field in sample_fields(cls):
        inner = _nested_class_of(field.type)
        if inner is not None:
            found.append(((*path, field.name), inner))
            found.extend(_nested_classes(inner, (*path, field.name)))
    return found


def _nested_class_of(field_type: Any) -> type | None:
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


def _format(*, schema_type: str | None = None, union_type: str | None = None) -> SchemaFormat:
    from atdata_core.plugins import schema_format

    if schema_type is not None:
        return schema_format(schema_type)
    return schema_format(union_type=union_type)


def schema_body(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record's ``schema`` union member, after checking this library can read the record's layout."""
    check_layout(record)
    body = record.get("schema")
    if not isinstance(body, Mapping):
        raise SchemaError("the schema record has no 'schema' object to build a class from")
    return body


def check_layout(record: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaError` unless ``record`` is a mapping of a layout version this library reads."""
    if not isinstance(record, Mapping):
        raise SchemaError(f"a schema record is an object, got {type(record).__name__}")
    layout = record.get("atdataSchemaVersion", 1)
    if isinstance(layout, int) and layout > LAYOUT_VERSION:
        raise SchemaError(
            f"this schema record has layout version {layout} (atdataSchemaVersion); this atdata-core reads "
            f"up to {LAYOUT_VERSION}. Upgrade atdata-core to read it"
        )
