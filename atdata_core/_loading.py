"""``atdata_core.load()``: a published dataset, by reference, as a typed :class:`~atdata_core.Dataset`.

References::

    at://did:plc:abc.../science.alt.dataset.entry/3kxyz      an entry record
    @alice.example.com/mnist                                  the newest entry named mnist
                                                              (else the newest label named mnist)
    @alice.example.com/mnist@v2                               the entry the label (mnist, v2) names

Loading resolves the entry (read tolerantly: records in the wild deviate from
the lexicon, DESIGN D6), its schema (building a sample class from it, or
checking the class you pass is compatible), and the storage backend for the
entry's storage ``$type``; the dataset it returns verifies every shard's
sha256 as it streams it. Nothing is downloaded until you iterate.

The shard URLs an entry names are a stranger's choice (DESIGN D8): each one
passes the network policy (:mod:`atdata_core._netpolicy`, the ``[network]``
settings) here, before the dataset exists, and travels on as a
:class:`~atdata_core._netpolicy.RecordUrl` that holds storage to the same
policy when it is read. A ``file:`` URL, a local path, an opaque URL or a
private address in a record raises :class:`~atdata_core.errors.NetworkPolicyError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import attrs

from atdata_core._aturi import AtUri
from atdata_core._nsids import ENTRY_NSID as ENTRY
from atdata_core._nsids import LABEL_NSID as LABEL
from atdata_core._shardref import ShardRef
from atdata_core.errors import RecordError, RecordNotFound, ValidationError
from atdata_core.plugins._contracts import IndexedRecord, IndexProvider

__all__ = ["Reference", "Resolved", "load", "load_lens", "parse_ref", "resolve"]

log = logging.getLogger("atdata_core.load")

_SHORT_REF = re.compile(r"^@(?P<account>[^/\s]+)/(?P<name>[^@\s]+)(?:@(?P<label>[^@\s]+))?$")


@attrs.frozen
class Reference:
    """A parsed reference: an ``at://`` URI, or an account plus a dataset name and maybe a label."""

    uri: str | None = None
    account: str | None = None
    name: str | None = None
    label: str | None = None


def parse_ref(ref: str) -> Reference:
    """Split a reference into its parts; raises ValidationError for anything else.

    >>> parse_ref("@alice.test/mnist@v2")
    Reference(uri=None, account='alice.test', name='mnist', label='v2')
    """
    text = str(ref).strip()
    if text.startswith("at://"):
        return Reference(uri=text)
    match = _SHORT_REF.match(text)
    if match is None:
        raise ValidationError(
            f"{ref!r} is not a dataset reference; use at://<did>/science.alt.dataset.entry/<rkey>, "
            "@<handle>/<dataset name> or @<handle>/<dataset name>@<label>",
            rule="reference",
        )
    return Reference(account=match["account"], name=match["name"], label=match["label"])


@attrs.frozen
class Resolved:
    """Everything a reference resolved to, before any shard is read."""

    entry_uri: str
    entry: Any  # EntryRecord
    entry_value: Mapping[str, Any] = attrs.field(repr=False)
    schema_uri: str
    schema_value: Mapping[str, Any] = attrs.field(repr=False)
    sample_type: type
    shards: list[ShardRef] = attrs.field(repr=False)
    warnings: tuple[Any, ...] = ()
    #: When the class asked for stands for another version of the schema: the migration lens from
    #: ``sample_type`` (the class the shards are read as) to it (atdata_core.lenses._migration).
    migration: Any = None


