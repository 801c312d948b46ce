"""The NSIDs of the ``science.alt.dataset.*`` records and union members, in one place.

Import them from :mod:`atdata_core.plugins` (plugins) or use them as
``atdata_core.plugins.ENTRY_NSID``; never spell the strings out again.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_NSID",
    "JSON_SCHEMA_FORMAT_NSID",
    "LABEL_NSID",
    "LENS_NSID",
    "LENS_VERIFICATION_NSID",
    "NAMESPACE",
    "RECORD_NSIDS",
    "SCHEMA_NSID",
    "STORAGE_BLOBS_NSID",
    "STORAGE_HTTP_NSID",
    "STORAGE_S3_NSID",
]

#: The lexicon namespace the atdata federation publishes under (DESIGN D1).
NAMESPACE = "science.alt.dataset"

SCHEMA_NSID = f"{NAMESPACE}.schema"
ENTRY_NSID = f"{NAMESPACE}.entry"
LENS_NSID = f"{NAMESPACE}.lens"
LABEL_NSID = f"{NAMESPACE}.label"
LENS_VERIFICATION_NSID = f"{NAMESPACE}.lensVerification"

#: Members of the entry's ``storage`` union.
STORAGE_HTTP_NSID = f"{NAMESPACE}.storageHttp"
STORAGE_S3_NSID = f"{NAMESPACE}.storageS3"
STORAGE_BLOBS_NSID = f"{NAMESPACE}.storageBlobs"

#: The schema record's built-in ``schema`` union member (JSON Schema draft-07).
JSON_SCHEMA_FORMAT_NSID = f"{NAMESPACE}.schema#jsonSchemaFormat"

#: Every record collection of the namespace.
RECORD_NSIDS = (SCHEMA_NSID, ENTRY_NSID, LENS_NSID, LABEL_NSID, LENS_VERIFICATION_NSID)
