"""The jsonSchema format: field mapping, round trips, records, and schemas written by the other client."""

from __future__ import annotations

import copy
import dataclasses
import io
from typing import Annotated, Any, Optional

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import packable, sample_fields
from atdata_core.errors import SchemaError, UnknownSchemaFormat, ValidationError
from atdata_core.lexicon import validate_record
from atdata_core.plugins import SchemaFormatSpec, get_registry, hookimpl, plugin_registered
from atdata_core.sample import AnyValue, Array, DictOf, ListOf, Nested, Scalar
from atdata_core.sample import Optional as Opt
from atdata_core.schema import (
    JsonSchemaFormat,
    sample_type_from_record,
    schema_record,
)

SHIM = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"
SHIM_1_1 = "https://alt.science/schemas/atdata-ndarray-bytes/1.1.0#/$defs/ndarray"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
UNION = "science.alt.dataset.schema#jsonSchemaFormat"

fmt = JsonSchemaFormat()


@packable
class Point:
    x: int
    y: float = 0.5


@packable
class Every:
    """A sample using every field type the core supports."""

    text: str
    count: int
    score: float
    flag: bool
    raw: bytes
    image: NDArray[np.uint8]
    features: Annotated[NDArray[np.float32], {"shape": (None, 64)}]
    big_endian: Annotated[np.ndarray, {"dtype": ">f4"}]
    untyped_array: np.ndarray
    tags: list[str]
    grid: list[list[int]]
    gaps: list[Optional[int]]
    weights: dict[str, float]
    origin: Point
    path: list[Point]
    anything: Any
    caption: Optional[str] = None
    retries: int = 3
    ratio: float = 0.25
    whole: float = 2.0
    names: list[str] = dataclasses.field(default_factory=list)
    fallback: Optional[int] = 7
    note: str = dataclasses.field(default="n/a", metadata={"description": "free text from the annotator"})
    label: int = dataclasses.field(default=0, metadata={"description": "class index, 0-9"})


def every_sample() -> Every:
    return Every(
        text="hello",
        count=4,
        score=0.5,
        flag=True,
        raw=b"\x00\x01\xff",
        image=np.arange(12, dtype=np.uint8).reshape(3, 4),
        features=np.ones((2, 64), dtype=np.float32),
        big_endian=np.arange(3, dtype=">f4"),
        untyped_array=np.eye(2, dtype=np.int16),
        tags=["a", "b"],
        grid=[[1, 2], [3]],
        gaps=[1, None, 3],
        weights={"w": 1.5},
        origin=Point(1, 2.5),
        path=[Point(0), Point(3, 4.0)],
        anything={"k": [1, "two"]},
        caption="a cat",
        names=["x"],
        fallback=None,
    )


def same_type(a, b) -> bool:
    """Structural equality of field types (nested classes compared by their fields)."""
    if isinstance(a, Nested) and isinstance(b, Nested):
        return a.cls.__name__ == b.cls.__name__ and same_fields(a.cls, b.cls)
    if type(a) is not type(b):
        return False
    if isinstance(a, (ListOf,)):
        return same_type(a.item, b.item)
    if isinstance(a, DictOf):
        return same_type(a.value, b.value)
    if isinstance(a, Opt):
        return same_type(a.inner, b.inner)
    return a == b


def plain(value):
    factory = getattr(value, "factory", None)
    if callable(factory):
        value = factory()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def same_fields(a: type, b: type) -> bool:
    fa = {f.name: f for f in sample_fields(a)}
    fb = {f.name: f for f in sample_fields(b)}
    assert fa.keys() == fb.keys(), f"{a.__name__}: {sorted(fa)} != {sorted(fb)}"
    for name in fa:
        x, y = fa[name], fb[name]
        assert same_type(x.type, y.type), f"{name}: {x.type} != {y.type}"
        assert x.required == y.required, name
        assert x.description == y.description, name
        if not x.required:
            assert plain(x.default) == plain(y.default), f"{name}: {x.default!r} != {y.default!r}"
            assert type(plain(x.default)) is type(plain(y.default)), name
    return True


