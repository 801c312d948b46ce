"""Publishing: schemas, dataset entries, lenses, lens verifications and labels as records in your own repository.

Shard bytes are placed by a storage backend (``ShardWriter`` writing to
``https://``, ``s3://``, ``atblob://``..., or :func:`publish_dataset` placing
local shards); the entry record lists where they are, with their real
sha256, counts and sizes::

    from atdata_core.atproto import login
    from atdata_core.publish import publish_schema, publish_dataset

    client = login("alice.example.com", app_password)
    schema = publish_schema(client, ImageSample, schema_id="com.example.image", version="1.0.0")
    with ShardWriter("https://data.example.com/img/data-%06d.tar", maxcount=1000) as sink:
        ...
    entry = publish_dataset(client, "images", sink.shards, schema=schema, tags=["vision"])
    entry.uri   # at://did:plc:.../science.alt.dataset.entry/3k...

Shards written to local files are placed on shared storage by
:func:`publish_dataset` itself, through the backend ``storage=`` names (or
``[publish] storage`` in the configuration)::

    with ShardWriter("shards/images-%06d.tar", maxsize=5 << 20) as sink:   # PDS blobs: at most 5 MiB each
        ...
    publish_dataset(client, "images", sink.shards, schema=schema, storage="blob")

A backend that publishes maps shards to the entry's storage member
(:class:`~atdata_core.plugins.StorageRecordMapper`). To be chosen by name
alone it says where a publisher's shards go, ``default_prefix(did, dataset)
-> URL prefix``; otherwise ``storage=`` gives a URL prefix. It may check a
shard before anything is placed, ``check_put(local_path, url)`` (raising
what ``put`` would), and take the publisher's logged-in client,
``add_client(client)``, when it writes to the publisher's own repository.

Every record is built and validated (strictly, DESIGN D6) before the first
network call: an invalid record raises
:class:`~atdata_core.errors.ValidationError` naming the JSON path and rule,
and nothing is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from atdata_core._nsids import ENTRY_NSID as ENTRY
from atdata_core._nsids import LABEL_NSID as LABEL
from atdata_core._nsids import LENS_NSID as LENS
from atdata_core._nsids import LENS_VERIFICATION_NSID as LENS_VERIFICATION
from atdata_core._nsids import SCHEMA_NSID as SCHEMA
from atdata_core.errors import IncompatibleSchema, RecordNotFound, ValidationError, XrpcError

__all__ = [
    "Published",
    "SCHEMA",
    "ENTRY",
    "LENS",
    "LABEL",
    "LENS_VERIFICATION",
    "VERIFICATION_METHODS",
    "publish_dataset",
    "publish_label",
    "publish_lens",
    "publish_lens_verification",
    "publish_schema",
    "publish_storage",
    "publishing_backends",
]


@attrs.frozen
class Published:
    """A record now in a repository: its ``at://`` URI, its CID and the record as written."""

    uri: str
    cid: str | None
    record: Mapping[str, Any] = attrs.field(eq=False, repr=False)

    def __str__(self) -> str:
        return self.uri


# --------------------------------------------------------------------------- schemas


