"""atdata-schema-protobuf: the ``protobuf`` schema format.

Sample classes as proto3 messages in schema records (``schemaType``
``protobuf``, union member ``science.alt.dataset.protobufFormat``), so other
languages can read a dataset's sample type with protoc. Samples in shards
stay msgpack maps: the format describes types, it does not change the bytes.

Publishing a schema in this format::

    from atdata_core import publish_schema
    publish_schema(client, ImageSample, schema_id="com.example.image", version="1.0.0", format="protobuf")

Loading a dataset whose schema uses it needs nothing more than this plugin
installed. :class:`~atdata_schema_protobuf.format.ProtobufFormat` has the
mapping; its ``proto_files(schema)`` gives the .proto files for protoc. This
module holds the hook only and stays cheap to import.
"""

from __future__ import annotations

from atdata_core.plugins import SchemaFormatSpec, hookimpl

__all__ = ["SCHEMA_TYPE", "UNION_TYPE"]

#: The record's ``schemaType``.
SCHEMA_TYPE = "protobuf"
#: The ``$type`` of the record's ``schema`` member (this plugin's lexicon; ships in the package).
UNION_TYPE = "science.alt.dataset.protobufFormat"


@hookimpl
def atdata_schema_formats() -> list[SchemaFormatSpec]:
    return [
        SchemaFormatSpec(
            name="protobuf",
            schema_types=(SCHEMA_TYPE,),
            union_types=(UNION_TYPE,),
            factory="atdata_schema_protobuf.format:ProtobufFormat",
            description="sample types as proto3 messages (FileDescriptorProto in the record, .proto for protoc)",
        )
    ]
