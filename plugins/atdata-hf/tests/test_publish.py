"""On the local PDS sandbox: a Hugging Face dataset imported and published, loaded by someone else, exported again.

The schema record alone carries what maps back to Hugging Face (ClassLabel
names, narrow dtypes, Image and Audio) in its field descriptions; the
class the loader builds from it knows nothing else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

import atdata_core
from atdata_core.plugins import Client, reset_plugins

from atdata_hf import from_hf, to_hf


@pytest.fixture
def alice(pds_sandbox, make_account, monkeypatch):
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    account = make_account("alice")
    yield Client.login(account.handle, account.password, pds_url=account.pds_url)
    reset_plugins()


def test_an_imported_dataset_published_and_loaded_exports_the_same_features(alice, every_kind, tmp_path):
    done = from_hf(
        every_kind, str(tmp_path / "every-%06d.tar"), name="Every", maxcount=4, progress=False,
        client=alice, schema_id="com.example.every", dataset_name="every", storage="blob",
        description="every Hugging Face feature kind", tags=["test"],
    )
    assert done.entry is not None and done.schema is not None
    label = done.schema.record["schema"]["properties"]["label"]
    assert '"names": ["cat", "dog", "bird"]' in label["description"]

    loaded = atdata_core.load(done.entry.uri)
    assert type(next(iter(loaded))) is not done.sample_type      # built from the record
    back = to_hf(loaded, cache_dir=str(tmp_path / "cache"))
    assert back.features == every_kind.features
    original = every_kind.with_format("arrow")[:]
    # the schema record may list the fields in another order; each column is the same
    returned = back.with_format("arrow")[:]
    for name in original.column_names:
        assert returned.column(name).equals(original.column(name)), name

    # the same from the shell: the schema gives the features, no class needed
    import os
    import subprocess
    import sys

    from datasets import load_from_disk

    done_cli = subprocess.run(
        [sys.executable, "-m", "atdata_core.cli", "hf", "export", done.entry.uri, str(tmp_path / "exported")],
        capture_output=True, text=True, env=dict(os.environ), timeout=300, check=False,
    )
    assert done_cli.returncode == 0, done_cli.stderr
    assert load_from_disk(str(tmp_path / "exported")).features == every_kind.features
