"""Typed samples: @packable, field introspection, DictSample."""

import dataclasses
import typing
from typing import Annotated, Any, Optional, TypeVar

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core.codec import decode_ndarray, encode_ndarray
from atdata_core.errors import SampleDecodeError, SampleTypeError
from atdata_core.sample import (
    Array,
    DictOf,
    DictSample,
    Field,
    ListOf,
    Nested,
    Optional as OptionalType,
    Scalar,
    make_sample_type,
    parse_annotation,
    sample_fields,
)

from tests import _future_types as fut


@atdata_core.packable
class Meta:
    source: str
    weight: float = 1.0


@atdata_core.packable
class Everything:
    text: str
    count: int
    ratio: float
    flag: bool
    raw: bytes
    words: list[str]
    table: dict[str, int]
    maybe: Optional[int]
    meta: Meta
    metas: list[Meta]
    image: NDArray[np.uint8]
    embeddings: list[NDArray[np.float32]]
    anything: np.ndarray
    tail: Optional[NDArray] = None
    tags: list[str] = dataclasses.field(default_factory=list)


def make_everything(**overrides):
    values = dict(
        text="héllo",
        count=-3,
        ratio=0.25,
        flag=True,
        raw=b"\x00\xff",
        words=["a", "b"],
        table={"x": 1},
        maybe=None,
        meta=Meta("cam", 2.0),
        metas=[Meta("a"), Meta("b", 0.5)],
        image=np.arange(48, dtype=np.uint8).reshape(3, 4, 4),
        embeddings=[np.ones(4, np.float32), np.zeros(2, np.float32)],
        anything=np.arange(3, dtype=">i8"),
        tail=np.eye(2),
    )
    values.update(overrides)
    return Everything(**values)


def test_every_supported_field_type_round_trips():
    sample = make_everything()
    back = Everything.from_bytes(sample.to_bytes())
    assert back == sample
    assert back.meta == Meta("cam", 2.0) and isinstance(back.metas[1], Meta)
    assert back.image.dtype == np.uint8 and back.anything.dtype == np.dtype(">i8")
    assert back.tags == []


def test_payload_is_a_plain_msgpack_map_other_clients_can_read():
    raw = msgpack.unpackb(make_everything().to_bytes())
    assert raw["text"] == "héllo" and raw["raw"] == b"\x00\xff" and raw["maybe"] is None
    assert raw["meta"] == {"source": "cam", "weight": 2.0}
    np.testing.assert_array_equal(decode_ndarray(raw["image"]), np.arange(48, dtype=np.uint8).reshape(3, 4, 4))


def test_ints_in_float_fields_are_sent_as_floats():
    raw = msgpack.unpackb(make_everything(ratio=3).to_bytes())
    assert raw["ratio"] == 3.0 and isinstance(raw["ratio"], float)


def test_declared_dtype_is_enforced_without_casting():
    with pytest.raises(SampleTypeError, match=r"Everything\.image: declared dtype uint8 .* float64"):
        make_everything(image=np.zeros((2, 2))).to_bytes()
    with pytest.raises(SampleTypeError, match="float32"):
        make_everything(embeddings=[np.zeros(2, np.float64)]).to_bytes()


def test_field_introspection_for_the_schema_layer():
    fields = {f.name: f for f in sample_fields(Everything)}
    assert fields["text"].type == Scalar(str) and fields["text"].required
    assert fields["image"].type == Array(np.dtype(np.uint8))
    assert fields["anything"].type == Array()
    assert fields["embeddings"].type == ListOf(Array(np.dtype(np.float32)))
    assert fields["table"].type == DictOf(Scalar(int))
    assert fields["maybe"].type == OptionalType(Scalar(int)) and not fields["maybe"].required
    assert fields["meta"].type == Nested(Meta)
    assert not fields["tags"].required


def _numpy_25_ndarray_alias():
    """``NDArray`` as numpy 2.5 defines it: a ``TypeAliasType``, not a generic alias of ``np.ndarray``."""
    alias_type = getattr(typing, "TypeAliasType", None)
    if alias_type is None:
        alias_type = pytest.importorskip("typing_extensions").TypeAliasType
    scalar = TypeVar("scalar", bound=np.generic)
    return alias_type("NDArray", np.ndarray[tuple[Any, ...], np.dtype[scalar]], type_params=(scalar,))


NEW_NDARRAY = _numpy_25_ndarray_alias()


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (np.ndarray, Array()),
        (NDArray, Array()),
        (NDArray[np.uint8], Array(np.dtype(np.uint8))),
        (np.ndarray[Any, np.dtype[np.float32]], Array(np.dtype(np.float32))),
        (NEW_NDARRAY, Array()),
        (NEW_NDARRAY[np.uint8], Array(np.dtype(np.uint8))),
        (Annotated[NEW_NDARRAY[np.float32], {"shape": (None, 3)}], Array(np.dtype(np.float32), (None, 3))),
        (Annotated[NDArray, {"dtype": "<i2", "shape": (2,)}], Array(np.dtype("<i2"), (2,))),
        (Optional[NEW_NDARRAY[np.int16]], OptionalType(Array(np.dtype(np.int16)))),
        (list[NEW_NDARRAY[np.float64]], ListOf(Array(np.dtype(np.float64)))),
        # an abstract scalar class names no single dtype: any array is accepted
        (NDArray[np.floating], Array()),
    ],
    ids=repr,
)
def test_every_numpy_spelling_of_an_array_annotation(annotation, expected):
    assert parse_annotation(annotation) == expected


