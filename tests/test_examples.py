"""The examples `make demo` runs keep working."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart_writes_reads_batches_and_checks_lenses():
    out = run("quickstart.py")
    assert "wrote 5000 samples in 5 shards" in out
    assert "Dataset[ImageSample](5 shards, 5000 samples): len=5000" in out
    assert "a shuffled batch: images (128, 3, 32, 32), 128 labels" in out
    assert "lens labelled obeys GetPut on 20 sample(s)" in out
    assert "breaks GetPut" in out


@pytest.mark.pds
def test_federation_demo_publishes_and_loads_across_accounts(pds_sandbox):
    # pds_sandbox makes sure the npm packages are installed; the demo starts its own sandbox
    out = run("federation.py")
    assert "bob lists alice's datasets tagged 'timeseries': ['seismic-readings']" in out
    assert "Dataset[Reading](4 shards, 1000 samples)" in out
    assert "waveform (100, 256) float32" in out
    assert "sandbox stopped" in out
