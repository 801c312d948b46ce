.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

# The main job on the embedded default: write a typed dataset, read it back, publish and load it.
demo: setup
	.venv/bin/python examples/quickstart.py

# Every test, with everything they need installed and started.
test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python bench/bench_read_write.py
