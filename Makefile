# Two commands for a newcomer (see README.md, Quick start):
#   make demo   install (pinned) + train/evaluate one fold on a synthetic corpus
#   make test   install (pinned) + the test suite (not the slow tests)
# CI (.ci/run) also runs `make test-slow`, `make lint` and the wheel check.
PYTHON ?= python
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check
PYTEST = HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q
# pytest exits with 5 when it collected no test: a run that checked nothing
# fails, and says why
NOTHING_RAN = || { status=$$?; [ $$status -ne 5 ] \
	|| echo "pytest collected no tests" >&2; exit $$status; }

.PHONY: install demo test test-slow lint

install:
	$(PIP_INSTALL) -e ".[dev]" -c constraints.txt

demo: install
	$(PYTHON) -m speechbrain_mtmm demo

# unit tests, doctests and the short trainings (pyproject.toml: -m 'not slow')
test: install
	$(PYTEST) $(NOTHING_RAN)

# the tests marked slow: trainings that check a model learns, kill/resume
# runs, sweeps, DDP, concurrent processes, exports end to end and
# benchmarks/gpu.sh --dry-run (CI's second step, after `make test`)
test-slow: install
	$(PYTEST) -m slow $(NOTHING_RAN)

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	git ls-files '*.yaml' '*.yml' | xargs $(PYTHON) -m yamllint --no-warnings
	git ls-files | grep -v -E '\.(csv|ipynb)$$' | xargs $(PYTHON) -m codespell_lib
