"""Schema evolution: change classification, version bumps, diffs, and class-vs-schema checks."""

from __future__ import annotations

import copy
import dataclasses
from typing import Annotated, Optional

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import packable
from atdata_core.errors import IncompatibleSchema, SchemaError
from atdata_core.plugins import Field, Scalar, SchemaChange, make_sample_type, sample_fields
from atdata_core.plugins import Optional as OptionalOf
from atdata_core.schema import (
    JsonSchemaFormat,
    check_compatible,
    check_version_bump,
    classify_change,
    classify_changes,
    compare_schemas,
    diff_schemas,
    schema_record,
)


@packable
class Digit:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int
    caption: Optional[str] = None


@packable
class DigitDocumented:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int = dataclasses.field(metadata={"description": "the digit shown, 0-9"})
    caption: Optional[str] = None


@packable
class DigitWithScore:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int
    caption: Optional[str] = None
    score: float = 0.0


@packable
class DigitWithSource:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int
    source: str
    caption: Optional[str] = None


@packable
class DigitWithoutCaption:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int


@packable
class DigitLabelText:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: str
    caption: Optional[str] = None


@packable
class DigitFloatImage:
    image: Annotated[NDArray[np.float32], {"shape": (28, 28)}]
    label: int
    caption: Optional[str] = None


@packable
class DigitBigImage:
    image: Annotated[NDArray[np.uint8], {"shape": (32, 32)}]
    label: int
    caption: Optional[str] = None


@packable
class DigitCaptionRequired:
    image: Annotated[NDArray[np.uint8], {"shape": (28, 28)}]
    label: int
    caption: str


@packable
class Box:
    x: int


@packable
class BoxWithColour:
    x: int
    colour: str = "red"


@packable
class Scene:
    box: Box


@packable
class Scene2:
    box: BoxWithColour


def record(cls, version="1.0.0", **kwargs):
    return schema_record(cls, name="com.example.digit", version=version, **kwargs)


V1 = record(Digit)

CASES = [
    ("field description added", DigitDocumented, "patch"),
    ("optional field added", DigitWithScore, "minor"),
    ("required field added", DigitWithSource, "major"),
    ("field removed", DigitWithoutCaption, "major"),
    ("type changed", DigitLabelText, "major"),
    ("dtype changed", DigitFloatImage, "major"),
    ("shape changed", DigitBigImage, "major"),
    ("optional field made required", DigitCaptionRequired, "major"),
]


@pytest.mark.parametrize(("what", "new_cls", "expected"), CASES, ids=[c[0] for c in CASES])
def test_changes_are_classified(what, new_cls, expected):
    assert classify_change(V1, record(new_cls, "9.0.0")) == expected


def test_record_documentation_alone_is_a_patch():
    same = record(Digit, "1.0.1", description="Handwritten digits.", license="CC-BY-4.0", tags=["vision"])
    assert classify_change(V1, same) == "patch"
    assert classify_change(V1, copy.deepcopy(V1)) == "patch"


def test_a_constraint_keyword_the_fields_do_not_model_is_major():
    constrained = copy.deepcopy(V1)
    constrained["version"] = "1.0.1"
    constrained["schema"]["properties"]["label"]["maximum"] = 9
    assert classify_change(V1, constrained) == "major"
    documented = copy.deepcopy(V1)
    documented["schema"]["properties"]["label"]["title"] = "Label"
    assert classify_change(V1, documented) == "patch"
    # Hidden behind an added optional field, it still counts.
    both = record(DigitWithScore, "1.1.0")
    both["schema"]["properties"]["label"]["maximum"] = 9
    assert classify_change(V1, both) == "major"
    assert "major: field 'label': JSON Schema keywords that constrain values changed" in diff_schemas(V1, both)


def test_optional_fields_added_inside_a_nested_type_are_minor():
    fmt = JsonSchemaFormat()
    forward = compare_schemas(fmt, fmt.schema_from_type(Scene), fmt.schema_from_type(Scene2))
    assert classify_changes(forward) == "minor"
    assert classify_changes(compare_schemas(fmt, fmt.schema_from_type(Scene2), fmt.schema_from_type(Scene))) == "major"
    assert [str(change) for change in forward] == ["minor: added optional field 'box.colour' (str)"]


# -- another schema format gets exactly the same checks ------------------------

KV = "com.example.keyValue#format"


