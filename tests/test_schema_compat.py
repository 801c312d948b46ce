"""Schema evolution: change classification, version bumps, diffs, and class-vs-schema checks."""

from __future__ import annotations

import copy
import dataclasses
from typing import Annotated, Optional

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import packable
from atdata_core.errors import IncompatibleSchema
from atdata_core.schema import (
    JsonSchemaFormat,
    check_compatible,
    check_version_bump,
    classify_change,
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
    assert fmt.classify_change(fmt.schema_from_type(Scene), fmt.schema_from_type(Scene2)) == "minor"
    assert fmt.classify_change(fmt.schema_from_type(Scene2), fmt.schema_from_type(Scene)) == "major"


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
