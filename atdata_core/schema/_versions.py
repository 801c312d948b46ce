"""The versions of one schema id, and what changed from each to the next (DESIGN D5).

A schema is identified by (repository DID, schema id, version). The versions
of an id are the repository's schema records whose key is
``{schemaId}:{version}``, or, for records other clients wrote under TID keys,
whose ``name`` and ``version`` say so. They are ordered by semver precedence
(a prerelease below its release), never by string::

    history = version_history(schema_versions(provider, did, "com.example.image"))
    for step in history:
        print(step.version, step.kind)      # 1.0.0 None, 1.1.0 minor, 2.0.0 major

A class generated from a schema (``atdata codegen``) says which version it
stands for in its ``__atdata_schema__``; :func:`schema_identity` reads that,
or the record a class was built from at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from atdata_core._nsids import SCHEMA_NSID

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.plugins import IndexedRecord, IndexProvider

__all__ = ["SchemaIdentity", "VersionStep", "schema_identity", "schema_versions", "version_history", "version_of"]


@attrs.frozen
class SchemaIdentity:
    """A schema version: its id (``com.example.image``), its version, and its record's URI when known."""

    schema_id: str
    version: str
    uri: str | None = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"{self.schema_id}@{self.version}"


def schema_identity(cls: Any) -> SchemaIdentity | None:
    """The schema version a sample class stands for, or None when it does not say.

    Read from the class's ``__atdata_schema__`` (``{"id": ..., "version": ...,
    "uri": ...}``, written by the code generator; you may set it on a class of
    your own), else from the record a class built by
    :func:`~atdata_core.schema.sample_type_from_record` came from.
    """
    declared = getattr(cls, "__atdata_schema__", None) if isinstance(cls, type) else None
    if isinstance(declared, Mapping):
        schema_id, version, uri = declared.get("id"), declared.get("version"), declared.get("uri")
        if isinstance(schema_id, str) and isinstance(version, str):
            return SchemaIdentity(schema_id, version, uri if isinstance(uri, str) else None)
    recipe = cls.__dict__.get("__atdata_rebuild__") if isinstance(cls, type) else None
    if isinstance(recipe, tuple) and len(recipe) == 2 and isinstance(recipe[1], tuple) and recipe[1]:
        record = recipe[1][0]
        if isinstance(record, Mapping) and len(recipe[1]) == 2:  # (record, name): the top class, not a nested one
            schema_id, version = record.get("name"), record.get("version")
            if isinstance(schema_id, str) and isinstance(version, str):
                return SchemaIdentity(schema_id, version)
    return None


def version_of(found: IndexedRecord) -> tuple[str, str] | None:
    """(schema id, version) of a listed schema record: by its ``{id}:{version}`` key, else its fields."""
    from atdata_core.records import parse_schema_rkey

    parsed = parse_schema_rkey(str(found.uri).rsplit("/", 1)[-1])
    if parsed is not None:
        return parsed
    value = found.value if isinstance(found.value, Mapping) else {}
    name, version = value.get("name"), value.get("version")
    if isinstance(name, str) and isinstance(version, str):
        return name, version
    return None


def schema_versions(provider: IndexProvider, repo: str, schema_id: str) -> list[IndexedRecord]:
    """Every version of ``schema_id`` in ``repo``, lowest first (semver precedence).

    Records whose version is not a semver are left out; when two records
    claim one version, the one keyed ``{schemaId}:{version}`` wins.
    """
    from atdata_core.errors import ValidationError
    from atdata_core.records import parse_schema_rkey, parse_version

    chosen: dict[Any, tuple[bool, IndexedRecord]] = {}
    for found in provider.list_records(SCHEMA_NSID, repo=repo):
        identity = version_of(found)
        if identity is None or identity[0] != schema_id:
            continue
        try:
            key = parse_version(identity[1])
        except ValidationError:
            continue
        keyed = parse_schema_rkey(str(found.uri).rsplit("/", 1)[-1]) is not None
        if key not in chosen or (keyed and not chosen[key][0]):
            chosen[key] = (keyed, found)
    return [chosen[key][1] for key in sorted(chosen)]


@attrs.frozen
class VersionStep:
    """One version of a schema id and how it changed from the version before it.

    ``kind`` is ``"patch"``, ``"minor"`` or ``"major"`` (None for the first
    version, or when the change could not be classified: ``note`` says why).
    ``understated`` is True when the version number promises less than the
    change is (a breaking change under a minor bump): records written by
    other clients are not checked when published.
    """

    version: str
    uri: str
    record: Mapping[str, Any] = attrs.field(repr=False)
    kind: str | None = None
    changes: tuple[str, ...] = ()
    understated: bool = False
    note: str | None = None


def version_history(records: Iterable[IndexedRecord]) -> list[VersionStep]:
    """Each version (in the order given, lowest first) with its change class against the one before."""
    from atdata_core.errors import AtdataError
    from atdata_core.records import parse_version, version_bump
    from atdata_core.schema._evolution import schema_changes
    from atdata_core.schema._compat import classify_changes

    steps: list[VersionStep] = []
    previous: IndexedRecord | None = None
    for found in records:
        value = dict(found.value)
        version = str(value.get("version"))
        if previous is None:
            steps.append(VersionStep(version, found.uri, value))
            previous = found
            continue
        before = dict(previous.value)
        try:
            changes = schema_changes(before, value)
            kind = classify_changes(changes)
        except AtdataError as err:
            steps.append(VersionStep(version, found.uri, value, note=f"cannot compare: {err}"))
            previous = found
            continue
        understated = False
        try:
            bump = version_bump(str(before.get("version")), version)
            if bump is not None and bump != "prerelease" and not parse_version(version).is_prerelease:
                order = {"patch": 0, "minor": 1, "major": 2}
                understated = order.get(bump, 2) < order[kind]
        except AtdataError:
            pass
        steps.append(VersionStep(version, found.uri, value, kind, tuple(str(c) for c in changes), understated))
        previous = found
    return steps
