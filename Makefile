# Two commands for a newcomer (see README.md, Quick start):
#   make demo   install (pinned) + train/evaluate one fold on a synthetic corpus
#   make test   install (pinned) + the whole test suite (what CI runs first)
# CI (.ci/run) then runs `make lint` and `make docs` (the site of docs/).
PYTHON ?= python
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install demo test test-slow lint docs

install:
	$(PIP_INSTALL) -e ".[dev]" -c constraints.txt

demo: install
	$(PYTHON) -m speechbrain_mtmm demo

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q

# minutes-long checks left out of `make test` (e.g. benchmarks/gpu.sh --dry-run)
test-slow: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q -m slow

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	git ls-files '*.yaml' '*.yml' | xargs $(PYTHON) -m yamllint --no-warnings
	git ls-files | grep -v -E '\.(csv|ipynb)$$' | xargs $(PYTHON) -m codespell_lib

# the site of docs/ into site/; --strict: a broken link, a missing anchor or
# cross-reference, or a docstring that does not match its signature fails.
# The two variables silence the notices of the mkdocs plugins' maintainers.
docs:
	$(PIP_INSTALL) -e ".[docs]" -c constraints.txt
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true \
		$(PYTHON) -m mkdocs build --strict
