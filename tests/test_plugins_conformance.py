"""The schema-format and storage conformance suites: the built-in JSON Schema
format runs its suite, and toy implementations written here keep the suites
themselves honest (a correct toy passes, a broken one is caught).
"""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Optional

import numpy as np
import pytest

import atdata_core
from atdata_core.errors import PluginError, RecordError, SchemaError, StorageError, StorageNotFound
from atdata_core.plugins import (
    ShardRef,
    StorageBackendSpec,
    StorageBase,
    hookimpl,
    plugin_registered,
    schema_format,
    storage_backend,
)
from atdata_core.plugins.conformance import (
    SchemaFormatConformance,
    StorageBackendConformance,
    StorageRecordMapperConformance,
)
from atdata_core.sample import Field
from atdata_core.sample import Optional as OptionalOf
from atdata_core.sample import Scalar, make_sample_type, sample_fields
from atdata_core.storage import storage_record_for

TOY = "com.example.toySchema#fields"
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_NAMES = {v: k for k, v in _TYPES.items()}


class ToyFormat:
    """Scalar fields only: {"$type": TOY, "fields": [{"name", "type", "required"}]}."""

    def schema_from_type(self, sample_type):
        fields = []
        for field in sample_fields(sample_type):
            inner = field.type.inner if isinstance(field.type, OptionalOf) else field.type
            if not isinstance(inner, Scalar) or inner.type not in _NAMES:
                raise SchemaError(f"the toy format cannot express field {field.name}")
            fields.append({"name": field.name, "type": _NAMES[inner.type], "required": field.required})
        return {"$type": TOY, "fields": fields}

    def validate_schema(self, schema):
        if schema.get("$type") != TOY or not isinstance(schema.get("fields"), list):
            raise SchemaError(f"not a toy schema: {schema!r}")

    def fields_of(self, schema):
        self.validate_schema(schema)
        fields = []
        for item in schema["fields"]:
            scalar = Scalar(_TYPES[item["type"]])
            fields.append(Field(item["name"], scalar if item["required"] else OptionalOf(scalar), item["required"], None))
        return tuple(fields)

    def type_from_schema(self, schema, *, name):
        return make_sample_type(name, self.fields_of(schema))

    def format_changes(self, old, new):
        return []  # the toy format expresses nothing beyond its fields


@atdata_core.packable
class Reading:
    label: str
    count: int
    score: float
    flag: bool
    note: Optional[str] = None


@atdata_core.packable
class ReadingV2:
    label: str
    count: int
    score: float
    flag: bool
    note: Optional[str] = None
    unit: Optional[str] = None


@atdata_core.packable
class ReadingV3:
    label: str
    count: int


class TestToyFormatConforms(SchemaFormatConformance):
    union_type = TOY

    @pytest.fixture
    def schema_format(self):
        return ToyFormat()

    @pytest.fixture
    def sample(self):
        return Reading(label="a", count=3, score=0.5, flag=True, note="hi")

    @pytest.fixture
    def changes(self):
        return [(Reading, ReadingV2, "minor"), (Reading, ReadingV3, "major"), (ReadingV2, Reading, "major")]


class LossyFormat(ToyFormat):
    """Breaks the contract: the rebuilt class forgets optional fields."""

    def type_from_schema(self, schema, *, name):
        kept = dict(schema, fields=[f for f in schema["fields"] if f["required"]])
        return super().type_from_schema(kept, name=name)


def test_the_suite_catches_a_format_that_loses_fields():
    suite = SchemaFormatConformance()
    suite.union_type = TOY
    sample = Reading(label="a", count=3, score=0.5, flag=True, note="kept?")
    with pytest.raises(AssertionError):
        suite.test_type_from_schema_reads_and_writes_the_same_samples(LossyFormat(), sample)
    with pytest.raises(AssertionError):
        suite.test_schema_round_trip_is_stable(LossyFormat(), sample)


# -- the built-in JSON Schema format, through the registry --------------------

@atdata_core.packable
class Inner:
    x: int
    y: float


@atdata_core.packable
class Everything:
    label: str
    count: int
    score: float
    flag: bool
    raw: bytes
    tags: list[str]
    image: np.ndarray
    point: Inner
    note: Optional[str] = None


@atdata_core.packable
class EverythingPlusOptional:
    label: str
    count: int
    score: float
    flag: bool
    raw: bytes
    tags: list[str]
    image: np.ndarray
    point: Inner
    note: Optional[str] = None
    extra: Optional[int] = None


class TestBuiltinJsonSchemaFormatConforms(SchemaFormatConformance):
    union_type = "science.alt.dataset.schema#jsonSchemaFormat"

    @pytest.fixture
    def schema_format(self):
        return schema_format("jsonSchema")

    @pytest.fixture
    def sample(self):
        return Everything(
            label="cat",
            count=2,
            score=0.25,
            flag=False,
            raw=b"\x00\x01",
            tags=["a", "b"],
            image=np.arange(12, dtype=np.uint8).reshape(3, 4),
            point=Inner(x=1, y=2.5),
            note=None,
        )

    @pytest.fixture
    def changes(self):
        return [(Everything, EverythingPlusOptional, "minor"), (EverythingPlusOptional, Everything, "major")]


