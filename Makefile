# Two commands for a newcomer (see README.md, Quick start):
#   make demo   install (pinned) + train/evaluate one fold on a synthetic corpus
#   make test   install (pinned) + the whole test suite, lint and format check
PYTHON ?= python
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install demo test lint

install:
	$(PIP_INSTALL) -e ".[dev]" -c constraints.txt

demo: install
	$(PYTHON) -m speechbrain_mtmm demo

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