def resolve(
    ref: str, sample_type: type | None = None, *, index: IndexProvider | str | None = None, lenses: Any = ()
) -> Resolved:
    """Resolve a reference to its entry, schema, sample class and shard list (no shard is read).

    A ``sample_type`` of another version of the entry's schema gets the
    migration lens to it (``Resolved.migration``; ``lenses`` are migration
    lenses you pass, see :func:`load`)."""
    from atdata_core.index._select import newest_first
    from atdata_core.records import EntryRecord, read_record, to_record

    provider = index_for(index)
    parsed = parse_ref(ref)
    if parsed.uri is not None:
        uri = AtUri.parse(parsed.uri)
        found = _get(provider, uri)
        if uri.collection == LABEL or found.value.get("$type") == LABEL:
            found = _follow_label(found, provider)
    else:
        did = provider.resolve_repo(parsed.account)
        if parsed.label is not None:
            found = _follow_label(provider.resolve_label(did, parsed.name, parsed.label), provider)
        else:
            matching = [r for r in provider.list_records(ENTRY, repo=did) if r.value.get("name") == parsed.name]
            if matching:
                found = newest_first(matching)[0]
            else:
                # Other clients name datasets by label only: the newest label of that name.
                try:
                    label = provider.resolve_label(did, parsed.name)
                except RecordNotFound:
                    raise RecordNotFound(
                        f"{parsed.account} has published no dataset named {parsed.name!r}; "
                        f"`atdata list {parsed.account}` shows what it has"
                    ) from None
                found = _follow_label(label, provider)

    kind = found.value.get("$type")
    if kind is not None and kind != ENTRY:
        raise RecordError(
            f"{found.uri} is a {kind} record, not a dataset entry ({ENTRY}); load takes an entry or a label"
        )
    entry, warnings = read_record(dict(found.value), EntryRecord)
    warn_deviations(found, warnings)

    schema_found = _get(provider, AtUri.parse(entry.schema_ref))
    schema_value = dict(schema_found.value)
    from atdata_core.schema import sample_type_from_record

    migration = None
    if sample_type is None:
        sample_type = sample_type_from_record(schema_value)
    else:
        # check_compatible, or the migration lens from the dataset's schema version to the class's.
        from atdata_core.lenses._migration import plan_migration

        migration = plan_migration(provider, schema_found, sample_type, lenses=lenses)
        if migration is not None:
            sample_type = migration.source

    # A known member is re-serialised from its model (tolerated deviations smoothed out);
    # an unknown one goes to its plugin as it was read.
    storage = dict(entry.storage) if isinstance(entry.storage, Mapping) else to_record(entry.storage)
    storage_type = storage.get("$type")
    if not isinstance(storage_type, str):
        raise RecordError(f"{found.uri}: the entry's storage has no $type, so nothing says where the shards are")
    from atdata_core.storage import shards_from_storage_record

    # The entry's repository: where storage such as PDS blobs lives.
    shards = shards_from_storage_record(storage, repo=AtUri.parse(found.uri).did)
    if not shards:
        raise RecordError(f"{found.uri}: the entry lists no shards")
    shards = checked_shards(shards, storage_type.removesuffix("#main"), found.uri, entry.size)
    return Resolved(
        entry_uri=found.uri,
        entry=entry,
        entry_value=found.value,
        schema_uri=schema_found.uri,
        schema_value=schema_value,
        sample_type=sample_type,
        shards=shards,
        warnings=tuple(warnings),
        migration=migration,
    )


def load(
    ref: str,
    sample_type: type | None = None,
    *,
    verify: bool = True,
    on_error: Any = "raise",
    index: IndexProvider | str | None = None,
    lenses: Any = (),
) -> Any:
    """A published dataset as a typed :class:`~atdata_core.Dataset`.

    ``sample_type`` is your class for the samples (checked against the
    published schema: :class:`~atdata_core.errors.IncompatibleSchema` lists
    what does not fit); without it a class is built from the schema. With
    ``verify`` (the default) each shard's sha256 is checked as it streams and
    a mismatch raises :class:`~atdata_core.errors.ChecksumError` naming the
    shard. ``index`` answers the record look-ups: an index provider or the
    name of one (``"pds"``, ``"sqlite"``, ``"appview"``); default: the
    configured ``[index] default``, else each account's own PDS. A storage
    kind nobody installed raises :class:`~atdata_core.errors.MissingImplementation`
    naming the distribution to install.

    A class of another version of the dataset's schema (generated code names
    its version in ``__atdata_schema__``) gets the samples through the
    migration lenses between the versions (DESIGN D5): yours in ``lenses``
    (Lens objects or lens records' ``at://`` URIs, run as passed explicitly),
    then ones registered locally, then ones published by the schema's
    repository or DIDs you trust, each run only if the lens executor's trust
    policy allows it. No path raises :class:`~atdata_core.errors.NoMigrationPath`.

    >>> ds = atdata_core.load("@alice.example.com/mnist")          # doctest: +SKIP
    >>> len(ds), next(iter(ds)).label                               # doctest: +SKIP
    """
    from atdata_core.dataset import Dataset

    resolved = resolve(ref, sample_type, index=index, lenses=lenses)
    size = resolved.entry.size
    if verify:
        unverifiable = [shard.url for shard in resolved.shards if not shard.sha256]
        if unverifiable:
            log.warning(
                "%s: %d shard(s) carry no sha256 to verify, e.g. %s; their bytes are read unchecked",
                resolved.entry_uri, len(unverifiable), unverifiable[0],
            )
    shards = [shard if verify else shard._replace(sha256=None) for shard in resolved.shards]
    dataset = Dataset(
        shards=shards,
        sample_type=resolved.sample_type,
        on_error=on_error,
        num_samples=size.samples if size is not None else None,
        num_bytes=size.bytes if size is not None else None,
        origin=resolved.entry_uri,
    )
    if resolved.migration is not None:
        from atdata_core.lenses import LensGraph

        dataset = dataset.as_type(resolved.migration.view, graph=LensGraph([resolved.migration]))
    _remember(resolved)
    return dataset


