# Two commands for a newcomer (see README.md, Quick start):
#   make demo   install (pinned) + train/evaluate one fold on a synthetic corpus
#   make test   install (pinned) + the test suite (not the slow tests)
# CI (.ci/run) also runs `make test-slow`, `make lint`, `make docs` (the site
# of docs/) and the wheel check.
PYTHON ?= python
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check
# -rs: every skipped test says why (e.g. no headless browser)
PYTEST = HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q -rs
# pytest exits with 5 when it collected no test: a run that checked nothing
# fails, and says why
NOTHING_RAN = || { status=$$?; [ $$status -ne 5 ] \
	|| echo "pytest collected no tests" >&2; exit $$status; }

.PHONY: install demo test test-slow lint docs

install:
	$(PIP_INSTALL) -e ".[dev]" -c constraints.txt

demo: install
	$(PYTHON) -m speechbrain_mtmm demo

# unit tests, doctests and the short trainings (pyproject.toml: -m 'not slow')
test: install
	$(PYTEST) $(NOTHING_RAN)

# the tests marked slow: trainings that check a model learns, kill/resume
# runs, sweeps, DDP, concurrent processes, exports end to end,
# benchmarks/gpu.sh --dry-run, mtmm serve under a flood and its page in a
# headless Chromium (CI's second step, after `make test`)
test-slow: install
	$(PYTEST) -m slow $(NOTHING_RAN)

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
