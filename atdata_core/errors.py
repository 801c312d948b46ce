"""The exceptions atdata-core raises.

Every error derives from :class:`AtdataError`, so ``except AtdataError`` catches
anything the library raises on purpose. Catch lower in the tree to handle one
kind of failure::

    AtdataError
    ├── ConfigError                  a configuration file or variable is malformed
    ├── SampleError                  typed samples and their wire codec
    │   ├── SampleTypeError          a class or value cannot be packed (bad annotation, dtype mismatch)
    │   └── SampleDecodeError        a member's bytes are not a valid sample of the expected type
    ├── ShardError                   a tar shard is truncated, corrupt or unreadable
    │   └── ChecksumError            a shard's sha256 differs from the one recorded
    ├── RecordError                  ATProto records
    │   ├── ValidationError          a record breaks its lexicon (carries the JSON path and rule)
    │   └── RecordNotFound           no record at a URI, or none matches a schema / label query
    ├── SchemaError                  schema records and formats
    │   ├── UnknownSchemaFormat      no installed schema format understands a record
    │   └── IncompatibleSchema       a class or version does not match a schema
    ├── StorageError                 reading or writing shard bytes
    │   └── StorageNotFound          the object does not exist
    ├── NetworkError                 a server (PDS, PLC, AppView, HTTP host) failed
    │   ├── NetworkPolicyError       a URL or host someone else's record named is refused by the network
    │   │                            policy (scheme, private address, redirect); also a StorageError
    │   ├── ServiceUnavailable       down or timing out, after retries
    │   ├── RateLimited              HTTP 429 that did not clear in time
    │   ├── AuthError                login or session refresh failed
    │   ├── IdentityError            a handle or DID does not resolve, or the two do not confirm each other
    │   └── XrpcError                an XRPC call answered with an error envelope
    ├── PluginError                  plugin discovery and selection
    │   ├── PluginLoadError          a plugin failed to import (reported, then skipped)
    │   ├── DuplicateImplementation  two plugins registered the same key
    │   └── MissingImplementation    nothing registered for a key (names what to install)
    ├── LensError                    lenses and the lens graph
    │   ├── NoLensPath               no chain of lenses connects two types
    │   ├── AmbiguousLens            two lenses for the same pair, and no preference given
    │   ├── LensLawViolation         a lens breaks GetPut or PutGet on some sample
    │   ├── LensExecutionRefused     an executor will not run a lens's code (not installed, not trusted)
    │   └── NoMigrationPath          no migration lenses lead from a dataset's schema version to the class's
    │                                (also an IncompatibleSchema)
    └── SandboxError                 the local PDS sandbox could not be installed, started or stopped
"""

from __future__ import annotations


class AtdataError(Exception):
    """Root of every error atdata-core raises on purpose."""


class ConfigError(AtdataError):
    """A configuration file or ``ATDATA_*`` variable is malformed."""


class SampleError(AtdataError):
    """A typed sample could not be packed or unpacked."""


class SampleTypeError(SampleError, TypeError):
    """A class cannot be a sample type, or a value does not fit its field."""


class SampleDecodeError(SampleError, ValueError):
    """A member's bytes are not a valid sample.

    ``shard`` and ``member`` say where the bytes came from, when known.
    """

    def __init__(self, message: str, *, shard: str | None = None, member: str | None = None):
        self.reason = message
        self.shard = shard
        self.member = member
        super().__init__(_locate(message, shard, member))

    def located(self, shard: str | None, member: str | None) -> "SampleDecodeError":
        """A copy of this error that names where the bytes came from."""
        err = type(self)(self.reason, shard=shard or self.shard, member=member or self.member)
        err.__cause__ = self.__cause__ or self
        return err


class ShardError(AtdataError):
    """A tar shard is truncated, corrupt or unreadable."""

    def __init__(self, message: str, *, shard: str | None = None, member: str | None = None):
        self.reason = message
        self.shard = shard
        self.member = member
        super().__init__(_locate(message, shard, member))


class ChecksumError(ShardError):
    """A shard's bytes do not hash to the checksum recorded for it.

    ``note`` is appended to the message (the reader says there whether samples
    of the shard were already handed out).
    """

    def __init__(self, shard: str, expected: str, actual: str, algorithm: str = "sha256", *, note: str = ""):
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm
        super().__init__(
            f"{algorithm} mismatch: recorded {expected}, read {actual}. The shard was changed or "
            "damaged after it was published; do not trust its samples" + (f". {note}" if note else ""),
            shard=shard,
        )


