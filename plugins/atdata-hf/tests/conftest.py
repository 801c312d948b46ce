"""Hugging Face kept offline and away from the user's cache, and a dataset with every feature kind.

``datasets`` reads ``HF_HOME`` and the offline switches when it is imported,
so they are set here, before any test module imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_HF_HOME = tempfile.mkdtemp(prefix="atdata-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("HF_DATASETS_CACHE", None)


def pytest_unconfigure(config):
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture
def every_kind():
    """A Hugging Face ``Dataset`` of 7 rows holding every feature kind atdata-hf maps, and one column with gaps."""
    from hf_samples import every_kind_dataset

    return every_kind_dataset(7)
