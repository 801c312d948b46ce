"""Record models and their wire shape: round trips, strict validity, tolerant reading."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgpack
import pytest

from atdata_core.errors import RecordError, ValidationError
from atdata_core.lexicon import validate_record
from atdata_core.records import (
    BlobRef,
    BlobShard,
    CodeReference,
    DatasetSize,
    EntryRecord,
    HttpShard,
    JsonSchemaFormat,
    LabelRecord,
    LensRecord,
    LensVerificationRecord,
    S3Shard,
    SchemaMetadata,
    SchemaRecord,
    ShardChecksum,
    StorageBlobs,
    StorageHttp,
    StorageS3,
    from_record,
    read_record,
    to_record,
    write_record,
)

VALID = Path(__file__).parent / "records" / "valid"
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/com.example.image:1.0.0"
CID = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
WHEN = datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
CODE = CodeReference("https://github.com/example/lenses", "0123456789abcdef0123456789abcdef01234567",
                     "lenses/vision.py:rgb_to_grey", branch="main", language="python")


def _examples():
    checksum = ShardChecksum.sha256(b"shard bytes")
    return [
        SchemaRecord(
            name="Image sample",
            version="1.2.0",
            schema=JsonSchemaFormat(
                properties={"label": {"type": "integer"}, "image": {"$ref": "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"}},
                required=["label", "image"],
                array_format_versions={"ndarrayBytes": "1.0.0"},
                extra={"title": "Image"},
            ),
            description="digits",
            metadata=SchemaMetadata(license="MIT", tags=["vision"]),
            atdata_schema_version=1,
            created_at=WHEN,
        ),
        EntryRecord(
            name="mnist",
            schema_ref=SCHEMA_URI,
            storage=StorageHttp([HttpShard("https://data.example.com/a.tar", checksum)]),
            description="MNIST",
            metadata={"source": "yann", "nested": {"bytes": b"\x00\x01"}},
            tags=["vision", "digits"],
            size=DatasetSize(samples=10, bytes=2048, shards=1),
            license="MIT",
            metadata_schema_ref=SCHEMA_URI,
            content_metadata={"dpi": 300},
            created_at=WHEN,
        ),
        EntryRecord(
            name="on-s3",
            schema_ref=SCHEMA_URI,
            storage=StorageS3("bucket-1", [S3Shard("a/b.tar", checksum)], region="us-east-1", endpoint="http://127.0.0.1:9000"),
            created_at=WHEN,
        ),
        EntryRecord(
            name="in-blobs",
            schema_ref=SCHEMA_URI,
            storage=StorageBlobs([BlobShard(BlobRef(CID, "application/x-tar", 10240), checksum), BlobShard(BlobRef(CID, "application/x-tar", 1))]),
            created_at=WHEN,
        ),
        LensRecord(
            name="rgb-to-grey",
            source_schema=SCHEMA_URI,
            target_schema=SCHEMA_URI.replace("image", "grey"),
            getter_code=CODE,
            putter_code=CODE,
            description="average channels",
            metadata={"author": "alice"},
            source_schema_version="1.2.0",
            target_schema_version="1.0.0",
            created_at=WHEN,
        ),
        LabelRecord(name="mnist", dataset_uri=f"at://{DID}/science.alt.dataset.entry/3lbsbdqxmyk2a", version="1.0.0", created_at=WHEN),
        LensVerificationRecord(
            lens=f"at://{DID}/science.alt.dataset.lens/3lbsbdqxmyk2a",
            lens_commit=CID,
            verification_method="automatedTest",
            code_hash=checksum,
            proof_ref=CODE,
            created_at=WHEN,
        ),
    ]


@pytest.mark.parametrize("model", _examples(), ids=lambda m: type(m).__name__)
def test_round_trip_and_strict_validity(model):
    record = to_record(model)
    assert record["$type"] == model.NSID
    assert validate_record(record) == []
    assert from_record(record) == model
    assert write_record(model) == record


def test_wire_shape_is_camel_case_with_types_and_times():
    entry = to_record(_examples()[1])
    assert entry["schemaRef"] == SCHEMA_URI
    assert entry["metadataSchemaRef"] == SCHEMA_URI
    assert entry["contentMetadata"] == {"dpi": 300}
    assert entry["createdAt"] == "2025-06-01T12:00:00.250Z"
    assert entry["storage"]["$type"] == "science.alt.dataset.storageHttp"
    assert isinstance(entry["metadata"], bytes)
    assert msgpack.unpackb(entry["metadata"]) == {"source": "yann", "nested": {"bytes": b"\x00\x01"}}
    assert entry["tags"] == ["vision", "digits"]
    assert "license" in entry and "extra" not in entry

    schema = to_record(_examples()[0])
    assert schema["schemaType"] == "jsonSchema"
    assert schema["atdataSchemaVersion"] == 1
    assert schema["schema"]["$type"] == "science.alt.dataset.schema#jsonSchemaFormat"
    assert schema["schema"]["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["schema"]["type"] == "object"
    assert schema["schema"]["arrayFormatVersions"] == {"ndarrayBytes": "1.0.0"}
    assert schema["schema"]["title"] == "Image"

    blob = to_record(_examples()[3])["storage"]["blobs"][0]["blob"]
    assert blob == {"$type": "blob", "ref": {"$link": CID}, "mimeType": "application/x-tar", "size": 10240}


def test_unset_optional_fields_are_left_out():
    label = to_record(LabelRecord(name="x", dataset_uri=f"at://{DID}/science.alt.dataset.entry/3lbsbdqxmyk2a"))
    assert set(label) == {"$type", "name", "datasetUri", "createdAt"}


def test_created_at_defaults_to_now_in_utc_and_converts_zones():
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    label = LabelRecord(name="x", dataset_uri="at://did:plc:abc/science.alt.dataset.entry/3lbsbdqxmyk2a")
    assert label.created_at.tzinfo is not None and label.created_at >= before
    paris = timezone(timedelta(hours=2))
    shifted = LabelRecord(name="x", dataset_uri=label.dataset_uri, created_at=datetime(2025, 1, 1, 14, 0, tzinfo=paris))
    assert to_record(shifted)["createdAt"] == "2025-01-01T12:00:00.000Z"
    naive = LabelRecord(name="x", dataset_uri=label.dataset_uri, created_at=datetime(2025, 1, 1, 14, 0))
    assert to_record(naive)["createdAt"] == "2025-01-01T14:00:00.000Z"


# The kitchen-sink examples use a test-only lexicon that has no model.
@pytest.mark.parametrize("path", sorted(VALID.glob("[!k]*.json")), ids=lambda p: p.stem)
def test_every_valid_example_reads_into_a_model_and_writes_back_valid(path):
    record = json.loads(path.read_text(encoding="utf-8"))
    model = from_record(record)
    validate_record(to_record(model))


def test_unknown_fields_are_kept_and_written_back():
    record = to_record(_examples()[5]) | {"com.example.note": "hi", "rank": 3}
    model = from_record(record)
    assert model.extra == {"com.example.note": "hi", "rank": 3}
    assert to_record(model) == record


def test_unknown_storage_member_is_kept_raw():
    record = to_record(_examples()[2])
    record["storage"] = {"$type": "com.example.storageIpfs", "cids": ["bafy1"]}
    model = from_record(record)
    assert model.storage == {"$type": "com.example.storageIpfs", "cids": ["bafy1"]}
    assert to_record(model)["storage"] == record["storage"]


def test_other_schema_formats_are_kept_raw():
    record = to_record(_examples()[0])
    record["schemaType"] = "protobuf"
    record["schema"] = {"$type": "science.alt.dataset.protobuf#protobufFormat", "fileDescriptorSet": "Cgd4"}
    model = from_record(record)
    assert model.schema == record["schema"] and model.schema_type == "protobuf"
    assert to_record(model) == record


def test_entry_metadata_reads_from_every_wire_form():
    base = to_record(_examples()[2])
    packed = msgpack.packb({"a": 1})
    import base64

    forms = [packed, {"$bytes": base64.b64encode(packed).decode().rstrip("=")}, {"a": 1}]
    for form in forms:
        assert from_record(base | {"metadata": form}).metadata == {"a": 1}


def test_entry_metadata_that_is_not_a_msgpack_map_is_kept_untouched():
    base = to_record(_examples()[2])
    odd = msgpack.packb([1, 2, 3])
    model = from_record(base | {"metadata": odd})
    assert model.metadata is None
    assert to_record(model)["metadata"] == odd


def test_legacy_blob_form_is_read():
    record = to_record(_examples()[3])
    record["storage"]["blobs"][1]["blob"] = {"cid": CID, "mimeType": "application/x-tar"}
    model, warnings = read_record(record)
    assert model.storage.blobs[1].blob == BlobRef(CID, "application/x-tar", None)
    assert [w.rule for w in warnings] == ["blob"]


def test_records_from_another_client_read_tolerantly():
    # The JSON Schema wrapped in {draft, content}, the layout version spelled with '$',
    # a null optional field and an entry whose metadata is a JSON object.
    schema = {
        "$type": "science.alt.dataset.schema",
        "name": "TestSchema",
        "version": "1.0.0",
        "schemaType": "jsonSchema",
        "schema": {
            "$type": "science.alt.dataset.schema#jsonSchemaFormat",
            "draft": "draft-07",
            "content": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                        "properties": {"x": {"type": "integer"}}, "required": ["x"]},
        },
        "$atdataSchemaVersion": 2,
        "description": None,
        "createdAt": "2025-01-01T00:00:00Z",
    }
    model, warnings = read_record(schema)
    assert {w.rule for w in warnings} == {"layout", "nullable"}
    assert model.schema.properties == {"x": {"type": "integer"}} and model.schema.required == ("x",)
    assert model.atdata_schema_version == 2 and model.description is None
    assert validate_record(to_record(model)) == []

    entry = to_record(_examples()[2]) | {"metadata": {"source": "json"}}
    model, warnings = read_record(entry)
    assert model.metadata == {"source": "json"}
    assert isinstance(to_record(model)["metadata"], bytes)


def test_uninterpretable_records_are_refused_with_a_reason():
    with pytest.raises(RecordError, match="com.example.unknown"):
        from_record({"$type": "com.example.unknown"})
    broken = to_record(_examples()[5])
    del broken["datasetUri"]
    with pytest.raises(RecordError, match="datasetUri|dataset_uri"):
        from_record(broken)
    with pytest.raises(RecordError, match="createdAt"):
        from_record(to_record(_examples()[5]) | {"createdAt": "yesterday"})
    undated = to_record(_examples()[5])
    del undated["createdAt"]
    with pytest.raises(RecordError, match="createdAt"):
        from_record(undated)  # never invent a publication time
    with pytest.raises(ValidationError):
        read_record(broken)


def test_write_record_refuses_an_invalid_model():
    entry = EntryRecord(name="x" * 201, schema_ref=SCHEMA_URI, storage=StorageHttp([HttpShard("https://a.b/c.tar", ShardChecksum.sha256(b""))]))
    with pytest.raises(ValidationError) as caught:
        write_record(entry)
    assert (caught.value.path, caught.value.rule) == ("$.name", "maxLength")


def test_checksum_helpers():
    checksum = ShardChecksum.sha256(b"abc")
    assert checksum.digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert checksum.matches(b"abc") and not checksum.matches(b"abd")
    assert ShardChecksum("sha256", checksum.digest.upper()).matches(b"abc")
    assert not ShardChecksum("nonesuch", "00").matches(b"abc")