class KeyValueFormat:
    """A minimal non-JSON format: {"$type": KV, "fields": [{"name", "type", "required", "maxLength"?}]}."""

    _types = {"str": str, "int": int}

    def schema_from_type(self, sample_type):
        names = {v: k for k, v in self._types.items()}
        fields = []
        for field in sample_fields(sample_type):
            inner = field.type.inner if isinstance(field.type, OptionalOf) else field.type
            fields.append({"name": field.name, "type": names[inner.type], "required": field.required})
        return {"$type": KV, "fields": fields}

    def validate_schema(self, schema):
        if not isinstance(schema, dict) or schema.get("$type") != KV or not isinstance(schema.get("fields"), list):
            raise SchemaError(f"not a key-value schema: {schema!r}")

    def fields_of(self, schema):
        self.validate_schema(schema)
        out = []
        for item in schema["fields"]:
            scalar = Scalar(self._types[item["type"]])
            out.append(Field(item["name"], scalar if item["required"] else OptionalOf(scalar), item["required"], None))
        return tuple(out)

    def type_from_schema(self, schema, *, name):
        return make_sample_type(name, self.fields_of(schema))

    def format_changes(self, old, new):
        before = {f["name"]: f.get("maxLength") for f in old["fields"]}
        return [
            SchemaChange("major", f"field {f['name']!r}: maxLength {before[f['name']]} -> {f.get('maxLength')}")
            for f in new["fields"]
            if f["name"] in before and before[f["name"]] != f.get("maxLength")
        ]


@pytest.fixture
def key_value_format():
    from atdata_core.plugins import SchemaFormatSpec, hookimpl, plugin_registered

    class Plugin:
        @hookimpl
        def atdata_schema_formats(self):
            return [SchemaFormatSpec(name="keyValue", schema_types=("keyValue",), union_types=(KV,),
                                     factory=lambda config: KeyValueFormat())]

    with plugin_registered(Plugin(), name="key-value-format"):
        yield KeyValueFormat()


def kv_record(cls, version, **body_changes):
    body = KeyValueFormat().schema_from_type(cls)
    for name, max_length in body_changes.items():
        next(f for f in body["fields"] if f["name"] == name)["maxLength"] = max_length
    return {"$type": "science.alt.dataset.schema", "name": "com.example.reading", "version": version,
            "schemaType": "keyValue", "schema": body, "createdAt": "2026-01-01T00:00:00.000Z"}


@packable
class Reading:
    label: str
    count: int


@packable
class ReadingWithUnit:
    label: str
    count: int
    unit: Optional[str] = None


@packable
class ReadingRequiresUnit:
    label: str
    count: int
    unit: str


def test_another_format_gets_the_field_checks_with_their_reasons(key_value_format):
    v1 = kv_record(Reading, "1.0.0")
    assert diff_schemas(v1, kv_record(ReadingWithUnit, "1.1.0")) == ["minor: added optional field 'unit' (Optional[str])"]
    assert diff_schemas(v1, kv_record(ReadingRequiresUnit, "2.0.0")) == ["major: added required field 'unit' (str)"]
    with pytest.raises(IncompatibleSchema, match="(?s)added required field 'unit'.*Publish it as 2.0.0"):
        check_version_bump(v1, kv_record(ReadingRequiresUnit, "1.1.0"))


def test_another_format_adds_what_its_fields_do_not_show(key_value_format):
    v1 = kv_record(Reading, "1.0.0")
    shorter = kv_record(Reading, "1.0.1", label=5)
    assert diff_schemas(v1, shorter) == ["major: field 'label': maxLength None -> 5"]
    with pytest.raises(IncompatibleSchema, match="maxLength None -> 5"):
        check_version_bump(v1, shorter)


def test_another_format_is_validated_before_comparing(key_value_format):
    broken = dict(kv_record(Reading, "1.0.1"), schema={"$type": KV, "fields": "label"})
    with pytest.raises(SchemaError, match="not a key-value schema"):
        diff_schemas(kv_record(Reading, "1.0.0"), broken)


def test_a_class_is_checked_against_another_formats_fields(key_value_format):
    record = kv_record(ReadingRequiresUnit, "2.0.0")
    check_compatible(ReadingRequiresUnit, record)
    with pytest.raises(IncompatibleSchema, match="missing required field 'unit'"):
        check_compatible(Reading, record)


