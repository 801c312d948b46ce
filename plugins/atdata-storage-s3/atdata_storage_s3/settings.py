"""The ``[s3]`` settings: endpoints, regions and AWS profiles, per bucket when needed.

atdata reads them from every configuration layer and hands the backend an
:class:`S3Settings`; credentials never appear here (they come from the
standard AWS chain: environment variables, ``~/.aws`` files, the profile
named below, an instance role) and are never written into records::

    [s3]
    endpoint = "https://minio.example.com"   # every bucket, unless overridden (absent: AWS S3)
    region = "eu-west-1"
    profile = "work"                         # a profile of your AWS config files
    part_size = 16777216                     # multipart part size in bytes (>= 5 MiB)
    max_concurrency = 4                      # parts of one upload in flight at once

    [s3.buckets.shared-datasets]             # one bucket's own endpoint, region, profile
    endpoint = "https://storage.example.org"
    profile = "partner"

A bucket's table overrides the top-level values it sets and inherits the
rest, except that a bucket on another endpoint inherits nothing: a region and
a profile belong to their endpoint, and your credentials for one service are
never sent to another. Environment variables set the top-level keys (``ATDATA_S3_ENDPOINT``,
``ATDATA_S3_PART_SIZE``...); bucket tables live in configuration files.

This module is imported at plugin discovery, so it imports attrs and nothing heavy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["MIN_PART_SIZE", "BucketSettings", "S3Settings", "normalize_endpoint"]

#: S3 refuses multipart parts below 5 MiB (all but the last).
MIN_PART_SIZE = 5 * 1024 * 1024
#: S3 refuses parts above 5 GiB.
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
_ADDRESSING = ("auto", "path", "virtual")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def normalize_endpoint(text: str) -> str:
    """An endpoint URL as ``scheme://host[:port]``, the one spelling atdata compares and records.

    http(s) only, with a host and nothing else: no user name or password (a
    record must never carry credentials), path, query or fragment. The
    scheme and host are lower-cased and a default port is dropped.

    >>> normalize_endpoint("HTTPS://Storage.Example.org:443/")
    'https://storage.example.org'

    Raises ValueError saying what is wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an endpoint is a URL like https://storage.example.org, not {text!r}")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as err:
        raise ValueError(f"endpoint {text!r} is not a valid URL: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"endpoint {text!r} must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"endpoint {text!r} carries a user name or password; credentials come from the AWS chain "
            "(environment, ~/.aws files, [s3] profile), never from an endpoint URL"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"endpoint {text!r} must be scheme://host[:port] only, without a path, query or fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"endpoint {text!r} has no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ValueError(f"endpoint {text!r} has an invalid host name {host!r}") from None
        netloc = host
    else:
        netloc = f"[{address.compressed}]" if address.version == 6 else address.compressed
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    return f"{scheme}://{netloc}"


def _endpoint(value: Any) -> str | None:
    return None if value is None else normalize_endpoint(value)


def _check_region(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _REGION.match(value):
        raise ValueError(f"region must look like 'us-east-1' (lower-case letters, digits, '-'), not {value!r}")


def _check_profile(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError("profile must name a profile of your AWS config files, not be empty")


def _check_addressing(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in _ADDRESSING:
        raise ValueError(f"addressing_style must be one of {', '.join(_ADDRESSING)}, not {value!r}")


@attrs.frozen
class BucketSettings:
    """One bucket's overrides (``[s3.buckets.NAME]``); None inherits the top-level value."""

    endpoint: str | None = attrs.field(default=None, converter=_endpoint)
    region: str | None = attrs.field(default=None, validator=_check_region)
    profile: str | None = attrs.field(default=None, validator=_check_profile)
    addressing_style: str | None = attrs.field(default=None, validator=_check_addressing)


_BUCKET_KEYS = tuple(field.name for field in attrs.fields(BucketSettings))


def _buckets(value: Any) -> dict[str, BucketSettings]:
    if not isinstance(value, Mapping):
        raise ValueError("buckets must be a table of [s3.buckets.NAME] tables")
    out: dict[str, BucketSettings] = {}
    for name, table in value.items():
        if isinstance(table, BucketSettings):
            out[name] = table
            continue
        if not isinstance(table, Mapping):
            raise ValueError(f"buckets.{name} must be a table ([s3.buckets.{name}]), not {table!r}")
        unknown = sorted(set(table) - set(_BUCKET_KEYS))
        if unknown:
            raise ValueError(f"unknown setting buckets.{name}.{unknown[0]} (a bucket sets {', '.join(_BUCKET_KEYS)})")
        try:
            out[name] = BucketSettings(**table)
        except (TypeError, ValueError) as err:
            raise ValueError(f"buckets.{name}: {err}") from None
    return out


def _check_part_size(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
        raise ValueError(
            f"part_size must be between {MIN_PART_SIZE} (5 MiB, the smallest part S3 accepts) "
            f"and {MAX_PART_SIZE} (5 GiB), not {value}"
        )


def _check_concurrency(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not 1 <= value <= 64:
        raise ValueError(f"max_concurrency must be between 1 and 64, not {value}")


@attrs.frozen
class S3Settings:
    """The ``[s3]`` section (see the module docstring).

    ``endpoint``, ``region``, ``profile`` and ``addressing_style`` apply to
    every bucket that does not set its own in ``buckets``. Without an
    endpoint the bucket is on AWS S3; without a region or profile, boto3's
    own chain decides (``AWS_REGION``, ``AWS_PROFILE``, ``~/.aws/config``).
    An object larger than ``part_size`` bytes is uploaded in parts of that
    size, ``max_concurrency`` at a time.

    >>> S3Settings(buckets={"data": {"endpoint": "https://minio.example.com:9000/"}}).for_bucket("data").endpoint
    'https://minio.example.com:9000'
    """

    endpoint: str | None = attrs.field(default=None, converter=_endpoint)
    region: str | None = attrs.field(default=None, validator=_check_region)
    profile: str | None = attrs.field(default=None, validator=_check_profile)
    addressing_style: str = attrs.field(default="auto", validator=_check_addressing)
    part_size: int = attrs.field(default=16 * 1024 * 1024, validator=_check_part_size)
    max_concurrency: int = attrs.field(default=4, validator=_check_concurrency)
    buckets: dict = attrs.field(factory=dict, converter=_buckets)

    def for_bucket(self, bucket: str) -> BucketSettings:
        """The settings that apply to ``bucket``: its own table over the top-level values."""
        own = self.buckets.get(bucket) or BucketSettings()
        if own.endpoint is not None and own.endpoint != self.endpoint:
            # Another service: the top-level region and profile belong to the top-level endpoint,
            # and inheriting the profile would sign requests to this one with those credentials.
            return attrs.evolve(own, addressing_style=own.addressing_style or "auto")
        return BucketSettings(
            endpoint=own.endpoint if own.endpoint is not None else self.endpoint,
            region=own.region if own.region is not None else self.region,
            profile=own.profile if own.profile is not None else self.profile,
            addressing_style=own.addressing_style or self.addressing_style,
        )