def publish_schema(
    client: Any,
    sample_type: type,
    *,
    schema_id: str,
    version: str,
    description: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
    format: str = "jsonSchema",
) -> Published:
    """Publish one version of a sample type's schema under the key ``{schema_id}:{version}``.

    Idempotent: publishing the identical schema again returns the existing
    record. A different schema under an existing version is refused (versions
    are immutable; bump it). The previous highest version of ``schema_id`` in
    your repository is compared with this one, and a breaking change under a
    non-major bump raises :class:`~atdata_core.errors.IncompatibleSchema`.
    ``format`` is the record's ``schemaType``: ``"jsonSchema"`` (built in) or
    one a plugin adds (``"protobuf"`` with atdata-schema-protobuf).
    """
    from atdata_core.lexicon import validate_record
    from atdata_core.records import parse_version, schema_rkey
    from atdata_core.schema import check_version_bump, schema_record

    rkey = schema_rkey(schema_id, version)
    record = dict(
        schema_record(
            sample_type,
            name=schema_id,
            version=version,
            description=description,
            license=license,
            tags=tuple(tags),
            format=format,
        )
    )
    validate_record(record)

    did = _own_did(client)
    existing = _get_or_none(client, did, SCHEMA, rkey)
    if existing is not None:
        value = existing["value"]
        if _comparable(value) == _comparable(record):
            return Published(existing["uri"], existing.get("cid"), value)
        from atdata_core.schema import diff_schemas

        try:
            changes = diff_schemas(value, record)
        except Exception:  # noqa: BLE001 - the published record may be of a format not installed here
            changes = []
        listed = "".join(f"\n  - {change}" for change in changes)
        raise IncompatibleSchema(
            f"{schema_id} version {version} is already published at {existing['uri']} with a different "
            f"record{listed or ''}\nA published version never changes: publish the change under a new version"
        )

    new = parse_version(version)
    previous: tuple[Any, Mapping[str, Any]] | None = None
    for item in _list(client, did, SCHEMA):
        found = _schema_identity(item)
        if found is None or found[0] != schema_id:
            continue
        try:
            older = parse_version(found[1])
        except ValidationError:
            continue
        if older < new and (previous is None or older > previous[0]):
            previous = (older, item["value"])
    if previous is not None:
        check_version_bump(previous[1], record)

    # createRecord with the key (not putRecord): the PDS refuses to replace a version published meanwhile.
    return _published(client.create_record(SCHEMA, record, rkey=rkey), record)


def _schema_identity(item: Mapping[str, Any]) -> tuple[str, str] | None:
    from atdata_core.records import parse_schema_rkey

    parsed = parse_schema_rkey(str(item["uri"]).rsplit("/", 1)[-1])
    if parsed is not None:
        return parsed
    value = item.get("value") or {}
    name, version = value.get("name"), value.get("version")
    if isinstance(name, str) and isinstance(version, str):
        return name, version
    return None


def _comparable(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "createdAt"}
    return json.dumps(body, sort_keys=True, default=repr)


# --------------------------------------------------------------------------- datasets


