"""``atdata_core.load``: a published dataset, by reference, as a typed :class:`~atdata_core.Dataset`.

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
"""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Mapping
from typing import Any

import attrs

from atdata_core.errors import RecordError, RecordNotFound, ValidationError

__all__ = ["Resolved", "load", "load_lens", "parse_ref", "resolve"]

log = logging.getLogger("atdata_core.load")

ENTRY = "science.alt.dataset.entry"
LABEL = "science.alt.dataset.label"
LENS = "science.alt.dataset.lens"

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
    shards: list[tuple[str, str | None]] = attrs.field(repr=False)
    warnings: tuple[Any, ...] = ()


def resolve(ref: str, sample_type: type | None = None, *, index: Any = None) -> Resolved:
    """Resolve a reference to its entry, schema, sample class and shard list (no shard is read)."""
    from atdata_core.index._select import at_uri_parts, newest_first
    from atdata_core.plugins import storage_backend
    from atdata_core.records import EntryRecord, read_record, to_record

    index = _index(index)
    parsed = parse_ref(ref)
    if parsed.uri is not None:
        authority, collection, _ = at_uri_parts(parsed.uri)
        found = index.get_record(_with_did(parsed.uri, _did_of(authority, index)))
        if collection == LABEL or found.value.get("$type") == LABEL:
            found = _follow_label(found, index)
    else:
        did = _did_of(parsed.account, index)
        if parsed.label is not None:
            label = index.resolve_label(did, parsed.name, parsed.label)
            found = _follow_label(label, index)
        else:
            matching = [r for r in index.list_records(ENTRY, repo=did) if r.value.get("name") == parsed.name]
            if matching:
                found = newest_first(matching)[0]
            else:
                # Other clients name datasets by label only: the newest label of that name.
                try:
                    label = index.resolve_label(did, parsed.name)
                except RecordNotFound:
                    raise RecordNotFound(
                        f"{parsed.account} has published no dataset named {parsed.name!r}; "
                        f"`atdata list {parsed.account}` shows what it has"
                    ) from None
                found = _follow_label(label, index)

    kind = found.value.get("$type")
    if kind is not None and kind != ENTRY:
        raise RecordError(
            f"{found.uri} is a {kind} record, not a dataset entry ({ENTRY}); load takes an entry or a label"
        )
    entry, warnings = read_record(dict(found.value), EntryRecord)
    for warning in warnings:
        log.warning("%s: %s", found.uri, warning)

    schema_authority, _, _ = at_uri_parts(entry.schema_ref)
    schema_found = index.get_record(_with_did(entry.schema_ref, _did_of(schema_authority, index)))
    schema_value = dict(schema_found.value)
    from atdata_core.schema import check_compatible, sample_type_from_record

    if sample_type is None:
        sample_type = sample_type_from_record(schema_value)
    else:
        check_compatible(sample_type, schema_value)

    # A known member is re-serialised from its model (tolerated deviations smoothed out);
    # an unknown one goes to its plugin as it was read.
    storage = dict(entry.storage) if isinstance(entry.storage, Mapping) else to_record(entry.storage)
    storage_type = storage.get("$type")
    if not isinstance(storage_type, str):
        raise RecordError(f"{found.uri}: the entry's storage has no $type, so nothing says where the shards are")
    backend = storage_backend(record_type=storage_type.removesuffix("#main"))
    shards = list(backend.from_storage_record(storage))
    if not shards:
        raise RecordError(f"{found.uri}: the entry lists no shards")
    return Resolved(
        entry_uri=found.uri,
        entry=entry,
        entry_value=found.value,
        schema_uri=schema_found.uri,
        schema_value=schema_value,
        sample_type=sample_type,
        shards=shards,
        warnings=tuple(warnings),
    )


