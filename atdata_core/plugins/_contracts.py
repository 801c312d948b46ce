"""The contracts implementations fulfil, one per extension point.

Each is a :class:`typing.Protocol`: an implementation need not inherit from it
(it may, to say so). The conformance suites in
:mod:`atdata_core.plugins.conformance` check an implementation against its
contract; run the one for your extension point in your plugin's tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

import attrs

from atdata_core._shardref import ShardRef

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.lenses import Lens
    from atdata_core.sample import Field
    from atdata_core.schema import SchemaChange

__all__ = [
    "IndexProvider",
    "IndexedRecord",
    "LensExecutor",
    "SchemaFormat",
    "ShardRef",
    "StorageBackend",
    "StorageRecordMapper",
]


@runtime_checkable
class StorageBackend(Protocol):
    """Reads and writes shard bytes at URLs of the schemes it was registered for.

    The easy way to fulfil this contract is to subclass
    :class:`~atdata_core.plugins.StorageBase`, write the five primitives
    (``open``, ``size``, ``put``, ``delete``, ``list``) and inherit
    ``exists``, ``glob`` and ``expand``. A class that does not inherit works
    too when it has every method below with the same meaning.

    URLs are full strings (``mem://bucket/data-000000.tar``); a backend never
    sees another scheme's URLs. Errors come from :mod:`atdata_core.errors`: a
    missing object raises :class:`~atdata_core.errors.StorageNotFound`, any
    other failure :class:`~atdata_core.errors.StorageError` naming the URL.
    An operation a backend cannot do at all (listing plain HTTP, writing to a
    read-only store) raises :class:`~atdata_core.errors.StorageError` saying so.

    A backend is shared: the registry builds it once per process and every
    thread (and forked data-loader worker) uses that instance, and
    ``ShardWriter`` calls :meth:`put` from a background thread. It must be
    thread-safe.

    Mapping shards to and from an entry record's ``storage`` member is not
    part of this contract: backends with a record type also fulfil
    :class:`StorageRecordMapper`.
    """

    # -- primitives

    def open(self, url: str) -> BinaryIO:
        """A readable binary stream of the object's bytes, from the start.

        It streams: a large object is not read into memory before the first
        ``read`` returns. ``read(n)`` returns at most ``n`` bytes and ``b""``
        at the end; ``close()`` releases the connection or file. Usable as a
        context manager.
        """
        ...

    def size(self, url: str) -> int | None:
        """The object's size in bytes, or None when the store cannot tell without reading it."""
        ...

    def put(self, local_path: str, url: str) -> str:
        """Copy a finished local file to ``url`` and return the object's URL.

        Readers never see a partial object under ``url``: write elsewhere and
        rename, or rely on the store's atomic upload. An existing object is
        replaced whole.
        """
        ...

    def delete(self, url: str) -> None:
        """Remove the object at ``url``; a missing object raises StorageNotFound."""
        ...

    def list(self, prefix: str) -> list[str]:
        """URLs of every object at or below the folder ``prefix``, recursively, sorted.

        ``prefix`` names a folder: the result holds the object whose URL is
        ``prefix`` itself, if any, and every object whose URL starts with
        ``prefix + "/"`` (a trailing ``/`` on ``prefix`` changes nothing).
        ``list("mem://b/set")`` holds ``mem://b/set/a.tar`` and
        ``mem://b/set/sub/b.tar``, never ``mem://b/set2/x.tar``. Nothing
        there gives ``[]``.
        """
        ...

    # -- derived (StorageBase implements them from the primitives)

    def exists(self, url: str) -> bool:
        """Whether an object exists at ``url`` (a folder is not an object)."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """URLs of the objects matching a shell pattern (``*``, ``?``, ``[...]``), sorted.

        ``*`` and ``?`` (and a ``[...]`` class) never match ``/``. A pattern
        without pattern characters gives ``[pattern]`` if it exists, else ``[]``.
        """
        ...

    def expand(self, pattern: str) -> list[str]:
        """Brace expansion (``{000000..000009}`` ranges, ``{a,b}`` lists), then :meth:`glob`.

        Expanded URLs without pattern characters are kept, unchecked.
        """
        ...


@runtime_checkable
class StorageRecordMapper(Protocol):
    """Maps shards to and from the entry record's ``storage`` union member.

    An optional capability of a :class:`StorageBackend`, for backends that
    registered ``record_types`` in their
    :class:`~atdata_core.plugins.StorageBackendSpec` (http(s):
    ``science.alt.dataset.storageHttp``; s3: ``storageS3``; PDS blobs:
    ``storageBlobs``). A backend without a record type (local files, an
    in-memory store) does not implement it, and publishing its shards fails
    with a :class:`~atdata_core.errors.StorageError` saying why.
    """

    def to_storage_record(self, shards: Sequence[ShardRef]) -> dict[str, Any]:
        """The entry record's ``storage`` union member (with ``$type``) listing ``shards``.

        Each shard needs its URL and sha256 (hex); a shard this record type
        cannot hold (another scheme, no checksum) raises
        :class:`~atdata_core.errors.StorageError`. The result is JSON.

        >>> backend.to_storage_record([ShardRef("https://h/a.tar", "9f86...")])  # doctest: +SKIP
        {'$type': 'science.alt.dataset.storageHttp',
         'shards': [{'url': 'https://h/a.tar', 'checksum': {'algorithm': 'sha256', 'digest': '9f86...'}}]}
        """
        ...

    def from_storage_record(self, record: Mapping[str, Any]) -> list[ShardRef]:
        """The shards a storage union member lists, in order.

        The URLs are ones :func:`atdata_core.storage.open_shard` can open.
        ``sha256`` is None for a checksum with another algorithm or none;
        ``count`` and ``size`` are None unless the record holds them. A record
        this backend does not understand raises
        :class:`~atdata_core.errors.RecordError`.

        A member that does not say where its shards are (``storageBlobs``
        lists blobs of the entry's own repository) may take a keyword
        argument ``repo``: the core then passes the DID of the repository
        holding the entry (:func:`atdata_core.storage.shards_from_storage_record`).
        """
        ...


@runtime_checkable
class SchemaFormat(Protocol):
    """Turns sample classes into a schema record's ``schema`` union member and back.

    A format is registered for ``schemaType`` values and union ``$type``
    values (:class:`~atdata_core.plugins.SchemaFormatSpec`). "Schema" below is
    the union member: a JSON-compatible dict carrying ``$type``.

    The core checks compatibility the same way for every format, from the
    fields a format parses (:meth:`fields_of`): whether a class can read a
    schema's samples, and how a new schema version changes the last one
    (:func:`atdata_core.schema.compare_schemas`: the field comparison plus
    :meth:`format_changes`). Field types, :class:`~atdata_core.plugins.Field`
    and :class:`~atdata_core.plugins.SchemaChange` come from the toolkit.
    """

    def schema_from_type(self, sample_type: type) -> dict[str, Any]:
        """The schema describing a packable sample class.

        Raises :class:`~atdata_core.errors.SchemaError` for a field this format
        cannot express.
        """
        ...

    def type_from_schema(self, schema: Mapping[str, Any], *, name: str) -> type:
        """A packable sample class, built at run time, whose instances read and write
        the samples the schema describes. ``name`` is the class name.
        ``schema_from_type(type_from_schema(s))`` equals ``s``.
        """
        ...

    def fields_of(self, schema: Mapping[str, Any]) -> Sequence[Field]:
        """The fields the schema describes, in order: the fields of the class
        :meth:`type_from_schema` builds (names, types, required, defaults,
        descriptions). Raises :class:`~atdata_core.errors.SchemaError` for a
        malformed schema.
        """
        ...

    def validate_schema(self, schema: Mapping[str, Any]) -> None:
        """Raise :class:`~atdata_core.errors.SchemaError` if ``schema`` is not a well-formed schema of this format."""
        ...

    def format_changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> Sequence[SchemaChange]:
        """The changes from ``old`` to ``new`` that their fields do not show, each with its kind and a reason.

        The core compares the fields itself (a field added, removed, retyped,
        its default or description changed...); a format reports only what it
        expresses beyond fields, e.g. a JSON Schema ``minimum`` or ``enum``
        that now refuses values (``"major"``). Most formats return ``[]``.
        Both schemas are valid (the core validated them).
        """
        ...


@attrs.frozen
class IndexedRecord:
    """A record as an index returns it: its ``at://`` URI, its value (with ``$type``) and CID when known."""

    uri: str
    value: Mapping[str, Any]
    cid: str | None = None


@runtime_checkable
class IndexProvider(Protocol):
    """Finds published records: schemas, entries, lenses and labels.

    ``collection`` is an NSID (``science.alt.dataset.entry``), ``repo`` a DID.
    A provider answers from wherever it indexes (an embedded database, an
    account's PDS, an AppView). Records it cannot find raise
    :class:`~atdata_core.errors.RecordNotFound`; an unreachable service raises
    a :class:`~atdata_core.errors.NetworkError`.
    """

    def get_record(self, uri: str) -> IndexedRecord:
        """The record at an ``at://did/collection/rkey`` URI."""
        ...

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        query: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[IndexedRecord]:
        """Records of one collection, newest ``createdAt`` first.

        ``repo`` keeps one account's records; ``query`` keeps records whose
        ``name`` or ``description`` contains it, ignoring case; ``tags`` keeps
        records carrying every tag given (a schema's tags are its
        ``metadata.tags``); ``limit`` caps the count.
        :func:`atdata_core.plugins.search_records` implements these rules.
        """
        ...

    def resolve_schema(self, repo: str, schema_id: str, version: str | None = None) -> IndexedRecord:
        """A schema record of ``repo`` by schema id and version.

        Matches the record key ``{schema_id}:{version}`` or, for records with
        other keys, the record's ``name`` and ``version``. Without a version,
        the highest semver wins (a prerelease ranks below its release).
        :func:`atdata_core.plugins.select_schema` implements these rules.
        """
        ...

    def resolve_label(self, repo: str, name: str, version: str | None = None) -> IndexedRecord:
        """A label record of ``repo`` by name (and version when given); the newest when several match."""
        ...

    def resolve_repo(self, handle_or_did: str) -> str:
        """The DID of an account named by handle (``@`` allowed) or DID.

        A provider that knows handles (an AppView, a PDS) answers from them; a
        DID is returned as it is. An account that does not exist raises
        :class:`~atdata_core.errors.IdentityError`.
        """
        ...


@runtime_checkable
class LensExecutor(Protocol):
    """Runs the code a lens record references, or refuses.

    A lens record (``science.alt.dataset.lens``) names its getter and putter by
    *code reference*: the ``getterCode`` / ``putterCode`` mappings, with
    ``repository``, ``commit``, ``path`` (``module/file.py:function``), and
    optional ``branch`` and ``language``; the record may carry a ``language``
    for both. Records hold references, never code, and nothing fetched from
    the network runs unless the user's trust policy allows it (DESIGN D3):
    the decision may depend on the record's ``author`` (the DID of the account
    that published it), and it never imports or runs anything to decide.

    Both methods take the record's JSON value (plain mappings, as read from a
    PDS), not record models. Every refusal raises
    :class:`~atdata_core.errors.LensExecutionRefused` naming the reference's
    ``path`` and the reason: malformed, in a language this executor does not
    run, not available here, not trusted, or not the pinned commit's code.
    """

    def load(self, code: Mapping[str, Any], *, author: str | None = None) -> Callable[..., Any]:
        """The function one code reference names; always a callable.

        ``author`` is the DID of the account that published the reference
        (None when unknown).
        """
        ...

    def load_lens(
        self,
        record: Mapping[str, Any],
        *,
        source_type: Any = None,
        view_type: Any = None,
        author: str | None = None,
    ) -> Lens:
        """The :class:`~atdata_core.Lens` a lens record describes: what :func:`atdata_core.load_lens` returns.

        Its getter runs ``getterCode``; its putter runs ``putterCode`` (a
        record without one gives a lens without a putter). The lens maps
        ``source_type`` to ``view_type``; when they are None the executor may
        fill in what the code declares, else ``typing.Any``. ``author`` is the
        DID of the account that published the record. A refusal comes from
        this call, never later from the lens's first ``get``.
        """
        ...
