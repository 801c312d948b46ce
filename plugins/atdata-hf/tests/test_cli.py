"""``atdata hf import`` from the shell, offline, on datasets saved or stored locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Value

import atdata_core


def atdata(*args, cwd=None):
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, check=False)


def digits(n: int) -> Dataset:
    rng = np.random.default_rng(1)
    features = Features({"image": Array2D((4, 4), "uint8"), "label": ClassLabel(names=[str(d) for d in range(10)])})
    return Dataset.from_dict(
        {"image": list(rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)), "label": [i % 10 for i in range(n)]},
        features=features,
    )


def test_the_plugin_and_its_command_are_listed():
    done = atdata("plugins", "--json")
    report = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    assert report["hf"]["status"] == "loaded"
    assert "atdata_cli_commands" in report["hf"]["hooks"]
    assert "import" in atdata("hf", "--help").stdout


def test_import_a_saved_dataset(tmp_path):
    source = digits(25)
    source.save_to_disk(str(tmp_path / "saved"))
    done = atdata("hf", "import", str(tmp_path / "saved"), str(tmp_path / "out" / "digits-%06d.tar"),
                  "--class-name", "Digit", "--maxcount", "10")
    assert done.returncode == 0, done.stderr
    assert "25 samples in 3 shard(s) of Digit" in done.stdout
    assert "sha256" in done.stdout

    from atdata_hf import sample_type_from_features

    Digit = sample_type_from_features(source.features, name="Digit")
    samples = list(atdata_core.Dataset(str(tmp_path / "out" / "digits-*.tar"), sample_type=Digit))
    assert [s.label for s in samples] == source["label"]
    np.testing.assert_array_equal(samples[3].image, np.asarray(source[3]["image"], dtype=np.uint8))


def test_import_local_parquet_files_through_load_dataset(tmp_path):
    folder = tmp_path / "parquet"
    folder.mkdir()
    table = Dataset.from_dict({"text": ["a", "b", "c"], "score": [0.5, 1.5, 2.5]},
                              features=Features({"text": Value("string"), "score": Value("float32")}))
    table.to_parquet(str(folder / "train.parquet"))
    done = atdata("hf", "import", str(folder), str(tmp_path / "out" / "rows-%06d.tar"), "--split", "train")
    assert done.returncode == 0, done.stderr
    rows = list(atdata_core.Dataset(str(tmp_path / "out" / "rows-*.tar")))
    assert [r["text"] for r in rows] == ["a", "b", "c"]


def test_several_splits_need_split(tmp_path):
    DatasetDict({"train": digits(2), "test": digits(1)}).save_to_disk(str(tmp_path / "saved"))
    done = atdata("hf", "import", str(tmp_path / "saved"), str(tmp_path / "out-%06d.tar"))
    assert done.returncode == 2
    assert "test, train" in done.stderr and "--split" in done.stderr
    chosen = atdata("hf", "import", str(tmp_path / "saved"), str(tmp_path / "out-%06d.tar"), "--split", "test")
    assert chosen.returncode == 0, chosen.stderr
    assert "1 samples in 1 shard(s)" in chosen.stdout


def test_an_unsupported_feature_fails_with_one_clear_line(tmp_path):
    import datetime

    Dataset.from_dict({"when": [datetime.date(2026, 1, 2)]}, features=Features({"when": Value("date32")})).save_to_disk(
        str(tmp_path / "s"))
    done = atdata("hf", "import", str(tmp_path / "s"), str(tmp_path / "out-%06d.tar"))
    assert done.returncode == 1
    assert "error: when: Value('date32') has no atdata field type" in done.stderr
    assert "Traceback" not in done.stderr


def test_export_local_shards_with_their_class(tmp_path):
    (tmp_path / "readings.py").write_text(
        "from typing import Annotated\n"
        "import numpy as np\n"
        "from numpy.typing import NDArray\n"
        "import atdata_core\n\n"
        "@atdata_core.packable\n"
        "class Reading:\n"
        "    station: str\n"
        "    trace: Annotated[NDArray[np.float32], {'shape': (None, 4)}]\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from readings import Reading
    finally:
        sys.path.remove(str(tmp_path))
    with atdata_core.ShardWriter(str(tmp_path / "r-%03d.tar"), maxcount=2) as sink:
        for i in range(3):
            sink.write(Reading(station=f"s{i}", trace=np.full((i + 1, 4), i, np.float32)))

    refused = atdata("hf", "export", "r-*.tar", "out", cwd=tmp_path)
    assert refused.returncode == 2 and "--type package.module:Class" in refused.stderr

    done = atdata("hf", "export", "r-*.tar", "out", "--type", "readings:Reading", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 rows written to out" in done.stdout and "trace (Array2D)" in done.stdout
    from datasets import load_from_disk

    saved = load_from_disk(str(tmp_path / "out"))
    assert saved.features["trace"] == Array2D(shape=(None, 4), dtype="float32")
    assert saved["station"] == ["s0", "s1", "s2"]
