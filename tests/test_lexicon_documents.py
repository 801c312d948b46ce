"""The lexicon documents themselves: complete, well formed, consistent, shipped.

Field names and limits asserted here are the ones the existing
science.alt.dataset federation publishes; changing them breaks interop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atdata_core.lexicon import known_lexicons, lexicon, query_errors, record_key_type
from atdata_core.lexicon._catalog import find_definition

REPO = Path(__file__).resolve().parent.parent
FOLDER = REPO / "lexicons" / "science" / "alt" / "dataset"
FILES = sorted(FOLDER.glob("*.json"))

RECORDS = {"schema": "any", "entry": "tid", "lens": "tid", "label": "tid", "lensVerification": "tid"}
OBJECTS = ["storageHttp", "storageS3", "storageBlobs"]
STRINGS = ["schemaType", "arrayFormat", "programmingLanguage", "verificationMethod"]
QUERIES = [
    "resolveSchema", "resolveLabel", "searchDatasets", "listEntries", "getEntry", "getEntries",
    "listSchemas", "getSchema", "listLenses", "searchLenses", "describeService",
]


def test_repository_lexicons_folder_is_the_packaged_one():
    link = REPO / "lexicons"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "atdata_core" / "lexicons").resolve()
    assert not Path(link.readlink()).is_absolute()


def test_every_design_lexicon_exists():
    names = {path.stem for path in FILES}
    assert set(RECORDS) | set(OBJECTS) | set(STRINGS) | set(QUERIES) <= names
    # Besides these, only documents an installed plugin registered for its own records (register_lexicon).
    from atdata_core.lexicon._catalog import _extra as registered

    assert {f"science.alt.dataset.{name}" for name in names} == set(known_lexicons()) - set(registered)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_document_shape(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["lexicon"] == 1
    assert doc["id"] == f"science.alt.dataset.{path.stem}"
    for name, definition in doc["defs"].items():
        assert definition["type"] in {
            "record", "query", "procedure", "object", "string", "token", "integer", "boolean", "array",
        }, name
        if definition["type"] == "record":
            assert name == "main"
            assert definition["key"] in ("tid", "any")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_documents_parse_with_the_atproto_sdk_lexicon_models(path):
    parser = pytest.importorskip("atproto_lexicon.parser")
    parser.lexicon_parse(json.loads(path.read_text(encoding="utf-8")))


def _refs(node, context):
    if isinstance(node, dict):
        if node.get("type") == "ref":
            yield node["ref"], context
        if node.get("type") == "union":
            for ref in node["refs"]:
                yield ref, context
        for value in node.values():
            yield from _refs(value, context)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value, context)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_reference_resolves(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    for ref, context in _refs(doc["defs"], doc["id"]):
        assert find_definition(ref, context) is not None, f"{doc['id']} refers to unknown {ref}"


@pytest.mark.parametrize(("name", "key"), RECORDS.items())
def test_record_keys(name, key):
    assert record_key_type(f"science.alt.dataset.{name}") == key


def _props(nsid: str, definition: str = "main") -> dict:
    node = lexicon(nsid)["defs"][definition]
    return (node.get("record") or node)["properties"]


def test_interop_facts_of_the_existing_federation():
    entry = _props("science.alt.dataset.entry")
    assert entry["name"]["maxLength"] == 200
    assert entry["schemaRef"] == {**entry["schemaRef"], "format": "at-uri", "maxLength": 500}
    assert entry["metadata"]["type"] == "bytes" and entry["metadata"]["maxLength"] == 100000
    assert entry["tags"]["maxLength"] == 30 and entry["tags"]["items"]["maxLength"] == 150
    assert entry["storage"]["refs"] == [
        "science.alt.dataset.storageHttp", "science.alt.dataset.storageS3", "science.alt.dataset.storageBlobs",
    ]
    assert not entry["storage"].get("closed", False)
    for member in OBJECTS:
        shard = "blobEntry" if member == "storageBlobs" else "shardEntry"
        checksum = _props(f"science.alt.dataset.{member}", shard)["checksum"]
        assert checksum["ref"] == "science.alt.dataset.entry#shardChecksum"

    schema = _props("science.alt.dataset.schema")
    assert schema["schema"]["refs"] == ["science.alt.dataset.schema#jsonSchemaFormat"]
    assert schema["name"]["maxLength"] == 100 and schema["description"]["maxLength"] == 5000
    body = _props("science.alt.dataset.schema", "jsonSchemaFormat")
    assert body["$schema"]["const"] == "http://json-schema.org/draft-07/schema#"
    assert body["type"]["const"] == "object"

    lens = _props("science.alt.dataset.lens")
    code = _props("science.alt.dataset.lens", "codeReference")
    assert lens["getterCode"]["ref"] == lens["putterCode"]["ref"] == "#codeReference"
    assert code["commit"]["maxLength"] == 40
    assert lexicon("science.alt.dataset.verificationMethod")["defs"]["main"]["knownValues"] == [
        "codeReview", "formalProof", "signedHash", "automatedTest",
    ]
    assert query_errors("science.alt.dataset.resolveSchema") == ["SchemaNotFound"]


def test_importing_the_validator_does_not_read_the_documents():
    code = (
        "import atdata_core.lexicon as lx, atdata_core.lexicon._catalog as c\n"
        "assert c._documents is None\n"
        "lx.known_lexicons()\n"
        "assert c._documents\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