# --------------------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (bytes, {"type": "string", "format": "byte", "contentEncoding": "base64"}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (list[Optional[float]], {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"}]}}),
        (Any, {}),
        (np.ndarray, {"$ref": SHIM}),
        (NDArray[np.float32], {"$ref": SHIM, "dtype": "float32"}),
        (Annotated[NDArray[np.uint8], {"shape": (None, None, 3)}], {"$ref": SHIM, "dtype": "uint8", "shape": [None, None, 3]}),
        (Annotated[np.ndarray, {"dtype": ">i8"}], {"$ref": SHIM, "dtype": ">i8"}),
        (Point, {
            "type": "object",
            "title": "Point",
            "properties": {"x": {"type": "integer"}, "y": {"type": "number", "default": "0.5"}},
            "required": ["x"],
        }),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v)[:40],
)
def test_each_field_type_maps_as_the_design_says_and_back(annotation, expected):
    cls = packable(type("One", (), {"__annotations__": {"value": annotation}}))
    schema = fmt.schema_from_type(cls)
    assert schema["properties"]["value"] == expected
    assert schema["required"] == ["value"]
    rebuilt = fmt.type_from_schema(schema, name="One")
    assert same_fields(cls, rebuilt)
    assert fmt.schema_from_type(rebuilt) == schema


def test_the_body_carries_type_dialect_and_array_format_version():
    schema = fmt.schema_from_type(Every)
    assert schema["$type"] == UNION
    assert schema["$schema"] == DRAFT_07
    assert schema["type"] == "object"
    assert schema["arrayFormatVersions"] == {"ndarrayBytes": "1.0.0"}
    plain_cls = packable(type("NoArrays", (), {"__annotations__": {"a": str}}))
    assert "arrayFormatVersions" not in fmt.schema_from_type(plain_cls)
    in_a_list = packable(type("ListOfArrays", (), {"__annotations__": {"a": list[np.ndarray]}}))
    assert fmt.schema_from_type(in_a_list)["arrayFormatVersions"] == {"ndarrayBytes": "1.0.0"}


