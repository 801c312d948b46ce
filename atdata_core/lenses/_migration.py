"""Schema evolution: loading a dataset written with one version of a schema into the class of another.

Versions of one schema id (DESIGN D5) are connected by *migration lenses*:
lenses whose source and target schemas are two versions of that id. When
:func:`atdata_core.load` is given a class that stands for another version of
the dataset's schema (its ``__atdata_schema__``, which generated code
carries; or, for a class that names no version but cannot read the data,
the highest version of the schema it can read), the shortest chain of
migration lenses from the dataset's version to the class's is found with the
lens graph and applied to every sample::

    images = atdata_core.load("@alice.example.com/photos", ImageV2_0_0)   # written as 1.0.0

Migration lenses come from, in this order of preference where two connect
the same versions:

1. lenses you pass (``load(..., lenses=[lens_or_at_uri])``): yours, run if
   installed;
2. lenses registered locally with ``@lens`` between classes that name their
   schema versions;
3. lens records published by the schema's own repository, then by the DIDs in
   ``[lens] trusted_dids``, then lens records anyone published that a trusted
   DID's ``lensVerification`` names: their code runs only when the lens
   executor's trust policy allows it (:mod:`atdata_core.executors`), decided
   before anything is imported, and only for the lenses on the path.

Each step's lens receives samples as its own source class (fields copied
from the class the data was read as, when they differ) and the last result
is turned into your class the same way. No path raises
:class:`~atdata_core.errors.NoMigrationPath` naming both versions and the
lenses that were found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from atdata_core._aturi import AtUri
from atdata_core._nsids import LENS_NSID, LENS_VERIFICATION_NSID, SCHEMA_NSID
from atdata_core.errors import (
    AmbiguousLens,
    AtdataError,
    IncompatibleSchema,
    LensError,
    LensExecutionRefused,
    NoLensPath,
    NoMigrationPath,
    SampleTypeError,
)
from atdata_core.lenses._graph import LensGraph, default_graph
from atdata_core.lenses._lens import Lens, type_name

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.plugins import IndexedRecord, IndexProvider
    from atdata_core.schema import SchemaIdentity

__all__ = ["Migration", "plan_migration", "retype"]

log = logging.getLogger("atdata_core.lenses")

# Where a migration lens came from; lower wins when two connect the same versions.
_EXPLICIT, _LOCAL, _OWNER, _TRUSTED = range(4)
_SOURCES = {_EXPLICIT: "passed by you", _LOCAL: "registered locally", _OWNER: "published by the schema's repository",
            _TRUSTED: "published by a DID you trust"}


@attrs.define
class _Edge:
    """One migration lens between two versions, not loaded yet when it is a record."""

    source: str
    target: str
    rank: int
    lens: Lens | None = None  # a Lens you passed or registered
    record: Any = None  # a PublishedLens or a lens record's at:// URI, loaded on the path only
    label: str = ""


class Migration:
    """The getter (and putter) of the lens from the class a dataset is read as to the class asked for."""

    def __init__(self, steps: Sequence[Lens], read_type: type, target: type):
        self.steps = tuple(steps)
        self.read_type = read_type
        self.target = target

    def get(self, sample: Any) -> Any:
        for step in self.steps:
            sample = step.get(retype(sample, step.source))
        return retype(sample, self.target)

    def put(self, view: Any, sample: Any) -> Any:
        sources = [sample]
        for step in self.steps[:-1]:
            sources.append(step.get(retype(sources[-1], step.source)))
        for step, source in zip(reversed(self.steps), reversed(sources)):
            view = step.put(retype(view, step.view), retype(source, step.source))
        return retype(view, self.read_type)

    def __repr__(self) -> str:
        return f"Migration({' >> '.join(step.name for step in self.steps)})"


def plan_migration(
    provider: IndexProvider,
    schema: IndexedRecord,
    sample_type: type,
    *,
    lenses: Iterable[Lens | str] = (),
    executor: Any = None,
    graph: LensGraph | None = None,
) -> Lens | None:
    """The lens from the class ``schema`` builds to ``sample_type``, or None when no migration is needed.

    None when ``sample_type`` reads the schema's samples as they are and no
    migration path leads from the schema's version to the version the class
    names. Raises :class:`~atdata_core.errors.IncompatibleSchema` (the class
    fits no version), :class:`~atdata_core.errors.NoMigrationPath`, or
    :class:`~atdata_core.errors.LensExecutionRefused` for a lens on the path
    that may not run.
    """
    from atdata_core.schema import check_compatible, schema_identity
    from atdata_core.schema._versions import version_of

    record = dict(schema.value)
    identity = version_of(schema)
    try:
        check_compatible(sample_type, record)
        mismatch: IncompatibleSchema | None = None
    except IncompatibleSchema as err:
        mismatch = err
    explicit = list(lenses)
    if identity is None:
        if mismatch is not None:
            raise mismatch
        return None
    schema_id, version = identity
    repo = AtUri.parse(schema.uri).did
    target = schema_identity(sample_type)
    if target is None or target.schema_id != schema_id:
        if mismatch is None:
            return None
        if target is not None:
            raise mismatch  # a class of another schema that does not fit
        target = _readable_version(provider, repo, schema_id, version, sample_type)
        if target is None:
            raise mismatch
    if target.version == version:
        if mismatch is not None:
            raise mismatch
        return None

    edges = _edges(provider, repo, schema_id, explicit, graph if graph is not None else default_graph())
    path = _shortest_path(edges, version, target.version)
    if path is None:
        if mismatch is None and not explicit:
            return None  # the class reads these samples as they are, and nothing says to migrate them
        raise NoMigrationPath(_no_path_message(schema_id, version, target.version, edges, mismatch))

    from atdata_core.schema import sample_type_from_record

    read_type = sample_type_from_record(record)
    steps = [_load(edge, provider, executor, f"migrating {schema_id} {version} -> {target.version}") for edge in path]
    migration = Migration(steps, read_type, sample_type)
    chain = " -> ".join([version, *(edge.target for edge in path)])
    lens = Lens(
        migration.get, migration.put if all(step.has_putter for step in steps) else None,
        source=read_type, view=sample_type, name=f"migrate {schema_id} {chain}",
        qualified_name=f"migrate {schema_id} {chain}",
    )
    lens.provenance = [f"{edge.source} -> {edge.target}: {edge.label}" for edge in path] + [
        f"{step.name}: {note}" for step in steps for note in step.provenance
    ]
    return lens


def _readable_version(
    provider: IndexProvider, repo: str, schema_id: str, version: str, sample_type: type
) -> SchemaIdentity | None:
    """The highest other version of the schema that ``sample_type`` reads as it is, or None."""
    from atdata_core.schema import SchemaIdentity, check_compatible, schema_versions

    for found in reversed(schema_versions(provider, repo, schema_id)):
        candidate = str(found.value.get("version"))
        if candidate == version:
            continue
        try:
            check_compatible(sample_type, dict(found.value))
        except AtdataError:
            continue
        return SchemaIdentity(schema_id, candidate, found.uri)
    return None


def _edges(provider: IndexProvider, repo: str, schema_id: str, explicit: list[Lens | str], graph: LensGraph) -> list[_Edge]:
    """Every migration lens between versions of ``schema_id`` that could be used, none of it loaded."""
    from atdata_core.lenses._published import published_lens, trusted_dids
    from atdata_core.schema import schema_identity

    edges: list[_Edge] = []
    for item in explicit:
        if isinstance(item, Lens):
            pair = _class_versions(item, schema_id, repo)
            if pair is None:
                raise LensError(
                    f"the lens {item.name} passed to migrate {schema_id} connects {type_name(item.source)} and "
                    f"{type_name(item.view)}, which do not both name a version of {schema_id} "
                    "(their __atdata_schema__; generated classes have it)"
                )
            edges.append(_Edge(*pair, _EXPLICIT, lens=item, label=f"lens {item.name} ({_SOURCES[_EXPLICIT]})"))
        elif isinstance(item, str):
            lens = published_lens(provider, item)
            pair = _record_versions(provider, lens.value, schema_id, repo)
            if pair is None:
                raise LensError(f"the lens {item} passed to migrate {schema_id} does not connect two of its versions")
            edges.append(_Edge(*pair, _EXPLICIT, record=lens, label=f"{lens.uri} ({_SOURCES[_EXPLICIT]})"))
        else:
            raise LensError(f"lenses= takes Lens objects or at:// URIs of lens records, got {item!r}")

    for item in graph.lenses():
        if len(item.steps) == 1 and schema_identity(item.source) is not None:
            pair = _class_versions(item, schema_id, repo)
            if pair is not None:
                edges.append(_Edge(*pair, _LOCAL, lens=item, label=f"lens {item.qualified_name} ({_SOURCES[_LOCAL]})"))

    repos = [(repo, _OWNER)] + [(did, _TRUSTED) for did in trusted_dids() if did != repo]
    newest: dict[tuple[str, str, str], tuple[Any, _Edge]] = {}
    for did, rank in repos:
        try:
            listed = provider.list_records(LENS_NSID, repo=did)
        except AtdataError as err:
            log.warning("migration lenses of %s could not be listed: %s", did, err)
            continue
        for found in listed:
            value = found.value if isinstance(found.value, Mapping) else {}
            pair = _record_versions(provider, value, schema_id, repo)
            if pair is None:
                continue
            # Read with its verifications only when it is on the path.
            edge = _Edge(*pair, rank, record=found.uri, label=f"{found.uri} ({_SOURCES[rank]})")
            # Of one repository's lenses for the same two versions, the newest is the one meant.
            key = (did, *pair)
            created = str(value.get("createdAt") or "")
            if key not in newest or created > newest[key][0]:
                newest[key] = (created, edge)
    edges += [edge for _, edge in newest.values()]

    # Lenses someone else published that a DID you trust verified: found through the verifications.
    listed = {edge.record for edge in edges if isinstance(edge.record, str)}
    for did in trusted_dids():
        try:
            verifications = provider.list_records(LENS_VERIFICATION_NSID, repo=did)
        except AtdataError as err:
            log.warning("lens verifications of %s could not be listed: %s", did, err)
            continue
        for item in verifications:
            target = item.value.get("lens") if isinstance(item.value, Mapping) else None
            if not isinstance(target, str) or target in listed:
                continue
            listed.add(target)
            try:
                found = provider.get_record(target)
            except AtdataError:
                continue
            value = found.value if isinstance(found.value, Mapping) else {}
            pair = _record_versions(provider, value, schema_id, repo) if value.get("$type", LENS_NSID) == LENS_NSID else None
            if pair is not None:
                edges.append(_Edge(*pair, _TRUSTED, record=found.uri, label=f"{found.uri} (verified by {did})"))
    return edges


def _class_versions(item: Lens, schema_id: str, repo: str) -> tuple[str, str] | None:
    """(source version, target version) of a lens between classes naming two versions of the schema, else None."""
    from atdata_core.schema import schema_identity

    pair = []
    for cls in (item.source, item.view):
        identity = schema_identity(cls)
        if identity is None or identity.schema_id != schema_id or not _same_repo(identity.uri, repo):
            return None
        pair.append(identity.version)
    return (pair[0], pair[1]) if pair[0] != pair[1] else None


def _same_repo(uri: str | None, repo: str) -> bool:
    """A class that names the record it came from must name one of this repository (one schema is one repo's)."""
    if uri is None:
        return True
    try:
        return AtUri.parse(uri).authority == repo
    except AtdataError:
        return False


def _record_versions(
    provider: IndexProvider, value: Mapping[str, Any], schema_id: str, repo: str
) -> tuple[str, str] | None:
    """(source version, target version) of a lens record between two versions of ``schema_id`` in ``repo``.

    A schema is (repository, id, version): a lens to a record of the same id in
    another repository migrates to a different schema, and is not one of these.
    """
    versions = []
    for key in ("sourceSchema", "targetSchema"):
        identity = _schema_ref_identity(provider, value.get(key), repo)
        if identity is None or identity[0] != schema_id:
            return None
        versions.append(identity[1])
    return (versions[0], versions[1]) if versions[0] != versions[1] else None


def _schema_ref_identity(provider: IndexProvider, ref: Any, repo: str) -> tuple[str, str] | None:
    from atdata_core.plugins import IndexedRecord
    from atdata_core.records import parse_schema_rkey
    from atdata_core.schema._versions import version_of

    if not isinstance(ref, str):
        return None
    try:
        uri = AtUri.parse(ref)
        did = uri.authority if uri.authority.startswith("did:") else provider.resolve_repo(uri.authority)
    except AtdataError:
        return None
    if uri.collection != SCHEMA_NSID or not uri.rkey or did != repo:
        return None
    parsed = parse_schema_rkey(uri.rkey)
    if parsed is not None:
        return parsed
    try:  # a schema record another client keyed by TID: its name and version say
        found = provider.get_record(str(uri.with_authority(did)))
    except AtdataError:
        return None
    return version_of(IndexedRecord(found.uri, found.value, found.cid))


def _shortest_path(edges: list[_Edge], source: str, target: str) -> list[_Edge] | None:
    """The edges of the shortest chain of versions, through the lens graph; the best-ranked lens per hop."""
    nodes: dict[str, _Version] = {}

    def node(version: str) -> _Version:
        return nodes.setdefault(version, _Version(version))

    graph = LensGraph()
    placeholders: dict[int, _Edge] = {}
    best: dict[tuple[str, str], Lens] = {}
    for edge in sorted(edges, key=lambda e: e.rank):
        placeholder = Lens(_unloaded, None, source=node(edge.source), view=node(edge.target), name=edge.label,
                           qualified_name=edge.label)
        placeholders[id(placeholder)] = edge
        graph.register(placeholder)
        best.setdefault((edge.source, edge.target), placeholder)
    for placeholder in best.values():
        graph.prefer(placeholder)
    try:
        found = graph.find_lens(node(source), node(target))
    except NoLensPath:
        return None
    except AmbiguousLens:
        # Two equally short chains of versions: take the one whose lenses rank best.
        return _best_ranked_path(edges, source, target)
    return [placeholders[id(step)] for step in found.steps]


def _best_ranked_path(edges: list[_Edge], source: str, target: str) -> list[_Edge] | None:
    """Of the shortest chains of versions, the one whose lenses rank best (yours, then local, then published)."""
    best_edges: dict[tuple[str, str], _Edge] = {}
    for edge in sorted(edges, key=lambda e: e.rank):
        best_edges.setdefault((edge.source, edge.target), edge)
    frontier: list[tuple[str, list[_Edge]]] = [(source, [])]
    visited = {source}
    while frontier:
        complete: list[list[_Edge]] = []
        following: list[tuple[str, list[_Edge]]] = []
        for version, path in frontier:
            for (a, b), edge in best_edges.items():
                if a != version:
                    continue
                if b == target:
                    complete.append([*path, edge])
                elif b not in visited:
                    following.append((b, [*path, edge]))
        if complete:
            return min(complete, key=lambda path: [edge.rank for edge in path])
        visited |= {version for version, _ in following}
        frontier = following
    return None


class _Version:
    """A node of the version graph: one version of the schema being migrated."""

    __slots__ = ("version",)

    def __init__(self, version: str):
        self.version = version

    def __repr__(self) -> str:
        return self.version


def _unloaded(sample: Any) -> Any:  # pragma: no cover - placeholders are never called
    raise LensError("a migration lens was used before it was loaded")


def _load(edge: _Edge, provider: IndexProvider, executor: Any, context: str) -> Lens:
    if edge.lens is not None:
        return edge.lens
    from atdata_core.lenses._published import load_published_lens, refused_in_context

    try:
        return load_published_lens(provider, edge.record, executor=executor, trust=edge.rank == _EXPLICIT)
    except LensExecutionRefused as err:
        raise refused_in_context(err, f"{context} needs {edge.source} -> {edge.target}") from err


def _no_path_message(schema_id: str, source: str, target: str, edges: list[_Edge], mismatch: Any) -> str:
    lines = [f"no migration path from {schema_id} {source} (the dataset's version) to {target} (the class's version)."]
    if edges:
        lines.append("  migration lenses found: " + "; ".join(f"{e.source} -> {e.target} ({e.label})" for e in edges[:8]))
    else:
        lines.append(f"  no migration lenses between versions of {schema_id} were found")
    if mismatch is not None:
        lines.append(f"  and the class cannot read {source} samples as they are: {mismatch}")
    lines.append(
        f"  Publish or register a lens from {source} towards {target} (atdata publish lens), pass one with "
        f"lenses=[...], or load with a class of {source}"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------- samples between classes


def retype(value: Any, cls: Any) -> Any:
    """``value`` as an instance of the packable class ``cls``: fields copied by name, nested samples too.

    A value already of ``cls``, or a ``cls`` that is not a packable class
    (``Any``, a plain type), is returned as it is. Fields ``cls`` does not have
    are dropped; a required field the value lacks raises
    :class:`~atdata_core.errors.SampleTypeError`.
    """
    from atdata_core.sample import is_packable, sample_fields

    if not is_packable(cls) or isinstance(value, cls) or value is None:
        return value
    kwargs = {}
    for field in sample_fields(cls):
        if hasattr(value, field.name):
            kwargs[field.name] = _retype_field(getattr(value, field.name), field.type)
        elif field.required:
            raise SampleTypeError(
                f"cannot turn a {type_name(type(value))} into a {type_name(cls)}: it has no field {field.name!r}"
            )
    return cls(**kwargs)


def _retype_field(value: Any, ft: Any) -> Any:
    from atdata_core.sample import DictOf, ListOf, Nested, Optional

    if value is None:
        return None
    if isinstance(ft, Optional):
        return _retype_field(value, ft.inner)
    if isinstance(ft, Nested):
        return retype(value, ft.cls)
    if isinstance(ft, ListOf) and isinstance(value, list):
        return [_retype_field(item, ft.item) for item in value]
    if isinstance(ft, DictOf) and isinstance(value, dict):
        return {key: _retype_field(item, ft.value) for key, item in value.items()}
    return value
