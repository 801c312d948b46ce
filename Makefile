.PHONY: setup demo test bench docs

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

# Every benchmark at full size (about 25 minutes), one after another; their figures, the machine
# and the commands that reproduce them go into docs/performance.md between its report markers.
bench: setup
	.venv/bin/python bench/report.py

# The documentation site into build/site, built strictly: a broken link, anchor or API reference
# fails it. CLI, configuration and lexicon pages are generated from the code (docs/_generated.py).
docs: setup
	NO_MKDOCS_2_WARNING=1 .venv/bin/python -m mkdocs build --strict
