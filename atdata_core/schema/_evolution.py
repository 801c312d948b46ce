"""Schema evolution between records: whether a class reads a schema, what a new version changes,
and whether its version number says so (DESIGN D5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atdata_core.errors import IncompatibleSchema
from atdata_core.sample import sample_fields
from atdata_core.schema._compat import (
    ChangeKind,
    SchemaChange,
    classify_changes,
    compare_fields,
    compare_schemas,
    field_mismatches,
)
from atdata_core.schema._record import check_layout, format_for_record, schema_body

__all__ = ["check_compatible", "check_version_bump", "classify_change", "diff_schemas", "schema_changes"]


def check_compatible(cls: type, record: Mapping[str, Any]) -> None:
    """Raise :class:`~atdata_core.errors.IncompatibleSchema` unless ``cls`` can read the record's samples.

    The error lists every mismatch (a missing required field, a type or dtype
    mismatch...) and carries them as ``err.mismatches``. Extra optional fields
    in the class are fine.
    """
    check_layout(record)
    fmt = format_for_record(record)
    problems = field_mismatches(sample_fields(cls), fmt.fields_of(schema_body(record)))
    if problems:
        label = f"{record.get('name')!s} {record.get('version')!s}".strip()
        lines = "\n".join(f"  - {problem}" for problem in problems)
        err = IncompatibleSchema(
            f"{cls.__name__} cannot read samples of schema {label}:\n{lines}\n"
            "Fix the class, or load without a class to get one built from the schema."
        )
        err.mismatches = problems  # type: ignore[attr-defined]
        raise err


def schema_changes(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> list[SchemaChange]:
    """Every change from one schema record to the next, each with its semver kind.

    Every schema format gets the same checks (:func:`compare_schemas`); a
    change of format is major, and the fields are compared across formats.
    """
    old_format, new_format = format_for_record(old_record), format_for_record(new_record)
    old_body, new_body = schema_body(old_record), schema_body(new_record)
    changes: list[SchemaChange] = []
    if type(old_format) is not type(new_format) or old_record.get("schemaType") != new_record.get("schemaType"):
        changes.append(SchemaChange(
            "major", f"schema format {old_record.get('schemaType')!r} -> {new_record.get('schemaType')!r}"
        ))
        changes.extend(compare_fields(old_format.fields_of(old_body), new_format.fields_of(new_body)))
        return changes
    changes.extend(compare_schemas(old_format, old_body, new_body))
    for key in ("name", "description"):
        if old_record.get(key) != new_record.get(key):
            changes.append(SchemaChange("patch", f"record {key} changed"))
    if (old_record.get("metadata") or {}) != (new_record.get("metadata") or {}):
        changes.append(SchemaChange("patch", "record metadata changed (license, tags...)"))
    return changes


def classify_change(old_record: Mapping[str, Any], new_record: Mapping[str, Any]) -> ChangeKind:
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
