"""Every script in examples/ runs as a user would run it, and prints what it promises.

Each runs in a subprocess of its own, from an empty folder, with a
configuration folder of its own and none of this shell's ``ATDATA_*``
variables. The ones that need a PDS get the session's sandbox through the
variables ``atdata sandbox up`` prints for another shell (``ATDATA_PLC_URL``,
``ATDATA_SANDBOX_PDS_URL``), which the examples read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, tmp_path: Path, sandbox=None, timeout: float = 300) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ATDATA_", "AWS_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["ATDATA_SANDBOX_STATE"] = str(tmp_path / "no-sandbox-of-the-user")
    env["PYTHONUNBUFFERED"] = "1"
    if sandbox is not None:
        env["ATDATA_PLC_URL"] = sandbox.plc_url
        env["ATDATA_SANDBOX_PDS_URL"] = sandbox.pds_url
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_tested():
    scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
    tested = {name for name in re.findall(r'run_example\("([a-z0-9_]+\.py)"', Path(__file__).read_text())}
    assert scripts <= tested, f"examples without a test: {sorted(scripts - tested)}"


def test_quickstart_writes_reads_batches_and_checks_lenses(tmp_path):
    out = run_example("quickstart.py", tmp_path)
    assert "wrote 5000 samples in 5 shards" in out
    assert "Dataset[ImageSample](5 shards, 5000 samples): len=5000" in out
    assert "a shuffled batch: images (128, 3, 32, 32), 128 labels" in out
    assert "three cats as gray images: [(32, 32), (32, 32), (32, 32)]" in out
    assert "lens labelled obeys GetPut on 20 sample(s)" in out
    assert "breaks GetPut" in out


def test_federation_demo_publishes_and_loads_across_accounts(pds_sandbox, tmp_path):
    # pds_sandbox makes sure the sandbox's npm packages are installed; this demo starts a sandbox of its own
    out = run_example("federation.py", tmp_path)
    assert "bob lists alice's datasets tagged 'timeseries': ['seismic-readings']" in out
    assert "Dataset[Reading](4 shards, 1000 samples)" in out
    assert "waveform (100, 256) float32" in out
    assert "sandbox stopped" in out


def test_third_party_plugin_is_registered_used_and_gone_after(tmp_path):
    out = run_example("third_party_plugin.py", tmp_path)
    assert "plugin 'vault': loaded, hooks atdata_storage_backends" in out
    assert "vault:// is served by VaultStorage" in out
    assert "read back 100 samples through the glob" in out
    assert "on disk under [vault] root: ['spectra/run-000000.tar', 'spectra/run-000001.tar', " \
           "'spectra/run-000002.tar']" in out
    assert "outside the block vault:// is unknown again: True" not in out
    assert "outside the block vault:// is unknown again: False" in out


def test_s3_example_writes_to_a_bucket_and_reads_back_verified(tmp_path):
    out = run_example("s3_storage.py", tmp_path)
    assert len(re.findall(r"s3://atdata-example/frames/frames-00000\d\.tar  100 samples", out)) == 3
    assert "glob found 3 shards" in out
    assert "read 300 frames; first from video-0, image (3, 24, 32)" in out
    assert "a verified, shuffled batch: images (64, 3, 24, 32)" in out


def test_blob_example_publishes_blobs_and_another_account_loads_them(pds_sandbox, tmp_path):
    out = run_example("blob_storage.py", tmp_path, pds_sandbox)
    assert "starting a local PDS" not in out  # it used the sandbox it was given
    assert re.search(r"storage science\.alt\.dataset\.storageBlobs: 3 blobs, first bafkrei", out)
    assert "bob loaded 500 tiles of class Tile, pixels uint8(16, 16, 3)" in out
    assert "identical to what alice wrote: True" in out


def test_lens_migration_example_loads_old_data_into_the_new_class(pds_sandbox, tmp_path):
    out = run_example("lens_migration.py", tmp_path, pds_sandbox)
    assert "publishing the change as 1.1.0 is refused" in out
    assert "bob loaded 250 readings as ReadingV2 (schema 2.0.0) from a 1.0.0 dataset" in out
    assert "source 'celsius'" in out and "every reading converted: True" in out


def test_appview_example_indexes_the_firehose_and_finds_across_accounts(pds_sandbox, tmp_path):
    out = run_example("appview_search.py", tmp_path, pds_sandbox)
    assert f"following {pds_sandbox.pds_url}" in out
    search = out.split("$ atdata search birdsong --tag audio\n", 1)[1]
    assert search.startswith("birdsong-2026  #audio #birds\n  at://did:plc:")
    assert "search 'noise' #vehicles from Python: ['engine-noise']" in out
    assert "everything tagged 'audio', across accounts: ['birdsong-2026', 'engine-noise']" in out
    assert re.search(r"bob loaded 120 clips of @alice\w+\.test/birdsong-2026 through the AppView", out)
    assert "AppView stopped" in out
