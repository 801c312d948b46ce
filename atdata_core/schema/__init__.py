"""Schemas: sample classes as ``science.alt.dataset.schema`` records, and back.

::

    from atdata_core.schema import schema_record, sample_type_from_record, check_version_bump

    record = schema_record(ImageSample, name="com.example.image", version="1.0.0")
    Rebuilt = sample_type_from_record(record)      # a working sample class, no generated code
    check_version_bump(old_record, new_record)     # refuses a breaking change under a minor bump

The record's ``schemaType`` and ``schema`` union ``$type`` choose a schema
format through the plugin registry (DESIGN D2); ``jsonSchema`` is built in.
Every format gets the same checks: the core compares the fields each format
parses (``SchemaFormat.fields_of``), and the format adds the changes its
fields do not show (``SchemaFormat.format_changes``).
"""

from __future__ import annotations

from atdata_core._nsids import SCHEMA_NSID
from atdata_core.schema._codegen import generate_package, generate_python
from atdata_core.schema._compat import (
    ChangeKind,
    SchemaChange,
    classify_changes,
    compare_fields,
    compare_schemas,
    field_mismatches,
)
from atdata_core.schema._evolution import (
    check_compatible,
    check_version_bump,
    classify_change,
    diff_schemas,
    schema_changes,
)
from atdata_core.schema._jsonschema import (
    DRAFT_07,
    NDARRAY_SHIM_VERSION,
    SCHEMA_TYPE,
    UNION_TYPE,
    JsonSchemaFormat,
    ndarray_ref,
)
from atdata_core.schema._proto import proto_files, render_proto3
from atdata_core.schema._record import (
    LAYOUT_VERSION,
    clear_type_cache,
    format_for_record,
    sample_type_from_record,
    schema_record,
)
from atdata_core.schema._versions import (
    SchemaIdentity,
    VersionStep,
    schema_identity,
    schema_versions,
    version_history,
)

__all__ = [
    "DRAFT_07",
    "JSON_SCHEMA_TYPE",
    "JSON_SCHEMA_UNION_TYPE",
    "LAYOUT_VERSION",
    "NDARRAY_SHIM_VERSION",
    "SCHEMA_NSID",
    "ChangeKind",
    "JsonSchemaFormat",
    "SchemaChange",
    "SchemaIdentity",
    "VersionStep",
    "check_compatible",
    "check_version_bump",
    "classify_change",
    "classify_changes",
    "clear_type_cache",
    "compare_fields",
    "compare_schemas",
    "diff_schemas",
    "field_mismatches",
    "format_for_record",
    "generate_package",
    "generate_python",
    "ndarray_ref",
    "proto_files",
    "render_proto3",
    "sample_type_from_record",
    "schema_changes",
    "schema_identity",
    "schema_record",
    "schema_versions",
    "version_history",
]

JSON_SCHEMA_TYPE = SCHEMA_TYPE
JSON_SCHEMA_UNION_TYPE = UNION_TYPE
