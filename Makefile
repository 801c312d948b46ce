.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

# The main job on a local federation: the PDS sandbox and an AppView on loopback, two accounts, a
# typed dataset published as alice (shards as PDS blobs), found through the AppView and loaded
# through a lens as bob. The services keep running: `.venv/bin/atdata sandbox down` stops them.
demo: setup
	.venv/bin/atdata demo

# Every test, with everything they need installed and started, on Python 3.11 (.venv, with
# torch) and 3.13 (.venv-py3.13, newest numpy). ATDATA_TEST_PYTHONS=3.13 make test runs one.
test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python bench/bench_read_write.py