def test_optional_fields_are_left_out_of_required_the_way_the_other_client_writes_them():
    schema = fmt.schema_from_type(Every)
    assert "caption" not in schema["required"]
    assert schema["properties"]["caption"] == {"type": "string"}  # no null type, no default: their convention
    assert "retries" not in schema["required"]
    assert schema["properties"]["retries"] == {"type": "integer", "default": 3}
    # Optional with a non-None default needs the null spelled out.
    assert schema["properties"]["fallback"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": 7}
    required = [f.name for f in sample_fields(Every) if f.required]
    assert schema["required"] == required


def test_float_defaults_fit_the_record_data_model():
    schema = fmt.schema_from_type(Every)
    assert schema["properties"]["ratio"]["default"] == "0.25"  # records cannot hold floats
    assert schema["properties"]["whole"]["default"] == 2
    rebuilt = fmt.type_from_schema(schema, name="Every")
    defaults = {f.name: f.default for f in sample_fields(rebuilt)}
    assert defaults["ratio"] == 0.25 and type(defaults["ratio"]) is float
    assert defaults["whole"] == 2.0 and type(defaults["whole"]) is float


def test_descriptions_travel_both_ways():
    schema = fmt.schema_from_type(Every)
    assert schema["properties"]["note"]["description"] == "free text from the annotator"
    rebuilt = fmt.type_from_schema(schema, name="Every")
    by_name = {f.name: f for f in sample_fields(rebuilt)}
    assert by_name["label"].description == "class index, 0-9"
    assert by_name["text"].description is None


def test_every_field_type_round_trips_class_to_schema_to_class():
    schema = fmt.schema_from_type(Every)
    rebuilt = fmt.type_from_schema(schema, name="Every")
    assert same_fields(Every, rebuilt)
    assert fmt.schema_from_type(rebuilt) == schema
    by_name = {f.name: f.type for f in sample_fields(rebuilt)}
    assert by_name["features"] == Array(np.dtype(np.float32), (None, 64))
    assert by_name["big_endian"] == Array(np.dtype(">f4"), None)
    assert by_name["untyped_array"] == Array(None, None)
    assert by_name["gaps"] == ListOf(Opt(Scalar(int)))
    assert by_name["anything"] == AnyValue()


def test_a_rebuilt_class_reads_and_writes_the_original_samples():
    sample = every_sample()
    rebuilt = fmt.type_from_schema(fmt.schema_from_type(Every), name="Every")
    again = rebuilt.from_bytes(sample.to_bytes())
    assert again.features.dtype == np.float32 and again.features.shape == (2, 64)
    assert again.big_endian.dtype == np.dtype(">f4")
    assert again.origin.y == 2.5 and type(again.origin).__name__ == "Point"
    assert again.gaps == [1, None, 3]
    assert Every.from_bytes(again.to_bytes()) == sample
    # A sample missing its optional fields decodes with the defaults.
    minimal = {k: v for k, v in sample.to_map().items() if k in {f.name for f in sample_fields(Every) if f.required}}
    decoded = rebuilt.from_map(minimal)
    assert decoded.caption is None and decoded.retries == 3 and decoded.ratio == 0.25
    assert decoded.names == [] and decoded.fallback == 7


def test_a_schema_round_trips_schema_to_class_to_schema():
    schema = {
        "$type": UNION,
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {
            "pixels": {"$ref": SHIM, "dtype": "uint16", "shape": [512, 512], "description": "raw counts"},
            "meta": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            "mask": {"$ref": SHIM, "dtype": "bool"},
            "exposure": {"type": "number", "default": 1},
            "comment": {"type": "string"},
        },
        "required": ["pixels", "meta", "mask"],
        "arrayFormatVersions": {"ndarrayBytes": "1.0.0"},
    }
    cls = fmt.type_from_schema(schema, name="Frame")
    assert fmt.schema_from_type(cls) == schema


def test_malformed_schemas_are_refused_with_the_reason():
    good = fmt.schema_from_type(Point)
    for breakage, message in [
        (lambda s: s.pop("properties"), "properties"),
        (lambda s: s.update({"$schema": "https://json-schema.org/draft/2020-12/schema"}), "draft-07"),
        (lambda s: s.update({"type": "array"}), "object"),
        (lambda s: s.update({"required": ["x", "z"]}), "'z'"),
        (lambda s: s["properties"].update({"bad-name": {"type": "string"}}), "bad-name"),
        (lambda s: s["properties"].update({"_hidden": {"type": "string"}}), "_hidden"),
        (lambda s: s["properties"].update({"img": {"$ref": SHIM, "dtype": "float99"}}), "float99"),
        (lambda s: s["properties"].update({"img": {"$ref": SHIM, "shape": [3, "x"]}}), "shape"),
        (lambda s: s["properties"].update({"other": {"$ref": "https://example.com/thing.json"}}), "thing.json"),
    ]:
        broken = copy.deepcopy(good)
        breakage(broken)
        with pytest.raises(SchemaError, match=message):
            fmt.validate_schema(broken)


def test_defaults_that_records_cannot_hold_are_refused_when_writing():
    @packable
    class WithArrayDefault:
        data: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))

    with pytest.raises(SchemaError, match="NDArray default"):
        fmt.schema_from_type(WithArrayDefault)


# --------------------------------------------------------------------------- records


def test_schema_record_is_a_valid_record_with_layout_version_and_time():
    record = schema_record(
        Every, name="com.example.every", version="1.2.0", description="Every field type.", license="MIT", tags=["test"]
    )
    assert validate_record(record) == []
    assert record["$type"] == "science.alt.dataset.schema"
    assert record["schemaType"] == "jsonSchema"
    assert record["atdataSchemaVersion"] == 1
    assert record["createdAt"].endswith("Z")
    assert record["metadata"] == {"license": "MIT", "tags": ["test"]}
    assert record["schema"] == fmt.schema_from_type(Every)


def test_schema_record_refuses_what_the_lexicon_refuses():
    with pytest.raises(ValidationError, match="semver"):
        schema_record(Point, name="p", version="v1")
    with pytest.raises(ValidationError, match="build"):
        schema_record(Point, name="p", version="1.0.0+build.7")
    with pytest.raises(ValidationError, match="maxLength"):
        schema_record(Point, name="p" * 101, version="1.0.0")


def test_classes_from_records_are_cached_by_schema_body():
    record = schema_record(Every, name="com.example.every", version="1.0.0")
    first = sample_type_from_record(record)
    assert first.__name__ == "Every"
    assert sample_type_from_record(copy.deepcopy(record)) is first
    # Publishing time and docs do not change the body; a field does.
    later = dict(record, createdAt="2030-01-01T00:00:00.000Z")
    assert sample_type_from_record(later) is first
    changed = copy.deepcopy(record)
    changed["schema"]["properties"]["extra"] = {"type": "string"}
    assert sample_type_from_record(changed) is not first
    assert sample_type_from_record(record, name="Renamed").__name__ == "Renamed"


