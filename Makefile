# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: run test lint schema bench audit
run: $(STAMP)
	$(VENV)/bin/messager serve --demo

test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

schema: $(STAMP)
	$(VENV)/bin/messager export-schema

# The benchmark suite (docs/benchmarks.md); several minutes, prints and writes bench/results/.
bench: $(STAMP)
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m bench.suite

# Known vulnerabilities in the installed dependencies (docs/security.md, "Dependency audit").
audit: $(STAMP)
	$(VENV)/bin/pip install --quiet -e '.[audit]'
	$(VENV)/bin/pip-audit --local --strict --progress-spinner off
