.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

# The main job on the embedded default: write a typed dataset and read it back, then publish it
# on a local federation (PDS + PLC on loopback) and load it from another account.
demo: setup
	.venv/bin/python examples/quickstart.py
	.venv/bin/python examples/federation.py

# Every test, with everything they need installed and started, on Python 3.11 (.venv, with
# torch) and 3.13 (.venv-py3.13, newest numpy). ATDATA_TEST_PYTHONS=3.13 make test runs one.
test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python bench/bench_read_write.py
