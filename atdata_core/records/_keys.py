"""Record keys atdata-core chooses (DESIGN D5).

A schema record's key is ``{schemaId}:{version}``, e.g.
``com.example.image:1.2.0``: deterministic, so publishing the same version
twice is idempotent and a version is fetched without searching. ``@`` and
``+`` are not legal in record keys, so build metadata cannot be part of a
schema version.
"""

from __future__ import annotations

from atdata_core.errors import ValidationError
from atdata_core.lexicon._formats import check_nsid, check_record_key
from atdata_core.records._semver import parse_version


def check_schema_id(schema_id: str) -> None:
    """Refuse a schema id that is not NSID-shaped (``com.example.image``)."""
    problem = check_nsid(schema_id) if isinstance(schema_id, str) else "expected a string"
    if problem:
        raise ValidationError(
            f"schema id {schema_id!r}: {problem}. Schema ids are NSID-shaped, like com.example.image",
            path="$.schemaId",
            rule="format:nsid",
        )


def schema_rkey(schema_id: str, version: str) -> str:
    """The record key of a schema version: ``schema_rkey("com.example.image", "1.2.0")``
    is ``"com.example.image:1.2.0"``.
    """
    check_schema_id(schema_id)
    parsed = parse_version(version)
    if parsed.build:
        raise ValidationError(
            f"version {version!r} has build metadata ('+{parsed.build}'); '+' cannot appear in a record key. "
            f"Publish it as {str(parsed).split('+')[0]!r} or fold the build into a prerelease tag",
            path="$.version",
            rule="semver:build",
        )
    rkey = f"{schema_id}:{version}"
    problem = check_record_key(rkey)
    if problem:
        raise ValidationError(f"record key {rkey!r}: {problem}", path="$.rkey", rule="format:record-key")
    return rkey


def parse_schema_rkey(rkey: str) -> tuple[str, str] | None:
    """``"com.example.image:1.2.0"`` -> ``("com.example.image", "1.2.0")``.

    None when the key is not of that form (a TID chosen by another client, for
    instance): such records are resolved by their ``name`` and ``version``.
    The older ``{schemaId}@{version}`` spelling is recognised too.
    """
    for separator in (":", "@"):
        schema_id, found, version = rkey.partition(separator)
        if found and check_nsid(schema_id) is None and _is_semver(version):
            return schema_id, version
    return None


def _is_semver(text: str) -> bool:
    try:
        parse_version(text)
    except ValidationError:
        return False
    return True
