"""The schema-format conformance suite: the built-in JSON Schema format runs it,
and a toy format written here keeps the suite itself honest (a correct toy
format passes, a lossy one is caught).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

import atdata_core
from atdata_core.errors import SchemaError
from atdata_core.plugins import schema_format
from atdata_core.plugins.conformance import SchemaFormatConformance
from atdata_core.sample import Field
from atdata_core.sample import Optional as OptionalOf
from atdata_core.sample import Scalar, make_sample_type, sample_fields

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

    def type_from_schema(self, schema, *, name):
        self.validate_schema(schema)
        fields = []
        for item in schema["fields"]:
            scalar = Scalar(_TYPES[item["type"]])
            fields.append(Field(item["name"], scalar if item["required"] else OptionalOf(scalar), item["required"], None))
        return make_sample_type(name, fields)

    def classify_change(self, old, new):
        if old == new:
            return "patch"
        old_fields = {f["name"]: f for f in old["fields"]}
        new_fields = {f["name"]: f for f in new["fields"]}
        kept = all(new_fields.get(name) == field for name, field in old_fields.items())
        added = [new_fields[name] for name in new_fields.keys() - old_fields.keys()]
        if kept and all(not f["required"] for f in added):
            return "minor"
        return "major"


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