def test_a_breaking_change_under_a_minor_bump_is_refused():
    with pytest.raises(IncompatibleSchema) as info:
        check_version_bump(V1, record(DigitFloatImage, "1.1.0"))
    message = str(info.value)
    assert "dtype uint8 -> float32" in message
    assert "Publish it as 2.0.0" in message
    assert check_version_bump(V1, record(DigitFloatImage, "2.0.0")) == "major"


def test_an_added_optional_field_under_a_patch_bump_is_refused():
    with pytest.raises(IncompatibleSchema, match="(?s)added optional field 'score'.*Publish it as 1.1.0"):
        check_version_bump(V1, record(DigitWithScore, "1.0.1"))
    assert check_version_bump(V1, record(DigitWithScore, "1.1.0")) == "minor"
    assert check_version_bump(V1, record(DigitWithScore, "2.0.0")) == "minor"


def test_a_removed_field_under_a_patch_bump_is_refused_and_docs_pass_under_a_patch():
    with pytest.raises(IncompatibleSchema, match="removed field 'caption'"):
        check_version_bump(V1, record(DigitWithoutCaption, "1.0.1"))
    assert check_version_bump(V1, record(DigitDocumented, "1.0.1")) == "patch"


def test_a_version_that_does_not_go_up_is_refused():
    with pytest.raises(IncompatibleSchema, match="not above"):
        check_version_bump(V1, record(Digit, "1.0.0"))
    with pytest.raises(IncompatibleSchema, match="not above"):
        check_version_bump(record(Digit, "1.10.0"), record(Digit, "1.9.0"))


def test_prereleases_promise_nothing():
    assert check_version_bump(V1, record(DigitFloatImage, "1.1.0-rc.1")) == "major"
    rc1, rc2 = record(Digit, "2.0.0-rc.1"), record(DigitLabelText, "2.0.0-rc.2")
    assert check_version_bump(rc1, rc2) == "major"


def test_diff_lists_each_change_readably():
    lines = diff_schemas(V1, record(DigitWithScore, "1.1.0", description="now with scores"))
    assert "minor: added optional field 'score' (float)" in lines
    assert "patch: record description changed" in lines
    lines = diff_schemas(V1, record(DigitBigImage, "2.0.0"))
    assert lines == ["major: field 'image': shape (28, 28) -> (32, 32)"]
    lines = diff_schemas(V1, record(DigitLabelText, "2.0.0"))
    assert lines == ["major: field 'label': type int -> str"]
    lines = diff_schemas(V1, record(DigitCaptionRequired, "2.0.0"))
    assert "major: field 'caption' is now required" in lines
    assert diff_schemas(V1, copy.deepcopy(V1)) == []


# --------------------------------------------------------------------------- class vs schema


def test_a_class_matching_the_schema_is_compatible():
    check_compatible(Digit, V1)
    check_compatible(DigitDocumented, V1)  # descriptions do not matter

    @packable
    class DigitReader:
        image: NDArray[np.uint8]  # no shape: accepts the schema's
        label: int
        extra: str = "unused"  # extra optional fields are fine

    check_compatible(DigitReader, V1)


def test_every_mismatch_is_listed():
    @packable
    class Wrong:
        image: Annotated[NDArray[np.float32], {"shape": (28, 28)}]
        label: str
        source: str

    with pytest.raises(IncompatibleSchema) as info:
        check_compatible(Wrong, V1)
    problems = info.value.mismatches
    assert len(problems) == 3
    assert "dtype mismatch in 'image': class has float32, schema has uint8" in problems
    assert "type mismatch in 'label': class has str, schema has int" in problems
    assert any("'source'" in p and "required in the class" in p for p in problems)
    assert "Wrong cannot read samples of schema com.example.digit 1.0.0" in str(info.value)


def test_a_class_missing_a_required_field_is_incompatible():
    @packable
    class NoImage:
        label: int

    with pytest.raises(IncompatibleSchema, match="missing required field 'image'"):
        check_compatible(NoImage, V1)
    # Leaving out a field the schema does not require is fine.

    @packable
    class NoCaption:
        image: NDArray[np.uint8]
        label: int

    check_compatible(NoCaption, V1)


def test_a_required_class_field_for_an_optional_schema_field_is_incompatible():
    with pytest.raises(IncompatibleSchema, match="'caption' is required in the class but optional in the schema"):
        check_compatible(DigitCaptionRequired, V1)
