"""The record validator, driven by the example records in tests/records/.

Each file in ``records/invalid`` names, under ``_expect``, the JSON path and
rule the strict validator must report, and whether a tolerant reader refuses
it too (``"error"``) or accepts it with that warning (``"warn"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atdata_core.errors import RecordError, ValidationError
from atdata_core.lexicon import (
    count_graphemes,
    register_lexicon,
    unregister_lexicon,
    validate_definition,
    validate_query_output,
    validate_query_params,
    validate_record,
)

RECORDS = Path(__file__).parent / "records"
VALID = sorted((RECORDS / "valid").glob("*.json"))
INVALID = sorted((RECORDS / "invalid").glob("*.json"))
KITCHEN = json.loads((RECORDS / "lexicons" / "com.example.atdata.kitchenSink.json").read_text())


@pytest.fixture(autouse=True, scope="module")
def kitchen_sink_lexicon():
    register_lexicon(KITCHEN)
    try:
        yield
    finally:
        unregister_lexicon(KITCHEN["id"])


def _load(path: Path) -> tuple[dict, dict | None]:
    record = json.loads(path.read_text(encoding="utf-8"))
    return record, record.pop("_expect", None)


def test_the_examples_cover_every_rule():
    rules = {_load(path)[1]["rule"] for path in INVALID}
    expected = {
        "required", "type", "nullable", "const", "enum", "$type", "closed", "blob", "accept", "maxSize",
        "bytes", "cid-link", "float", "maxLength", "minLength", "maxGraphemes", "minGraphemes", "minimum", "maximum",
    } | {f"format:{name}" for name in (
        "at-uri", "datetime", "did", "handle", "nsid", "cid", "uri", "tid", "record-key", "language", "at-identifier",
    )}
    assert expected <= rules, f"no invalid example for {sorted(expected - rules)}"
    assert len(VALID) >= 15


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_pass_strict_and_tolerant_without_warnings(path):
    record, _ = _load(path)
    assert validate_record(record) == []
    assert validate_record(record, strict=False) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_report_path_and_rule(path):
    record, expect = _load(path)
    with pytest.raises(ValidationError) as caught:
        validate_record(record)
    assert (caught.value.path, caught.value.rule) == (expect["path"], expect["rule"]), str(caught.value)
    assert caught.value.nsid == record["$type"]
    assert expect["path"] in str(caught.value)

    if expect["tolerant"] == "error":
        with pytest.raises(ValidationError) as again:
            validate_record(record, strict=False)
        assert (again.value.path, again.value.rule) == (expect["path"], expect["rule"])
    else:
        warnings = validate_record(record, strict=False)
        wanted = expect.get("warning", {"path": expect["path"], "rule": expect["rule"]})
        assert [(w.path, w.rule) for w in warnings] == [(wanted["path"], wanted["rule"])]
        assert wanted["path"] in str(warnings[0])


def _entry() -> dict:
    record, _ = _load(RECORDS / "valid" / "entry_http.json")
    return record


def test_nsid_defaults_to_type_and_can_be_given():
    record = _entry()
    validate_record(record, "science.alt.dataset.entry")
    with pytest.raises(ValidationError) as caught:
        validate_record(record, "science.alt.dataset.label")
    assert caught.value.rule == "$type"


def test_record_without_type_needs_an_nsid_and_is_only_tolerated():
    record = _entry()
    del record["$type"]
    with pytest.raises(ValidationError) as caught:
        validate_record(record)
    assert caught.value.rule == "$type"
    with pytest.raises(ValidationError):
        validate_record(record, "science.alt.dataset.entry")
    warnings = validate_record(record, "science.alt.dataset.entry", strict=False)
    assert [w.rule for w in warnings] == ["$type"]


def test_unknown_record_type_is_refused():
    with pytest.raises(ValidationError) as caught:
        validate_record({"$type": "com.example.nothing", "a": 1})
    assert "com.example.nothing" in str(caught.value)


def test_python_bytes_are_accepted_for_bytes_fields():
    record = _entry()
    record["metadata"] = b"\x81\xa1a\x01"
    assert validate_record(record) == []
    record["metadata"] = bytearray(100_001)
    with pytest.raises(ValidationError) as caught:
        validate_record(record)
    assert (caught.value.path, caught.value.rule) == ("$.metadata", "maxLength")


def test_bytes_without_padding_and_with_padding_both_decode():
    base = {"$type": KITCHEN["id"], "title": "t"}
    validate_record(base | {"data": {"$bytes": "AQI"}})
    validate_record(base | {"data": {"$bytes": "AQI="}})


def test_tuples_count_as_arrays():
    record = _entry()
    record["tags"] = ("a", "b")
    validate_record(record)


def test_null_is_accepted_where_the_lexicon_declares_it_nullable():
    validate_record({"$type": KITCHEN["id"], "title": "t", "maybe": None})


def test_storage_member_alone():
    storage = _entry()["storage"]
    validate_definition("science.alt.dataset.storageHttp", storage)
    storage["shards"][0]["checksum"]["algorithm"] = "x" * 21
    with pytest.raises(ValidationError) as caught:
        validate_definition("science.alt.dataset.storageHttp", storage)
    assert caught.value.path == "$.shards[0].checksum.algorithm"


@pytest.mark.parametrize(
    ("text", "graphemes"),
    [
        ("", 0),
        ("abc", 3),
        ("e\u0301", 1),  # e + combining acute
        ("👨‍👩‍👧", 1),  # ZWJ family
        ("👍🏽", 1),  # skin tone modifier
        ("🇫🇷🇩🇪", 2),  # two flags from four regional indicators
        ("❤️", 1),  # heart + variation selector
        ("\r\n", 1),
        ("日本語", 3),
    ],
)
def test_grapheme_count(text, graphemes):
    assert count_graphemes(text) == graphemes


def test_query_params_are_typed_and_defaulted():
    params = validate_query_params(
        "science.alt.dataset.searchDatasets", {"q": "digits", "limit": "10", "tags": "vision", "junk": "x"}
    )
    assert params == {"q": "digits", "limit": 10, "tags": ["vision"]}
    assert validate_query_params("science.alt.dataset.listEntries", {})["limit"] == 50


@pytest.mark.parametrize(
    ("nsid", "params", "path", "rule"),
    [
        ("science.alt.dataset.searchDatasets", {}, "$.q", "required"),
        ("science.alt.dataset.searchDatasets", {"q": "x", "limit": "ten"}, "$.limit", "type"),
        ("science.alt.dataset.searchDatasets", {"q": "x", "limit": "101"}, "$.limit", "maximum"),
        ("science.alt.dataset.resolveSchema", {"handle": "not a handle", "schemaId": "a.b.c"}, "$.handle", "format:at-identifier"),
        ("science.alt.dataset.getEntries", {"uris": [f"at://did:plc:abc/science.alt.dataset.entry/{i}" for i in range(26)]}, "$.uris", "maxLength"),
    ],
)
def test_bad_query_params_are_refused(nsid, params, path, rule):
    with pytest.raises(ValidationError) as caught:
        validate_query_params(nsid, params)
    assert (caught.value.path, caught.value.rule) == (path, rule)


def test_query_output_checks_views_and_embedded_records():
    schema, _ = _load(RECORDS / "valid" / "schema_full.json")
    uri = "at://did:plc:abc/science.alt.dataset.schema/com.example.image:1.0.0"
    cid = "bafyreib2rxk3rh6kzwq"
    validate_query_output("science.alt.dataset.resolveSchema", {"uri": uri, "cid": cid, "record": schema})
    with pytest.raises(ValidationError) as caught:
        validate_query_output("science.alt.dataset.resolveSchema", {"uri": uri, "cid": cid, "record": {**schema, "name": 3}})
    assert caught.value.path == "$.record.name"

    view = {k: v for k, v in _entry().items() if k != "$type"} | {"uri": uri, "cid": cid}
    validate_query_output("science.alt.dataset.listEntries", {"entries": [view], "cursor": "abc"})
    with pytest.raises(ValidationError) as caught:
        validate_query_output("science.alt.dataset.listEntries", {"entries": [{**view, "uri": "nope"}]})
    assert caught.value.path == "$.entries[0].uri"


def test_registering_a_lexicon_twice_is_refused():
    with pytest.raises(RecordError):
        register_lexicon(KITCHEN)
    with pytest.raises(RecordError):
        register_lexicon({"lexicon": 1, "id": "science.alt.dataset.entry", "defs": {"main": {"type": "token"}}})
    with pytest.raises(RecordError):
        register_lexicon({"id": "com.example.broken"})


def _walked(record: dict, strict: bool) -> tuple[list, tuple | None]:
    """The definition walk alone (what the compiled validator hands anything unusual to)."""
    from atdata_core.lexicon._catalog import find_definition
    from atdata_core.lexicon._validator import Validation

    nsid = record["$type"]
    run = Validation(nsid, strict=strict)
    found = find_definition(nsid)
    if found is None:  # refused before any walk: no lexicon to check against
        return [], ("", "$.$type", "$type", nsid)
    try:
        run.check(found[1], record, "$", nsid, f"{nsid}#main")
    except ValidationError as err:
        return run.warnings, (str(err), err.path, err.rule, err.nsid)
    return run.warnings, None


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "tolerant"])
@pytest.mark.parametrize("path", VALID + INVALID, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_the_compiled_validator_reports_exactly_what_the_walk_does(path, strict):
    record, _ = _load(path)
    expected_warnings, expected_error = _walked(record, strict)
    try:
        warnings = validate_record(record, strict=strict)
    except ValidationError as err:
        assert expected_error is not None
        assert (str(err) if expected_error[0] else "", err.path, err.rule, err.nsid) == expected_error
    else:
        assert expected_error is None
        assert warnings == expected_warnings


def test_a_lexicon_that_refers_to_itself_validates_nested_values():
    tree = {
        "lexicon": 1, "id": "com.example.atdata.tree",
        "defs": {
            "main": {"type": "record", "key": "tid", "record": {"type": "ref", "ref": "#node"}},
            "node": {"type": "object", "required": ["label"], "properties": {
                "label": {"type": "string", "maxLength": 10},
                "children": {"type": "array", "items": {"type": "ref", "ref": "#node"}},
            }},
        },
    }
    register_lexicon(tree)
    try:
        nested = {"$type": "com.example.atdata.tree", "label": "a", "children": [{"label": "b", "children": [{"label": "c"}]}]}
        assert validate_record(nested) == []
        nested["children"][0]["children"][0]["label"] = "far too long"
        with pytest.raises(ValidationError) as caught:
            validate_record(nested)
        assert caught.value.path == "$.children[0].children[0].label"
        assert [w.path for w in validate_record(nested, strict=False)] == ["$.children[0].children[0].label"]
    finally:
        unregister_lexicon("com.example.atdata.tree")


def test_a_lexicon_replaced_after_use_is_validated_by_its_new_rules():
    first = {"lexicon": 1, "id": "com.example.atdata.changing",
             "defs": {"main": {"type": "record", "key": "tid", "record": {"type": "ref", "ref": "#body"}},
                      "body": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}}}}}
    second = json.loads(json.dumps(first))
    second["defs"]["body"]["properties"]["n"]["maximum"] = 1
    register_lexicon(first)
    try:
        record = {"$type": "com.example.atdata.changing", "n": 3}
        assert validate_record(record) == []
        register_lexicon(second, replace=True)
        with pytest.raises(ValidationError, match="maximum"):
            validate_record(record)
    finally:
        unregister_lexicon("com.example.atdata.changing")


def test_a_malformed_value_is_refused_however_many_good_ones_passed_before():
    # Values that passed a format check are remembered (bounded); that must never let a bad one through.
    lexicon = {"lexicon": 1, "id": "com.example.atdata.pointer",
               "defs": {"main": {"type": "record", "key": "tid",
                                 "record": {"type": "object", "properties": {"to": {"type": "string", "format": "at-uri"}}}}}}
    register_lexicon(lexicon)
    try:
        good = "at://did:plc:abc/com.example.atdata.pointer/{}"
        for i in range(3000):  # more than are remembered
            assert validate_record({"$type": "com.example.atdata.pointer", "to": good.format(f"k{i}")}) == []
            if i % 700 == 0:
                with pytest.raises(ValidationError, match="at-uri|AT-URI"):
                    validate_record({"$type": "com.example.atdata.pointer", "to": good.format(f"k{i}") + "/extra"})
        assert validate_record({"$type": "com.example.atdata.pointer", "to": good.format("k0")}) == []
    finally:
        unregister_lexicon("com.example.atdata.pointer")


def test_an_at_uri_parsed_again_is_the_same_and_a_bad_one_still_fails():
    from atdata_core.plugins import AtUri

    class Named(AtUri):
        pass

    text = "at://did:plc:abc/science.alt.dataset.entry/3kabc"
    first = AtUri.parse(text)
    assert AtUri.parse(text) == first and AtUri.parse(text).rkey == "3kabc"
    assert type(Named.parse(text)) is Named  # a subclass gets its own class, never a remembered AtUri
    for i in range(20_000):  # more than are remembered
        AtUri.parse(f"at://did:plc:abc/science.alt.dataset.entry/k{i}")
    with pytest.raises(ValidationError, match="must name a record"):
        AtUri.parse("at://did:plc:abc/science.alt.dataset.entry")
    with pytest.raises(ValidationError):
        AtUri.parse("at://did:plc:abc/science.alt.dataset.entry/k1/more")
