"""The schema format conformance suite."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atdata_core.errors import SchemaError


def _decoded(payload: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(payload, raw=False)


class SchemaFormatConformance:
    """Checks a :class:`~atdata_core.plugins.SchemaFormat` against its contract.

    Fixtures to provide:

    ``schema_format``
        The format under test.
    ``sample``
        An instance of a packable sample class (``@atdata_core.packable``) using
        the field types the format supports; the more, the better.
    ``changes`` (optional)
        A list of ``(old_class, new_class, "patch" | "minor" | "major")`` that
        the core's change classification must reproduce for schemas of this
        format (the field comparison plus ``format_changes``). Defaults to none.

    Class attribute to set:

    ``union_type``
        The ``$type`` of the ``schema`` union member this format writes.
    """

    union_type: str = ""

    @pytest.fixture
    def schema_format(self) -> Any:
        pytest.fail("provide a `schema_format` fixture returning the format under test")

    @pytest.fixture
    def sample(self) -> Any:
        pytest.fail("provide a `sample` fixture: an instance of a packable sample class")

    @pytest.fixture
    def changes(self) -> list[tuple[type, type, str]]:
        return []

    def test_schema_from_type_is_json_with_the_union_type(self, schema_format, sample):
        schema = schema_format.schema_from_type(type(sample))
        assert self.union_type, "set the suite's union_type class attribute"
        assert schema["$type"] == self.union_type
        assert json.loads(json.dumps(schema)) == schema

    def test_validate_accepts_its_own_schemas(self, schema_format, sample):
        schema_format.validate_schema(schema_format.schema_from_type(type(sample)))

    def test_validate_refuses_malformed_schemas(self, schema_format):
        with pytest.raises(SchemaError):
            schema_format.validate_schema({})
        with pytest.raises(SchemaError):
            schema_format.validate_schema({"$type": "com.example.notThisFormat"})

    def test_type_from_schema_reads_and_writes_the_same_samples(self, schema_format, sample):
        schema = schema_format.schema_from_type(type(sample))
        rebuilt = schema_format.type_from_schema(schema, name="RebuiltSample")
        assert isinstance(rebuilt, type)
        payload = sample.to_bytes()
        again = rebuilt.from_bytes(payload)
        assert _decoded(again.to_bytes()) == _decoded(payload)

    def test_schema_round_trip_is_stable(self, schema_format, sample):
        schema = schema_format.schema_from_type(type(sample))
        rebuilt = schema_format.type_from_schema(schema, name=type(sample).__name__)
        assert schema_format.schema_from_type(rebuilt) == schema

    # ------------------------------------------------------------------ fields, for the core's checks

    def test_fields_of_are_the_fields_of_the_built_class(self, schema_format, sample):
        from atdata_core.plugins import sample_fields
        from atdata_core.schema import compare_fields

        schema = schema_format.schema_from_type(type(sample))
        fields = list(schema_format.fields_of(schema))
        built = sample_fields(schema_format.type_from_schema(schema, name="Built"))
        assert [f.name for f in fields] == [f.name for f in built]
        assert compare_fields(fields, built) == [], "fields_of and type_from_schema disagree"

    def test_the_sample_class_can_read_its_own_schema(self, schema_format, sample):
        from atdata_core.plugins import sample_fields
        from atdata_core.schema import field_mismatches

        schema = schema_format.schema_from_type(type(sample))
        assert field_mismatches(sample_fields(type(sample)), schema_format.fields_of(schema)) == []

    def test_fields_of_refuses_malformed_schemas(self, schema_format):
        with pytest.raises(SchemaError):
            schema_format.fields_of({"$type": "com.example.notThisFormat"})

    # ------------------------------------------------------------------ changes

    def test_an_unchanged_schema_has_no_changes(self, schema_format, sample):
        from atdata_core.schema import compare_schemas

        schema = schema_format.schema_from_type(type(sample))
        assert list(schema_format.format_changes(schema, schema)) == []
        assert compare_schemas(schema_format, schema, json.loads(json.dumps(schema))) == []

    def test_format_changes_are_schema_changes_with_reasons(self, schema_format, changes):
        from atdata_core.plugins import SchemaChange

        for old, new, _ in changes:
            reported = schema_format.format_changes(
                schema_format.schema_from_type(old), schema_format.schema_from_type(new)
            )
            for change in reported:
                assert isinstance(change, SchemaChange), f"{old.__name__} -> {new.__name__}: {change!r}"
                assert change.text.strip(), f"{old.__name__} -> {new.__name__}: a change without a reason"

    def test_classify_change(self, schema_format, changes):
        from atdata_core.schema import classify_changes, compare_schemas

        if not changes:
            pytest.skip("no `changes` fixture given")
        for old, new, expected in changes:
            found = compare_schemas(schema_format, schema_format.schema_from_type(old), schema_format.schema_from_type(new))
            got = classify_changes(found)
            assert got == expected, f"{old.__name__} -> {new.__name__}: expected {expected}, got {got}: {found}"