# -- storage -------------------------------------------------------------------
# A toy dict store written against StorageBase: the correct one passes both
# storage suites, broken ones are caught, and a backend registered for a record
# type without mapping records is refused with a clear error.

TOY_STORAGE = "com.example.toyStorage"


class ToyStore(StorageBase):
    """toy://<key> objects in a dict; only the five primitives are written."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def open(self, url):
        with self.lock:
            if url not in self.objects:
                raise StorageNotFound(f"no object at {url}")
            return io.BytesIO(self.objects[url])

    def size(self, url):
        with self.lock:
            if url not in self.objects:
                raise StorageNotFound(f"no object at {url}")
            return len(self.objects[url])

    def put(self, local_path, url):
        with open(local_path, "rb") as handle:
            data = handle.read()
        with self.lock:
            self.objects[url] = data
        return url

    def delete(self, url):
        with self.lock:
            if self.objects.pop(url, None) is None:
                raise StorageNotFound(f"no object at {url}")

    def list(self, prefix):
        folder = prefix.rstrip("/")
        with self.lock:
            return sorted(url for url in self.objects if url == folder or url.startswith(folder + "/"))


class ToyStoreWithRecords(ToyStore):
    def to_storage_record(self, shards):
        if not shards:
            raise StorageError("no shards")
        for shard in shards:
            if not shard.sha256:
                raise StorageError(f"{shard.url} has no sha256")
        return {"$type": TOY_STORAGE, "shards": [{"url": s.url, "sha256": s.sha256} for s in shards]}

    def from_storage_record(self, record):
        if record.get("$type") != TOY_STORAGE:
            raise RecordError(f"not a {TOY_STORAGE} record")
        return [ShardRef(s["url"], s["sha256"]) for s in record["shards"]]


class TestToyStoreConforms(StorageBackendConformance, StorageRecordMapperConformance):
    record_type = TOY_STORAGE

    @pytest.fixture
    def backend(self):
        return ToyStoreWithRecords()

    @pytest.fixture
    def base_url(self, request):
        return f"toy://bucket/{request.node.name}"


class NamePrefixListing(ToyStore):
    """The old ambiguity: list() by name prefix, so 'set' also lists 'set2/...'."""

    def list(self, prefix):
        with self.lock:
            return sorted(url for url in self.objects if url.startswith(prefix))


class ChecksumDroppingRecords(ToyStoreWithRecords):
    def from_storage_record(self, record):
        return [ShardRef(ref.url) for ref in super().from_storage_record(record)]


def _put(backend, tmp_path):
    def put(url, data):
        local = tmp_path / f"upload-{len(list(tmp_path.iterdir()))}.bin"
        local.write_bytes(data)
        return backend.put(str(local), url)

    return put


def test_the_storage_suite_catches_name_prefix_listing(tmp_path):
    backend = NamePrefixListing()
    with pytest.raises(AssertionError):
        StorageBackendConformance().test_list_prefix_names_a_folder_not_a_name_prefix(
            backend, "toy://bucket/t", _put(backend, tmp_path)
        )


def test_the_record_suite_catches_dropped_checksums(tmp_path):
    backend = ChecksumDroppingRecords()
    put = _put(backend, tmp_path)
    written = [(ShardRef(put(f"toy://b/{i}.tar", bytes([i])), hashlib.sha256(bytes([i])).hexdigest()), bytes([i])) for i in range(2)]
    suite = StorageRecordMapperConformance()
    suite.record_type = TOY_STORAGE
    with pytest.raises(AssertionError):
        suite.test_record_round_trip_keeps_urls_checksums_and_order(backend, written, {})


def test_a_backend_without_abstract_primitives_cannot_be_built():
    class Incomplete(StorageBase):
        def open(self, url):
            return io.BytesIO()

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


class _ToyPlugin:
    def __init__(self, factory):
        self.factory = factory

    @hookimpl
    def atdata_storage_backends(self):
        return [StorageBackendSpec(name="toy", schemes=("toy",), record_types=(TOY_STORAGE,), factory=self.factory)]


def test_a_backend_registered_for_a_record_type_must_map_records():
    with plugin_registered(_ToyPlugin(lambda config: ToyStore()), name="toy-plugin"):
        with pytest.raises(PluginError, match=r"'toy' from plugin 'toy-plugin' .* cannot map them"):
            storage_backend(record_type=TOY_STORAGE)
        # Its shards cannot be published either, and the error says what to do instead.
        with pytest.raises(StorageError, match=r"toy:// shards cannot be published.*shared storage"):
            storage_record_for([ShardRef("toy://bucket/a.tar", "ab" * 32)])


def test_a_mapping_backend_writes_the_storage_record_of_its_shards():
    with plugin_registered(_ToyPlugin(lambda config: ToyStoreWithRecords()), name="toy-plugin"):
        assert isinstance(storage_backend(record_type=TOY_STORAGE), ToyStoreWithRecords)
        record = storage_record_for([ShardRef("toy://bucket/a.tar", "ab" * 32)])
        assert record == {"$type": TOY_STORAGE, "shards": [{"url": "toy://bucket/a.tar", "sha256": "ab" * 32}]}


def test_local_files_cannot_be_published_and_the_error_says_why(tmp_path):
    with pytest.raises(StorageError, match="local files cannot be published.*base_url"):
        storage_record_for([ShardRef(str(tmp_path / "a.tar"), "ab" * 32)])