def load(
    ref: str,
    sample_type: type | None = None,
    *,
    verify: bool = True,
    on_error: Any = "raise",
    index: Any = None,
) -> Any:
    """A published dataset as a typed :class:`~atdata_core.Dataset`.

    ``sample_type`` is your class for the samples (checked against the
    published schema: :class:`~atdata_core.errors.IncompatibleSchema` lists
    what does not fit); without it a class is built from the schema. With
    ``verify`` (the default) each shard's sha256 is checked as it streams and
    a mismatch raises :class:`~atdata_core.errors.ChecksumError` naming the
    shard. ``index`` answers the record look-ups: an index provider or the
    name of one (``"sqlite"``, ``"appview"``); default: each account's own PDS. A storage kind nobody installed raises
    :class:`~atdata_core.errors.MissingImplementation` naming the distribution.

    >>> ds = atdata_core.load("@alice.example.com/mnist")          # doctest: +SKIP
    >>> len(ds), next(iter(ds)).label                               # doctest: +SKIP
    """
    from atdata_core.dataset import Dataset

    resolved = resolve(ref, sample_type, index=index)
    size = resolved.entry.size
    if verify:
        unverifiable = [url for url, sha in resolved.shards if not sha]
        if unverifiable:
            log.warning(
                "%s: %d shard(s) carry no sha256 to verify, e.g. %s; their bytes are read unchecked",
                resolved.entry_uri, len(unverifiable), unverifiable[0],
            )
    shards = [(url, sha if verify else None) for url, sha in resolved.shards]
    dataset = Dataset(
        shards=shards,
        sample_type=resolved.sample_type,
        on_error=on_error,
        num_samples=size.samples if size is not None else None,
        num_bytes=size.bytes if size is not None else None,
    )
    _remember(resolved)
    return dataset


def load_lens(ref: str, *, index: Any = None, executor: Any = None, source_type: Any = None,
              view_type: Any = None) -> Any:
    """A published lens record (``at://`` URI) as a :class:`~atdata_core.lens.Lens`.

    The code it references runs only if a lens executor agrees to run it (the
    built-in one: installed Python code matching the pinned commit, DESIGN D3);
    otherwise :class:`~atdata_core.errors.LensExecutionRefused` says why.
    """
    from atdata_core.index._select import at_uri_parts
    from atdata_core.plugins import lens_executor
    from atdata_core.records import LensRecord, read_record

    index = _index(index)
    authority, _, _ = at_uri_parts(ref)
    did = _did_of(authority, index)
    found = index.get_record(_with_did(ref, did))
    _, warnings = read_record(dict(found.value), LensRecord)
    for warning in warnings:
        log.warning("%s: %s", found.uri, warning)
    value = dict(found.value)
    if executor is None:
        language = (value.get("getterCode") or {}).get("language") or "python"
        executor = lens_executor(language=language)
    if hasattr(executor, "load_lens"):
        return executor.load_lens(value, source_type, view_type, author=did)
    from atdata_core.lens import Lens

    getter = executor.load(value["getterCode"])
    putter = executor.load(value["putterCode"]) if value.get("putterCode") else None
    return Lens(getter, putter, source=source_type, view=view_type, name=str(value.get("name") or "lens"))


# --------------------------------------------------------------------------- internals


def _index(index: Any) -> Any:
    """The index to ask: the one given, a provider named by a string, else each account's own PDS."""
    if index is None:
        from atdata_core.index.pds import PdsIndex

        return PdsIndex()
    if isinstance(index, str):
        from atdata_core.plugins import index_provider

        return index_provider(index)
    return index


def _did_of(account: str, index: Any) -> str:
    text = account.strip().lstrip("@")
    if text.startswith("did:"):
        return text
    resolve_repo = getattr(index, "resolve_repo", None)
    if resolve_repo is not None:
        return resolve_repo(text)
    from atdata_core.atproto import resolve_identity

    return resolve_identity(text).did


def _with_did(uri: str, did: str) -> str:
    rest = uri[len("at://"):].split("/", 1)
    return f"at://{did}/{rest[1]}" if len(rest) == 2 else uri


def _follow_label(label: Any, index: Any) -> Any:
    target = label.value.get("datasetUri")
    if not isinstance(target, str) or not target.startswith("at://"):
        raise RecordError(f"the label {label.uri} names no dataset (datasetUri {target!r})")
    from atdata_core.index._select import at_uri_parts

    authority, _, _ = at_uri_parts(target)
    return index.get_record(_with_did(target, _did_of(authority, index)))


def _remember(resolved: Resolved) -> None:
    """Keep the loaded records in the embedded index, if it is cheap; never fail a load over it."""
    try:
        from atdata_core.plugins import get_registry

        if "sqlite" not in get_registry().index_providers.names():
            return
        local = get_registry().index_providers.named("sqlite")
        local.put_record(resolved.entry_uri, resolved.entry_value)
        local.put_record(resolved.schema_uri, resolved.schema_value)
    except Exception as err:  # noqa: BLE001 - a cache, nothing more
        log.debug("not cached in the local index: %s", err)


class _CallableModule(types.ModuleType):
    # Importing this module sets the attribute ``atdata_core.load`` to the
    # module, shadowing the function the package exports under the same name.
    # Making the module callable keeps ``atdata_core.load(ref)`` working either way.
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return load(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