def publish_dataset(
    client: Any,
    name: str,
    shards: Iterable[Any],
    *,
    schema: Any,
    storage: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    license: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Published:
    """Publish a dataset entry listing its shards, placing local shards on shared storage first.

    ``shards``: :class:`~atdata_core.ShardInfo` objects (``ShardWriter.shards``)
    or ``(url, sha256, count, size)`` tuples. Every shard needs a sha256; the
    storage union member (``storageHttp``, ``storageS3``, ``storageBlobs``...)
    comes from the backend registered for the URLs' scheme. ``schema`` is the
    schema record's ``at://`` URI or the :class:`Published` that
    :func:`publish_schema` returned. ``metadata`` is any msgpack-able map
    (stored as msgpack bytes).

    Shards that are local files (plain paths, ``file://``) are placed first,
    through the storage backend ``storage`` says: a backend's name
    (``"blob"``: PDS blobs of your own repository) or a URL prefix the
    shards are copied below (``"s3://bucket/datasets/mnist/"``); without it,
    the configuration's ``[publish] storage``; without that, publishing
    refuses and lists the installed backends that can publish. Every shard is
    checked before the first is placed, and every one is placed before the
    entry is written, in one call. A failure part way raises
    :class:`~atdata_core.errors.StorageError` saying which shards were placed
    (also as its ``placed`` attribute) and that nothing was published; publishing
    again places the shards at the same URLs (a content-addressed backend
    such as ``blob`` uploads only the ones that are not there yet).
    ``progress`` shows a progress bar while placing.

    >>> publish_dataset(client, "mnist", writer.shards, schema=schema, storage="blob")  # doctest: +SKIP
    """
    from atdata_core.plugins import ShardRef, url_scheme

    _check_name(name, ENTRY)
    schema_ref = schema.uri if isinstance(schema, Published) else schema
    if not isinstance(schema_ref, str):
        raise ValidationError(
            f"schema must be an at:// URI or what publish_schema returned, not {type(schema).__name__}",
            path="$.schemaRef",
            rule="format:at-uri",
            nsid=ENTRY,
        )
    items = [_shard_item(item, i) for i, item in enumerate(shards)]
    if not items:
        raise ValidationError("a dataset needs at least one shard", path="$.storage", rule="minLength", nsid=ENTRY)
    _refuse_credentials([url for url, *_ in items], storage)
    local = [url_scheme(url) in _LOCAL_SCHEMES for url, *_ in items]
    schemes = sorted({"local file" if is_local else url_scheme(url) for (url, *_), is_local in zip(items, local)})
    if len(schemes) > 1:
        raise ValidationError(
            f"the shards mix URL schemes ({', '.join(s or 'plain path' for s in schemes)}); one entry lists shards "
            "of one storage kind. Place them all with one backend, or publish one entry per kind",
            path="$.storage",
            rule="storage",
            nsid=ENTRY,
        )
    entry_fields = dict(
        name=name, schema_ref=schema_ref, description=description, tags=tags, license=license, metadata=metadata
    )
    if any(local):
        # Everything but the storage member is checked before a byte is uploaded.
        _entry_record(storage={"$type": _STAND_IN_STORAGE["$type"], "shards": _STAND_IN_STORAGE["shards"]},
                      items=items, **entry_fields)
        items = _place_local_shards(client, name, items, storage, progress=progress)
    elif storage is not None:
        raise ValidationError(
            f"storage={storage!r} says where to place local shards, but these shards are already at "
            f"{schemes[0]}:// URLs; publish them without it",
            path="$.storage",
            rule="storage",
            nsid=ENTRY,
        )
    from atdata_core.storage import storage_record_for

    record = _entry_record(storage=storage_record_for([ShardRef(*item) for item in items]), items=items, **entry_fields)
    return _published(client.create_record(ENTRY, record), record)


def _refuse_credentials(urls: Sequence[str], storage: Any) -> None:
    """Refuse shard URLs (and a ``storage`` URL prefix) that carry a password, signature or token.

    An entry record is public: a presigned URL in it hands its signature to
    every reader. Checked before anything is placed or written.
    """
    from atdata_core._netpolicy import redact_credentials, url_credentials

    named = [(f"$.storage.shards[{index}].url", url) for index, url in enumerate(urls)]
    if isinstance(storage, str) and "://" in storage:
        named.append(("storage", storage))
    for path, url in named:
        found = url_credentials(url)
        if found:
            shown = redact_credentials(url)
            shown = shown if len(shown) <= 120 else shown[:117] + "..."
            raise ValidationError(
                f"{shown!r} carries {' and '.join(found)}; a published entry is public, so the secret would be "
                "too. Publish URLs anyone may read without credentials (a public bucket or server, or PDS blobs), "
                "and keep signed URLs to yourself",
                path=path,
                rule="credentials",
                nsid=ENTRY,
            )


#: URL schemes of shards on this machine: placed through a storage backend before publishing.
_LOCAL_SCHEMES = ("", "file")
# A storage member that validates, to check the rest of an entry before its shards are placed.
_STAND_IN_STORAGE: dict[str, Any] = {
    "$type": "science.alt.dataset.storageHttp",
    "shards": [{"url": "https://example.invalid/shard.tar", "checksum": {"algorithm": "sha256", "digest": "0" * 64}}],
}


def _entry_record(
    *,
    name: str,
    schema_ref: str,
    storage: Mapping[str, Any],
    items: Sequence[tuple[str, str, int | None, int | None]],
    description: str | None,
    tags: Sequence[str],
    license: str | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entry record, validated (a ValidationError names the JSON path)."""
    from atdata_core.records import DatasetSize, EntryRecord, Storage, converter, write_record

    counts = [count for _, _, count, _ in items]
    sizes = [size for _, _, _, size in items]
    size = DatasetSize(
        samples=sum(counts) if all(c is not None for c in counts) else None,
        bytes=sum(sizes) if all(s is not None for s in sizes) else None,
        shards=len(items),
    )
    entry = EntryRecord(
        name=name,
        schema_ref=schema_ref,
        storage=converter.structure(dict(storage), Storage),
        description=description,
        metadata=dict(metadata) if metadata is not None else None,
        tags=tuple(tags),
        size=size,
        license=license,
    )
    return write_record(entry)


# --------------------------------------------------------------------------- placing local shards


def publish_storage() -> tuple[str | None, str]:
    """Where local shards are placed when publishing is not told: ``([publish] storage, where it was set)``.

    The value is a storage backend's name or a URL prefix; None when unset.
    """
    from atdata_core.plugins import get_config

    config = get_config()
    return config.get_str("publish.storage") or None, config.source("publish.storage")


def publishing_backends() -> list[tuple[str, tuple[str, ...], bool]]:
    """The installed storage backends that can publish: ``(name, URL schemes, places by name)``.

    A backend can publish when it maps shards to an entry's storage member
    (:class:`~atdata_core.plugins.StorageRecordMapper`); it places shards by
    name alone (``storage="blob"``) when it also says where a publisher's
    shards go (``default_prefix``), else it needs a URL prefix. Backends that
    fail to start are left out.
    """
    from atdata_core.plugins import StorageRecordMapper, get_registry

    registry = get_registry().storage
    found = []
    for spec in registry.specs():
        if not spec.record_types:
            continue
        try:
            backend = registry.instance(spec)
        except Exception:  # noqa: BLE001 - a broken plugin is reported by `atdata plugins`, not here
            continue
        if isinstance(backend, StorageRecordMapper):
            schemes = tuple(scheme for scheme in spec.schemes if scheme not in _LOCAL_SCHEMES)
            found.append((spec.name, schemes, callable(getattr(backend, "default_prefix", None))))
    return sorted(found)


def _publishing_choices() -> str:
    choices = []
    for backend_name, schemes, by_name in publishing_backends():
        urls = ", ".join(f"{scheme}://" for scheme in schemes)
        how = f'storage="{backend_name}"' if by_name else "a URL prefix"
        choices.append(f"{backend_name} ({urls}; {how})")
    return "; ".join(choices) or "none is installed (pip install atdata-storage-blob, or atdata-storage-s3)"


def _placement(client: Any, dataset: str, storage: str | None) -> tuple[Any, str, str]:
    """``(backend, URL prefix, what chose it)`` for placing a dataset's local shards."""
    from atdata_core.errors import StorageError
    from atdata_core.plugins import StorageRecordMapper, get_registry

    chosen_by = "the storage argument"
    if storage is None:
        storage, source = publish_storage()
        chosen_by = f"[publish] storage ({source})"
    if not storage:
        raise StorageError(
            "local files cannot be published as they are: other people cannot read them. Say where to place "
            'them: storage="<backend>" (atdata publish dataset --storage <backend>) or a URL prefix '
            '(storage="s3://bucket/datasets/"), or set [publish] storage in your configuration. Backends that '
            f"can publish: {_publishing_choices()}"
        )
    registry = get_registry().storage
    if "://" in storage:
        spec = registry.spec_for_url(storage)
        prefix = storage
    else:
        spec = registry.spec_named(storage)
        prefix = ""
    backend = registry.instance(spec)
    if not isinstance(backend, StorageRecordMapper) or not spec.record_types:
        raise StorageError(
            f"{chosen_by} is {storage!r}, storage backend {spec.name!r} from {spec.provider()}, whose shards other "
            f"people cannot read (it has no storage record type). Backends that can publish: {_publishing_choices()}"
        )
    if not prefix:
        default_prefix = getattr(backend, "default_prefix", None)
        if not callable(default_prefix):
            schemes = " or ".join(f"{scheme}://..." for scheme in spec.schemes if scheme not in _LOCAL_SCHEMES)
            raise StorageError(
                f"{chosen_by} names storage backend {spec.name!r}, which needs to be told where to put the shards: "
                f"give a URL prefix instead ({schemes or 'its URLs'}/folder/)"
            )
        did = _own_did(client)
        prefix = default_prefix(did, dataset)
    return backend, prefix.rstrip("/"), f"{chosen_by}: storage backend {spec.name!r}"


def _place_local_shards(
    client: Any, dataset: str, items: list[tuple[str, str, int | None, int | None]], storage: str | None,
    *, progress: bool,
) -> list[tuple[str, str, int | None, int | None]]:
    """Place each local shard through a storage backend; the same shards at their new URLs, in order."""
    from collections import Counter

    from atdata_core.errors import StorageError, StorageNotFound
    from atdata_core.plugins import ShardRef
    from atdata_core.storage.file import local_path

    backend, prefix, chosen = _placement(client, dataset, storage)
    add_client = getattr(backend, "add_client", None)
    if callable(add_client) and getattr(client, "did", None):
        add_client(client)  # a backend writing to the publisher's own repository writes as the publisher
    paths = [local_path(url) for url, *_ in items]
    targets = [f"{prefix}/{os.path.basename(path)}" for path in paths]
    clashes = sorted(target for target, times in Counter(targets).items() if times > 1)
    if clashes:
        raise StorageError(
            f"two local shards share a file name, so they would be placed at the same URL ({clashes[0]}); "
            "rename them, or publish one entry per folder"
        )

    # Check every shard before placing any: a dataset the backend cannot take is refused whole.
    problems = []
    check = getattr(backend, "check_put", None)
    for path, target, (_, _, _, size) in zip(paths, targets, items):
        try:
            if not os.path.isfile(path):
                raise StorageNotFound(f"{path}: no such local file")
            if size is not None and os.path.getsize(path) != size:
                raise StorageError(
                    f"{path} is {os.path.getsize(path):,} bytes, but {size:,} were measured: it changed since; "
                    "measure it again"
                )
            if callable(check):
                check(path, target)
        except StorageError as err:
            problems.append(str(err))
    if problems:
        listed = "".join(f"\n  - {problem}" for problem in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise StorageError(
            f"{len(problems)} of {len(items)} shards cannot be placed ({chosen}); nothing was placed or published:"
            f"{listed}{more}"
        )

    placed: list[Any] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="placing shards", unit=" shards", disable=None, leave=False)
    try:
        for path, target, (_, sha, count, size) in zip(paths, targets, items):
            try:
                url = backend.put(path, target)
            except Exception as err:
                done = "".join(f"\n  - {ref.url}" for ref in placed) or " none"
                failure = StorageError(
                    f"placing {path} at {target} failed ({chosen}): {type(err).__name__}: {err}\n"
                    f"Placed before it ({len(placed)} of {len(items)}):{done}\nNothing was published. Publishing "
                    "again places the shards at the same URLs; shards already there are reused where the backend "
                    "can tell (content-addressed storage such as PDS blobs uploads only what is missing)"
                )
                failure.placed = list(placed)  # type: ignore[attr-defined]
                raise failure from err
            placed.append(ShardRef(url, sha, count, size))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [(ref.url, ref.sha256, ref.count, ref.size) for ref in placed]


def _shard_item(item: Any, index: int) -> tuple[str, str, int | None, int | None]:
    """``(url, sha256, count, size)`` from a ShardInfo-like object or a tuple."""
    path = f"$.storage.shards[{index}]"
    if isinstance(item, (tuple, list)):
        if not 2 <= len(item) <= 4:
            raise ValidationError(
                f"a shard tuple is (url, sha256, count, size), got {len(item)} values", path=path, rule="shard",
                nsid=ENTRY,
            )
        url, sha, count, size = (*item, None, None)[:4]
    elif isinstance(item, Mapping):
        url, sha, count, size = item.get("url"), item.get("sha256"), item.get("count"), item.get("size")
    else:
        url = getattr(item, "url", None)
        sha, count, size = getattr(item, "sha256", None), getattr(item, "count", None), getattr(item, "size", None)
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise ValidationError(f"shard {index} has no URL: {item!r}", path=f"{path}.url", rule="required", nsid=ENTRY)
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha):
        raise ValidationError(
            f"shard {url} needs its sha256 as 64 hex digits, got {sha!r}. ShardWriter.shards carries it; "
            "`atdata inspect` prints it for existing shards",
            path=f"{path}.checksum.digest",
            rule="sha256",
            nsid=ENTRY,
        )
    for label, value in (("count", count), ("size", size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValidationError(
                f"shard {url}: {label} must be a non-negative integer, got {value!r}", path=path, rule=label,
                nsid=ENTRY,
            )
    return url, sha.lower(), count, size


# --------------------------------------------------------------------------- lenses and labels


def publish_lens(
    client: Any,
    lens: Any,
    *,
    source_schema: Any,
    target_schema: Any,
    repository: str | None = None,
    commit: str | None = None,
    name: str | None = None,
    description: str | None = None,
) -> Published:
    """Publish a lens record: references to its getter and putter code (never the code itself).

    The references come from the git checkout holding the lens's module
    (:func:`atdata_core.lenses.code_reference`); ``repository`` and ``commit``
    override what git says. ``source_schema`` / ``target_schema`` are schema
    URIs or :class:`Published` values.
    """
    from atdata_core.lenses import lens_code_references
    from atdata_core.records import LensRecord, parse_schema_rkey, write_record

    source = source_schema.uri if isinstance(source_schema, Published) else source_schema
    target = target_schema.uri if isinstance(target_schema, Published) else target_schema
    getter, putter = lens_code_references(lens, repository=repository, commit=commit)

    def version_of(uri: Any) -> str | None:
        if not isinstance(uri, str):
            return None
        parsed = parse_schema_rkey(uri.rsplit("/", 1)[-1])
        return parsed[1] if parsed else None

    record = write_record(
        LensRecord(
            name=name or lens.name,
            source_schema=source,
            target_schema=target,
            getter_code=getter,
            putter_code=putter,
            description=description,
            source_schema_version=version_of(source),
            target_schema_version=version_of(target),
        )
    )
    return _published(client.create_record(LENS, record), record)


#: Verification methods the lexicon knows (``science.alt.dataset.verificationMethod``); others are allowed.
VERIFICATION_METHODS = ("automatedTest", "codeReview", "formalProof", "signedHash")


def publish_lens_verification(
    client: Any,
    lens: Any,
    *,
    samples: Iterable[Any] | None = None,
    views: Iterable[Any] | None = None,
    method: str = "automatedTest",
    description: str | None = None,
    index: Any = None,
    executor: Any = None,
    eq: Any = None,
) -> Published:
    """Vouch for a lens: a ``lensVerification`` in your repository covering this version of it and its code.

    ``lens`` is the lens record's ``at://`` URI (or its :class:`Published`).
    With ``method="automatedTest"`` the lens is loaded (you pass it
    explicitly, so its installed code runs) and the lens laws, GetPut and
    PutGet, are checked on ``samples`` (and ``views``, see
    :func:`~atdata_core.lenses.check_lens_laws`); a violation raises
    :class:`~atdata_core.errors.LensLawViolation` and nothing is published.
    Samples of another class with the same fields (a dataset loaded without
    a class) are turned into the lens's source class first. Other methods
    (``"codeReview"``, ``"formalProof"``, ``"signedHash"``) record your word
    without running anything.

    Either way the record holds the lens record's CID as ``lensCommit`` (the
    version of the record you verified: a later edit is not covered) and, as
    ``codeHash``, the sha256 of the getter and putter source installed here,
    read from the files (:func:`~atdata_core.executors.lens_code_hash`).
    Whoever trusts your DID (``[lens] trusted_dids``) then runs this lens when
    their installed code hashes the same.
    """
    from atdata_core._loading import index_for
    from atdata_core.errors import LensError
    from atdata_core.lenses import check_lens_laws
    from atdata_core.lenses._migration import retype
    from atdata_core.lenses._published import call_supported, published_lens
    from atdata_core.records import LensVerificationRecord, ShardChecksum, write_record

    if not isinstance(method, str) or not method:
        raise ValidationError(f"a verification method is a name such as {VERIFICATION_METHODS}, got {method!r}",
                              path="$.verificationMethod", rule="type", nsid=LENS_VERIFICATION)
    uri = lens.uri if isinstance(lens, Published) else lens
    provider = index_for(index)
    found = published_lens(provider, str(uri), verifiers=())
    value = dict(found.value)
    if executor is None:
        from atdata_core.plugins import lens_executor

        executor = lens_executor(language=found.language)
    hasher = getattr(executor, "code_hash", None)
    if not callable(hasher):
        raise LensError(
            f"the lens executor {executor!r} cannot hash the installed code of {found.uri}, so no verification of "
            "its code can be recorded"
        )
    digest = hasher(value)
    lens_commit = found.cid or _single_commit(value)
    if not lens_commit:
        raise LensError(
            f"{found.uri}: neither the record's CID nor one commit for its getter and putter is known, so the "
            "verification could not say which version of the lens it covers"
        )

    if method == "automatedTest":
        sample_list = list(samples or [])
        if not sample_list:
            raise LensError("an automatedTest verification checks the lens laws on samples: pass samples=")
        loaded = call_supported(
            executor.load_lens, value, author=found.author, uri=found.uri, cid=found.cid, explicit=True
        )
        typed = [retype(sample, loaded.source) for sample in sample_list]
        typed_views = None if views is None else [retype(view, loaded.view) for view in views]
        report = check_lens_laws(loaded, typed, typed_views, eq=eq)
        text = description or (
            f"automatedTest by atdata-core: {report}. codeHash: sha256 of the getter and putter source"
        )
    else:
        text = description or f"{method}; codeHash: sha256 of the getter and putter source"
    record = write_record(
        LensVerificationRecord(
            lens=found.uri,
            lens_commit=lens_commit,
            verification_method=method,
            code_hash=ShardChecksum("sha256", digest),
            description=text[:1000],
        )
    )
    _own_did(client)
    return _published(client.create_record(LENS_VERIFICATION, record), record)


def _single_commit(lens_record: Mapping[str, Any]) -> str | None:
    commits = {
        code.get("commit") for code in (lens_record.get("getterCode"), lens_record.get("putterCode"))
        if isinstance(code, Mapping)
    }
    return next(iter(commits)) if len(commits) == 1 and all(isinstance(c, str) and c for c in commits) else None


def publish_label(
    client: Any,
    name: str,
    dataset_uri: Any,
    *,
    version: str | None = None,
    description: str | None = None,
) -> Published:
    """Publish a label: a name for a dataset entry, like a git tag.

    By convention ``name`` is the dataset's name and ``version`` the tag, so
    ``atdata_core.load("@alice.example.com/mnist@v2")`` finds the entry the
    newest ``mnist`` label with version ``v2`` points at.
    """
    from atdata_core.records import LabelRecord, write_record

    _check_name(name, LABEL)
    target = dataset_uri.uri if isinstance(dataset_uri, Published) else dataset_uri
    record = write_record(LabelRecord(name=name, dataset_uri=target, version=version, description=description))
    return _published(client.create_record(LABEL, record), record)


def _check_name(name: Any, nsid: str) -> None:
    # The lexicon allows an empty name, but nothing could find the record by it (@handle/name).
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"the name must be a non-empty string, got {name!r}", path="$.name",
                              rule="minLength", nsid=nsid)


# --------------------------------------------------------------------------- client glue


def _own_did(client: Any) -> str:
    did = getattr(client, "did", None)
    if not did:
        from atdata_core.errors import AuthError

        raise AuthError("publishing needs a logged-in client (atdata login, or atdata_core.atproto.login)")
    return str(did)


def _published(result: Any, record: Mapping[str, Any]) -> Published:
    uri, cid = _pair(result)
    _remember(uri, cid, record)
    return Published(uri, cid, record)


def _remember(uri: str, cid: str | None, record: Mapping[str, Any]) -> None:
    """Keep what you published in the embedded index too (searchable offline); never fail a publish over it."""
    import logging

    try:
        from atdata_core.plugins import get_registry

        providers = get_registry().index_providers
        if "sqlite" in providers.names():
            providers.named("sqlite").put_record(uri, record, cid)
    except Exception as err:  # noqa: BLE001 - a cache, nothing more
        logging.getLogger("atdata_core.publish").debug("not kept in the local index: %s", err)


def _pair(result: Any) -> tuple[str, str | None]:
    """``(uri, cid)`` from whatever a write returned: a pair, a mapping or an object."""
    if isinstance(result, tuple):
        return str(result[0]), (str(result[1]) if len(result) > 1 and result[1] is not None else None)
    if isinstance(result, Mapping):
        return str(result["uri"]), result.get("cid")
    return str(result.uri), getattr(result, "cid", None)


def _as_item(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return {"uri": result["uri"], "cid": result.get("cid"), "value": result["value"]}
    return {"uri": result.uri, "cid": getattr(result, "cid", None), "value": result.value}


def _get_or_none(client: Any, repo: str, collection: str, rkey: str) -> dict[str, Any] | None:
    try:
        return _as_item(client.get_record(repo, collection, rkey))
    except RecordNotFound:
        return None
    except XrpcError as err:
        if err.error == "RecordNotFound" or err.status == 404:
            return None
        raise


def _list(client: Any, repo: str, collection: str) -> list[dict[str, Any]]:
    return [_as_item(item) for item in client.list_records(repo, collection)]