class RecordError(AtdataError):
    """An ATProto record is malformed or cannot be interpreted."""


class ValidationError(RecordError, ValueError):
    """A record breaks a rule of its lexicon.

    ``path`` is the JSON path of the offending value (``$.storage.shards[0].url``),
    ``rule`` the rule broken (``maxLength``, ``required``, ``format:at-uri``...).
    """

    def __init__(self, message: str, *, path: str = "$", rule: str = "", nsid: str | None = None):
        self.path = path
        self.rule = rule
        self.nsid = nsid
        where = f"{nsid} " if nsid else ""
        super().__init__(f"{where}{path}: {message}" + (f" [{rule}]" if rule else ""))


class RecordNotFound(RecordError, LookupError):
    """No record exists at a URI, or no record matches a schema or label query."""


class SchemaError(AtdataError):
    """A schema record or schema format problem."""


class UnknownSchemaFormat(SchemaError):
    """No installed schema format understands a record's ``schemaType`` / ``$type``."""


class IncompatibleSchema(SchemaError):
    """A class, or a new schema version, is not compatible with a schema."""


class StorageError(AtdataError):
    """Shard bytes could not be read or written."""


class StorageNotFound(StorageError, FileNotFoundError):
    """The object a URL points at does not exist."""


class NetworkError(AtdataError):
    """A server (PDS, PLC directory, AppView, HTTP host) failed."""


class NetworkPolicyError(NetworkError, StorageError):
    """A URL or host named by someone else's record is refused by the network policy.

    The message says what was refused, why (its scheme, or the non-public
    address it names or resolves to) and which ``[network]`` setting would
    allow it. It is also a :class:`StorageError`, so a refused shard is
    handled like any unreadable shard (``on_error="skip"`` skips it).
    """


class ServiceUnavailable(NetworkError):
    """A server is down or timing out, and retries did not help."""


class RateLimited(NetworkError):
    """A server answered HTTP 429 and the wait for its reset time was too long."""


class AuthError(NetworkError):
    """Login or session refresh failed."""


class IdentityError(NetworkError):
    """A handle or DID could not be resolved, or a handle and its DID do not confirm each other."""


class XrpcError(NetworkError):
    """An XRPC call answered with an ``{"error", "message"}`` envelope."""

    def __init__(self, method: str, status: int, error: str, message: str = ""):
        self.method = method
        self.status = status
        self.error = error
        self.message = message
        super().__init__(f"{method} failed with HTTP {status} {error}: {message}".rstrip(": "))


class PluginError(AtdataError):
    """Plugin discovery or selection failed."""


class PluginLoadError(PluginError):
    """A plugin could not be imported. It is reported and skipped."""


class DuplicateImplementation(PluginError):
    """Two plugins registered an implementation under the same key."""


class MissingImplementation(PluginError, StorageError):
    """Nothing is registered for a key; the message names what to install."""


class LensError(AtdataError):
    """A lens or lens-graph problem."""


class NoLensPath(LensError):
    """No chain of registered lenses connects the two types."""


class AmbiguousLens(LensError):
    """Two lenses connect the same pair of types and no preference was given."""


class LensLawViolation(LensError, AssertionError):
    """A lens broke GetPut or PutGet on a sample."""


class LensExecutionRefused(LensError):
    """A lens executor refused to run a lens's code (not installed, not trusted)."""


class NoMigrationPath(IncompatibleSchema, NoLensPath):
    """A dataset of one version of a schema was loaded as another, and no migration lens path connects them.

    Both an :class:`IncompatibleSchema` (the class cannot read the samples) and
    a :class:`NoLensPath`; the message names both versions.
    """


class SandboxError(AtdataError):
    """The local PDS sandbox could not be installed, started or stopped.

    The message says which step failed and quotes the end of the log it wrote.
    """


def _locate(message: str, shard: str | None, member: str | None) -> str:
    where = []
    if shard:
        where.append(f"shard {shard}")
    if member:
        where.append(f"member {member}")
    return f"{', '.join(where)}: {message}" if where else message


__all__ = [name for name, value in globals().items() if isinstance(value, type) and issubclass(value, AtdataError)]
