"""Where an object is: the two URL forms this plugin reads and writes.

``s3://bucket/key``
    The bucket reached as *your configuration* says (``[s3]`` and
    ``[s3.buckets.NAME]``: endpoint, region, profile), else AWS S3 through
    the standard AWS chain. This is the form you write and the form a record
    maps to when it names the endpoint you configured for its bucket.
``s3+https://host[:port]/bucket/key`` (and ``s3+http://``)
    The bucket on the service at ``https://host[:port]``, path-style. A
    record that names an endpoint you did not configure for its bucket maps
    to this form; it is read anonymously, so your credentials only ever go
    to the endpoints you configured.

The key is everything after the bucket, taken literally (no percent-decoding),
as the AWS command line does; ``s3://bucket`` is the bucket's root.
"""

from __future__ import annotations

import attrs

from atdata_core.errors import StorageError

from atdata_storage_s3.settings import normalize_endpoint

__all__ = ["S3Location", "QUALIFIED_SCHEMES", "SCHEMES"]

#: URL schemes that name the endpoint: ``s3+https://host/bucket/key``.
QUALIFIED_SCHEMES = ("s3+https", "s3+http")
SCHEMES = ("s3", *QUALIFIED_SCHEMES)


@attrs.frozen
class S3Location:
    """A bucket, a key (``""`` for the bucket's root) and, for qualified URLs, the endpoint they name.

    >>> S3Location.parse("s3://data/sets/mnist-000000.tar")
    S3Location(bucket='data', key='sets/mnist-000000.tar', endpoint=None)
    >>> S3Location.parse("s3+https://minio.example.com:9000/data/a.tar").url()
    's3+https://minio.example.com:9000/data/a.tar'
    """

    bucket: str
    key: str
    #: None for ``s3://`` (the configured endpoint); ``scheme://host[:port]`` for a qualified URL.
    endpoint: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Parse an ``s3://`` or ``s3+http(s)://`` URL; StorageError saying the expected form otherwise."""
        if not isinstance(url, str):
            raise StorageError(f"not an S3 URL: {url!r}; use s3://bucket/key")
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in SCHEMES:
            raise StorageError(f"not an S3 URL: {url!r}; use s3://bucket/key (or s3+https://host/bucket/key)")
        endpoint = None
        if scheme != "s3":
            host, slash, rest = rest.partition("/")
            try:
                endpoint = normalize_endpoint(f"{scheme[3:]}://{host}")
            except ValueError as err:
                raise StorageError(f"{url}: {err}") from None
            if not slash:
                rest = ""
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageError(f"{url!r} names no bucket; use s3://bucket/key")
        if any(char in bucket for char in " \t\r\n\\?#") or len(bucket) > 255:
            raise StorageError(f"{url!r}: {bucket!r} is not a bucket name")
        return cls(bucket, key, endpoint)

    def url(self, key: str | None = None) -> str:
        """This location's URL, or that of ``key`` in the same bucket and endpoint."""
        key = self.key if key is None else key
        path = f"{self.bucket}/{key}" if key else self.bucket
        if self.endpoint is None:
            return f"s3://{path}"
        scheme, _, host = self.endpoint.partition("://")
        return f"s3+{scheme}://{host}/{path}"

    def with_key(self, key: str) -> S3Location:
        return attrs.evolve(self, key=key)
