"""The built-in jsonSchema format passes the schema-format conformance suite."""

from __future__ import annotations

import pytest

from atdata_core.plugins import schema_format
from atdata_core.plugins.conformance import SchemaFormatConformance

from tests.test_schema_compat import (
    Digit,
    DigitBigImage,
    DigitCaptionRequired,
    DigitDocumented,
    DigitFloatImage,
    DigitLabelText,
    DigitWithoutCaption,
    DigitWithScore,
    DigitWithSource,
)
from tests.test_schema_jsonschema import every_sample


class TestJsonSchemaFormat(SchemaFormatConformance):
    union_type = "science.alt.dataset.schema#jsonSchemaFormat"

    @pytest.fixture
    def schema_format(self):
        # Through the registry, as readers get it.
        return schema_format("jsonSchema")

    @pytest.fixture
    def sample(self):
        return every_sample()

    @pytest.fixture
    def changes(self):
        return [
            (Digit, DigitDocumented, "patch"),
            (Digit, DigitWithScore, "minor"),
            (Digit, DigitWithSource, "major"),
            (Digit, DigitWithoutCaption, "major"),
            (Digit, DigitLabelText, "major"),
            (Digit, DigitFloatImage, "major"),
            (Digit, DigitBigImage, "major"),
            (Digit, DigitCaptionRequired, "major"),
        ]
