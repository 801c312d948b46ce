"""Conformance test suites, one per extension point (needs pytest).

Subclass the suite for your extension point in your plugin's tests, provide
its fixtures, and pytest runs every contract check against your
implementation::

    import pytest
    from atdata_core.plugins.conformance import StorageBackendConformance

    class TestMemoryStorage(StorageBackendConformance):
        @pytest.fixture
        def backend(self):
            return MemoryStorage()

        @pytest.fixture
        def base_url(self, request):
            return f"mem://conformance/{request.node.name}"

Each suite's docstring lists the fixtures and class attributes it needs. A
storage backend with a storage record type (``storageHttp``...) runs
``StorageRecordMapperConformance`` too.
"""

from atdata_core.plugins.conformance.index import IndexProviderConformance
from atdata_core.plugins.conformance.lens import LensExecutorConformance
from atdata_core.plugins.conformance.schema import SchemaFormatConformance
from atdata_core.plugins.conformance.storage import StorageBackendConformance, StorageRecordMapperConformance

__all__ = [
    "IndexProviderConformance",
    "LensExecutorConformance",
    "SchemaFormatConformance",
    "StorageBackendConformance",
    "StorageRecordMapperConformance",
]