def load_lens(ref: str, *, index: IndexProvider | str | None = None, executor: Any = None, source_type: Any = None,
              view_type: Any = None, trust: bool = False) -> Any:
    """A published lens record (``at://`` URI) as a :class:`~atdata_core.lenses.Lens`.

    The code it references runs only if a lens executor agrees to run it
    (the built-in one: installed Python code matching the pinned commit, and
    trusted: its author in ``[lens] trusted_dids``, its commit pinned, a
    ``lensVerification`` by a DID you trust covering it, or ``trust=True``,
    you passing this lens explicitly; DESIGN D3); otherwise
    :class:`~atdata_core.errors.LensExecutionRefused` says why, and nothing of
    it was imported.
    """
    from atdata_core.lenses._published import load_published_lens

    return load_published_lens(
        index_for(index), ref, executor=executor, trust=trust, source_type=source_type, view_type=view_type
    )


# --------------------------------------------------------------------------- internals


def index_for(index: IndexProvider | str | None) -> IndexProvider:
    """The index provider to ask: the one given, one named by a string, else the configured default.

    The default is ``[index] default`` (``ATDATA_INDEX_DEFAULT``): ``pds``
    unless configured, each account's records read from its own PDS.
    """
    from atdata_core.plugins import index_provider

    if index is None or isinstance(index, str):
        return index_provider(index or None)
    return index


_warned: set[tuple[str, str]] = set()


def warn_deviations(found: IndexedRecord, warnings: Any) -> None:
    """Log each tolerated deviation of a record once per process, through the ``atdata_core`` logger."""
    for warning in warnings:
        key = (found.uri, str(warning))
        if key not in _warned:
            if len(_warned) >= 10_000:  # a long-lived process does not keep every record it met
                _warned.clear()
            _warned.add(key)
            log.warning("%s: %s", found.uri, warning)


def checked_shards(shards: list[ShardRef], storage_type: str, entry_uri: str, size: Any = None) -> list[ShardRef]:
    """The shards an entry names, each URL passed by the network policy and made a RecordUrl.

    The schemes allowed are the remote ones the storage type's backend reads
    (``storageHttp``: https, and http when allowed); ``file``, plain paths
    and opaque URLs never are. Each URL remembers the most bytes the record
    gives it: its own size, else the entry's total (``size.bytes``).
    """
    from atdata_core._netpolicy import HTTP_SCHEMES, NetworkPolicy, RecordUrl
    from atdata_core.plugins import STORAGE_HTTP_NSID, get_config, get_registry

    policy = NetworkPolicy.from_config(get_config())
    if storage_type == STORAGE_HTTP_NSID:
        schemes: tuple[str, ...] = HTTP_SCHEMES
    else:
        spec = get_registry().storage.spec_for_record_type(storage_type)
        schemes = tuple(scheme for scheme in spec.schemes if scheme not in ("", "file"))
    total = getattr(size, "bytes", None)
    total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
    checked = []
    for index, ref in enumerate(shards):
        url = policy.check_url(ref.url, what=f"{entry_uri}: shard {index} ($.storage)", schemes=schemes)
        recorded = ref.size if isinstance(ref.size, int) and ref.size >= 0 else total
        checked.append(ref._replace(url=RecordUrl(url, policy=policy, named_by=entry_uri, recorded_bytes=recorded)))
    return checked


def _get(provider: IndexProvider, uri: AtUri) -> IndexedRecord:
    """The record at ``uri``, its authority resolved to a DID first."""
    return provider.get_record(str(uri.with_authority(provider.resolve_repo(uri.authority))))


def _follow_label(label: IndexedRecord, provider: IndexProvider) -> IndexedRecord:
    target = label.value.get("datasetUri")
    try:
        uri = AtUri.parse(target)
    except ValidationError as err:
        raise RecordError(f"the label {label.uri} names no dataset: {err}") from None
    return _get(provider, uri)


def _remember(resolved: Resolved) -> None:
    """Keep the loaded records in the embedded index when the user asked for it ([index] cache_loaded)."""
    from atdata_core.plugins import get_config, index_provider

    if not get_config().get_bool("index.cache_loaded", False):
        return
    try:
        local = index_provider("sqlite")
        local.put_record(resolved.entry_uri, resolved.entry_value)  # type: ignore[attr-defined]
        local.put_record(resolved.schema_uri, resolved.schema_value)  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 - a cache, nothing more
        log.warning("loaded records not kept in the local index: %s", err)