def test_a_newer_record_layout_asks_for_an_upgrade():
    record = schema_record(Point, name="p", version="1.0.0")
    record["atdataSchemaVersion"] = 2
    with pytest.raises(SchemaError, match="Upgrade atdata-core"):
        sample_type_from_record(record)


def test_an_unknown_format_names_the_plugin_to_install():
    if "protobuf" in {t for spec in get_registry().schema_formats.specs() for t in spec.schema_types}:
        pytest.skip("a protobuf schema format is installed here")
    record = {
        "$type": "science.alt.dataset.schema",
        "name": "com.example.image",
        "version": "1.0.0",
        "schemaType": "protobuf",
        "schema": {"$type": "science.alt.dataset.schema#protobufFormat", "fileDescriptorSet": "AAAA"},
        "createdAt": "2025-01-01T00:00:00Z",
    }
    with pytest.raises(UnknownSchemaFormat, match="pip install atdata-schema-protobuf"):
        sample_type_from_record(record)
    unknown = dict(record, schemaType="yamlSchema", schema={"$type": "com.example.schema#yaml"})
    with pytest.raises(UnknownSchemaFormat, match="yamlSchema") as info:
        sample_type_from_record(unknown)
    assert "jsonSchema" in str(info.value)  # says what is registered


def test_the_format_is_chosen_through_the_registry_by_union_type():
    built = []

    class ToyFormat:
        def type_from_schema(self, schema, *, name):
            built.append(schema)
            return Point

    class Formats:
        @hookimpl
        def atdata_schema_formats(self):
            return [
                SchemaFormatSpec(
                    name="toy", schema_types=("toySchema",), union_types=("com.example.schema#toy",),
                    factory=lambda config: ToyFormat(),
                )
            ]

    record = {"name": "p", "version": "1.0.0", "schemaType": "toySchema", "schema": {"$type": "com.example.schema#toy", "n": 1}}
    with plugin_registered(Formats(), name="toy-formats"):
        assert sample_type_from_record(record) is Point
    assert built == [{"$type": "com.example.schema#toy", "n": 1}]


# --------------------------------------------------------------------------- the other client's schemas
#
# Record bodies as the other federation client writes them, re-typed from its
# publisher's field mapping, its NDArray v1.1 annotation tests and its lexicon
# reference example. Their samples carry arrays as .npy bytes.


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


THEIR_PUBLISHED = {
    "$type": "science.alt.dataset.schema",
    "name": "ImageSample",
    "version": "1.0.0",
    "schemaType": "jsonSchema",
    "schema": {
        "$type": UNION,
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {
            "image": {"$ref": SHIM},
            "label": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "thumbnail": {"type": "string", "format": "byte", "contentEncoding": "base64"},
            "confidence": {"type": "number"},
        },
        "required": ["image", "label", "tags", "thumbnail"],
        "arrayFormatVersions": {"ndarrayBytes": "1.0.0"},
    },
    "createdAt": "2025-06-01T12:00:00Z",
}

THEIR_ANNOTATED = {
    "$type": "science.alt.dataset.schema",
    "name": "EmbeddingSample",
    "version": "1.1.0",
    "schemaType": "jsonSchema",
    "schema": {
        "$type": UNION,
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {
            "embedding": {
                "$ref": SHIM_1_1,
                "dtype": "float32",
                "shape": [None, 64],
                "dimensionNames": ["batch", "features"],
            },
            "id": {"type": "integer"},
        },
        "required": ["embedding", "id"],
        "arrayFormatVersions": {"ndarrayBytes": "1.1.0"},
    },
    "createdAt": "2025-09-01T08:30:00Z",
}

THEIR_REFERENCE_EXAMPLE = {
    "$type": "science.alt.dataset.schema",
    "name": "ImageSample",
    "version": "1.0.0",
    "schemaType": "jsonSchema",
    "schema": {
        "$type": UNION,
        "$schema": DRAFT_07,
        "title": "ImageSample",
        "type": "object",
        "arrayFormatVersions": {"ndarrayBytes": "1.0.0"},
        "required": ["image", "label"],
        "properties": {
            "image": {
                "$ref": "#/$defs/ndarray",
                "description": "RGB image with variable height/width",
                "x-atdata-dtype": "uint8",
                "x-atdata-shape": [None, None, 3],
                "x-atdata-notes": "Images must have 3 color channels (RGB)",
            },
            "label": {"type": "string", "description": "Human-readable label for the image"},
            "confidence": {"type": "number", "description": "Optional confidence score", "minimum": 0, "maximum": 1},
        },
        "$defs": {
            "ndarray": {
                "type": "string",
                "format": "byte",
                "description": "Numpy array serialized using numpy .npy format",
                "contentEncoding": "base64",
                "contentMediaType": "application/octet-stream",
            }
        },
    },
    "description": "Sample type for images with labels",
    "metadata": {"license": "MIT", "tags": ["computer-vision", "image-classification"]},
    "createdAt": "2025-01-06T12:00:00Z",
}