def test_a_class_annotated_with_the_numpy_25_alias_round_trips_and_keeps_its_dtype():
    @atdata_core.packable
    class Frame:
        pixels: NEW_NDARRAY[np.uint8]
        mask: Optional[NEW_NDARRAY] = None

    frame = Frame(np.arange(6, dtype=np.uint8).reshape(2, 3))
    back = Frame.from_bytes(frame.to_bytes())
    assert back == frame and back.pixels.dtype == np.uint8 and back.mask is None
    with pytest.raises(SampleTypeError, match=r"Frame\.pixels: declared dtype uint8"):
        Frame(np.zeros(3, np.float32)).to_bytes()


def test_postponed_annotations_and_forward_references():
    fields = {f.name: f.type for f in sample_fields(fut.Annotated)}
    assert fields["image"] == Array(np.dtype(np.float32))
    assert fields["anything"] == Array() and fields["plain"] == Array()
    assert fields["where"] == Nested(fut.Point)
    assert fields["later"] == OptionalType(Nested(fut.Later))
    sample = fut.Annotated(
        image=np.ones((2, 2), np.float32),
        anything=np.arange(3),
        plain=np.arange(2),
        where=fut.Point(1, 2),
        names=["n"],
        scores={"s": 1.0},
        later=fut.Later(5),
    )
    assert fut.Annotated.from_bytes(sample.to_bytes()) == sample


def test_unsupported_annotations_are_refused_with_the_field_name():
    @atdata_core.packable
    class Bad:
        value: set

    with pytest.raises(SampleTypeError, match=r"Bad\.value: unsupported annotation"):
        sample_fields(Bad)

    @atdata_core.packable
    class Union2:
        value: int | str

    with pytest.raises(SampleTypeError, match="Optional"):
        sample_fields(Union2)

    @dataclasses.dataclass
    class NotPackable:
        x: int

    @atdata_core.packable
    class Outer:
        inner: NotPackable

    with pytest.raises(SampleTypeError, match="must itself be decorated"):
        sample_fields(Outer)


def test_missing_required_field_names_it():
    data = msgpack.packb({"x": 1.0})
    with pytest.raises(SampleDecodeError, match="missing required field 'y'"):
        fut.Point.from_bytes(data)


def test_extra_unknown_fields_are_tolerated():
    data = msgpack.packb({"x": 1.0, "y": 2.0, "added_later": [1, 2]})
    assert fut.Point.from_bytes(data) == fut.Point(1.0, 2.0)


def test_optional_fields_default_when_absent():
    data = Meta("s").to_bytes()
    assert Meta.from_bytes(msgpack.packb({"source": "s"})) == Meta("s", 1.0)
    assert Meta.from_bytes(data).weight == 1.0


def test_bad_array_inside_a_sample_names_the_field():
    raw = msgpack.unpackb(make_everything().to_bytes())
    raw["image"] = raw["image"][:-3]
    with pytest.raises(SampleDecodeError, match=r"Everything\.image: array header says"):
        Everything.from_bytes(msgpack.packb(raw))


def test_make_sample_type_builds_a_working_class():
    cls = make_sample_type(
        "Generated",
        [
            Field("note", OptionalType(Scalar(str)), False, None),
            Field("image", Array(np.dtype(np.int16), (2, None)), True),
            Field("label", Scalar(str), True),
        ],
    )
    assert atdata_core.is_packable(cls)
    sample = cls(image=np.zeros((2, 3), np.int16), label="x")
    assert sample.note is None
    assert cls.from_bytes(sample.to_bytes()) == sample
    assert [f.name for f in sample_fields(cls)] == ["image", "label", "note"]
    assert sample_fields(cls)[0].type == Array(np.dtype(np.int16), (2, None))
    with pytest.raises(SampleTypeError, match="int16"):
        cls(image=np.zeros(2), label="y").to_bytes()


def test_dict_sample_reads_any_sample_without_a_class():
    sample = DictSample.from_bytes(make_everything().to_bytes())
    assert sample.text == "héllo" and sample["count"] == -3
    assert isinstance(sample.image, np.ndarray) and sample.image.shape == (3, 4, 4)
    assert sample.meta == {"source": "cam", "weight": 2.0}
    assert isinstance(sample.embeddings[0], np.ndarray)
    assert sample.raw == b"\x00\xff"  # plain bytes stay bytes
    assert "text" in sample and set(sample) >= {"text", "image"}
    with pytest.raises(AttributeError, match="no field 'nope'"):
        sample.nope
    assert "ndarray(uint8, shape=(3, 4, 4))" in repr(sample)


def test_dict_sample_round_trips_and_compares():
    sample = DictSample(label="a", image=np.arange(4, dtype=np.float32))
    back = DictSample.from_bytes(sample.to_bytes())
    assert back == sample
    assert back != DictSample(label="a", image=np.arange(4, dtype=np.float64))


def test_arrays_written_as_npy_decode_in_typed_fields():
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.float32).reshape(2, 2))
    data = msgpack.packb({"image": buf.getvalue(), "anything": encode_ndarray(np.arange(2)), "plain": encode_ndarray(np.arange(1)),
                          "where": {"x": 0.0, "y": 1.0}, "names": [], "scores": {}})
    sample = fut.Annotated.from_bytes(data)
    np.testing.assert_array_equal(sample.image, np.arange(4, dtype=np.float32).reshape(2, 2))
