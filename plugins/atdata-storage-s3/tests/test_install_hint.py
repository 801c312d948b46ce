"""Without this plugin, s3:// URLs and storageS3 entries name the distribution to install.

The real thing (a fresh environment with atdata-core alone) is checked by
scripts/check_install.sh; here the core's registries are built without this
plugin, in the same process.
"""

from __future__ import annotations

import pluggy
import pytest

from atdata_core.errors import MissingImplementation, StorageError
from atdata_core.plugins import (
    ENTRY_POINT_GROUP,
    STORAGE_S3_NSID,
    Config,
    build_registry,
    get_plugin_manager,
    hookspecs,
    reset_plugins,
    storage_backend,
)


def core_alone():
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.register(get_plugin_manager().get_plugin("builtin"), name="builtin")
    return build_registry(manager, Config({}))


def test_the_core_alone_names_atdata_storage_s3():
    registry = core_alone().storage
    with pytest.raises(MissingImplementation, match="pip install atdata-storage-s3"):
        registry.for_url("s3://bucket/data-000000.tar")
    with pytest.raises(MissingImplementation, match="pip install atdata-storage-s3"):
        registry.for_record({"$type": STORAGE_S3_NSID, "bucket": "b", "shards": []})
    with pytest.raises(StorageError):  # what storage callers catch
        registry.for_url("s3://bucket/data-000000.tar")


def test_a_deny_listed_plugin_is_named_as_installed(monkeypatch):
    monkeypatch.setenv("ATDATA_PLUGINS_DENY", "s3")
    reset_plugins()
    with pytest.raises(MissingImplementation, match="atdata-storage-s3 is installed but its plugin 's3' is deny-listed"):
        storage_backend("s3://bucket/data-000000.tar")