def test_their_published_schema_builds_a_class_that_decodes_their_samples():
    assert validate_record(THEIR_PUBLISHED, strict=False) == []
    cls = sample_type_from_record(THEIR_PUBLISHED)
    fields = {f.name: f for f in sample_fields(cls)}
    assert fields["image"].type == Array() and fields["image"].required
    assert fields["thumbnail"].type == Scalar(bytes)
    assert fields["confidence"].type == Opt(Scalar(float)) and not fields["confidence"].required
    image = np.random.default_rng(1).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    payload = msgpack.packb(
        {"image": npy(image), "label": "cat", "tags": ["pet"], "thumbnail": b"\x89PNG", "confidence": None}
    )
    sample = cls.from_bytes(payload)
    np.testing.assert_array_equal(sample.image, image)
    assert (sample.label, sample.tags, sample.thumbnail, sample.confidence) == ("cat", ["pet"], b"\x89PNG", None)
    without_optional = msgpack.packb({"image": npy(image), "label": "dog", "tags": [], "thumbnail": b""})
    assert cls.from_bytes(without_optional).confidence is None
    # Writing our class's schema gives their body back.
    assert fmt.schema_from_type(cls) == THEIR_PUBLISHED["schema"]


def test_their_annotated_arrays_keep_dtype_and_shape():
    cls = sample_type_from_record(THEIR_ANNOTATED)
    fields = {f.name: f.type for f in sample_fields(cls)}
    assert fields["embedding"] == Array(np.dtype("float32"), (None, 64))
    vectors = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    sample = cls.from_bytes(msgpack.packb({"embedding": npy(vectors), "id": 9}))
    assert sample.embedding.dtype == np.float32
    np.testing.assert_array_equal(sample.embedding, vectors)
    # A class we write back says the same dtype and shape (dimension names are not kept).
    written = fmt.schema_from_type(cls)["properties"]["embedding"]
    assert written == {"$ref": SHIM, "dtype": "float32", "shape": [None, 64]}


def test_their_reference_example_with_a_local_shim_and_extension_keywords_loads():
    assert validate_record(THEIR_REFERENCE_EXAMPLE, strict=False) == []
    cls = sample_type_from_record(THEIR_REFERENCE_EXAMPLE)
    assert cls.__name__ == "ImageSample"
    assert cls.__doc__ == "Sample type for images with labels"
    fields = {f.name: f for f in sample_fields(cls)}
    assert fields["image"].type == Array(np.dtype("uint8"), (None, None, 3))
    assert fields["image"].description == "RGB image with variable height/width"
    assert fields["confidence"].type == Opt(Scalar(float)) and not fields["confidence"].required
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    sample = cls.from_bytes(msgpack.packb({"image": npy(rgb), "label": "red dot", "confidence": 0.9}))
    np.testing.assert_array_equal(sample.image, rgb)
    assert sample.confidence == 0.9 and sample.label == "red dot"


@packable
class Framed:
    corner: Point = dataclasses.field(default_factory=lambda: Point(1, 1.5))


def test_a_nested_sample_default_round_trips_and_is_not_shared():
    schema = fmt.schema_from_type(Framed)
    assert schema["properties"]["corner"]["default"] == {"x": 1, "y": "1.5"}
    rebuilt = fmt.type_from_schema(schema, name="Framed")
    assert same_fields(Framed, rebuilt)
    first, second = rebuilt(), rebuilt()
    assert (first.corner.x, first.corner.y) == (1, 1.5)
    first.corner.x = 5
    assert second.corner.x == 1


def test_a_record_without_a_schema_body_is_refused():
    with pytest.raises(SchemaError, match="'schema'"):
        sample_type_from_record({"name": "p", "version": "1.0.0", "schemaType": "jsonSchema"})
