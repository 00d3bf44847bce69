# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3

.PHONY: setup demo test lint pytest bench

setup:
	bash scripts/install-system-deps.sh
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[service,postgres,c2pa,distributed,dev]'

demo: setup
	$(PYTHON) -m aigclabel demo

lint:
	$(PYTHON) -m ruff check aigclabel tests bench
	$(PYTHON) -m ruff format --check aigclabel tests bench
	$(PYTHON) -m mypy aigclabel

pytest:
	$(PYTHON) -m pytest -q

test: setup lint pytest

bench: setup
	$(PYTHON) bench/images.py
