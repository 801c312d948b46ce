"""bench/report.py at the smallest sizes writes the generated section of a copy of docs/performance.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- report:start -->", "<!-- report:end -->"


def test_report_writes_machine_tables_and_commands_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    shutil.copy(ROOT / "docs" / "performance.md", page)
    original = page.read_text()
    assert START in original and END in original

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--quick", "--only", "read_write,storage",
         "--args", "read_write=--only small,write", "--args", "storage=--only local", "--output", str(page)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[1/2] read_write" in done.stdout and "[2/2] storage" in done.stdout  # progress as each one runs

    text = page.read_text()
    before, rest = text.split(START)
    section, after = rest.split(END)
    # the prose outside the markers is untouched
    assert before == original.split(START)[0]
    assert after == original.split(END)[1]

    # the machine
    for what in ("| CPU |", "| memory |", "| OS |", "| Python |", "| numpy / msgpack |", "| load average at the start"):
        assert what in section
    # one table per benchmark, with figures, comparison rows and targets
    assert "### read and write" in section and "### storage backends" in section
    assert "| reader | samples/s | ratio | target |" in section
    for row in ("| minimal |", "| tarfile + msgpack |", "| ordered |", "| batched, verified |", "| ShardWriter |"):
        assert row in section
    assert "x minimal |" in section
    assert ">= 0.75x minimal: " in section and (": met" in section or ": not met" in section)
    assert "| local |" in section
    # the commands that reproduce them
    assert "python bench/report.py --quick --only read_write,storage" in section
    assert "python bench/bench_read_write.py --samples 1000" in section
    assert "python bench/bench_storage.py --mb 4 --repeat 1 --only local" in section

    # a second run replaces the section instead of adding another
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--quick", "--only", "storage",
         "--args", "storage=--only local", "--output", str(page)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    again = page.read_text()
    assert again.count(START) == 1 and again.count(END) == 1
    assert "### read and write" not in again and "### storage backends" in again
    assert again.split(START)[0] == original.split(START)[0]
