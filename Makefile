# One entry for set-up: every target creates the virtualenv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint man bench clean snapshots mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/beeline-missed demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Re-take the panel's snapshots on purpose (after a deliberate UI change); review the SVGs.
snapshots: $(STAMP)
	$(BIN)/python -m pytest --snapshot-update tests/test_panel_snapshots.py

lint: $(STAMP)
	$(BIN)/ruff check .

man: $(STAMP)
	$(BIN)/python -m beeline_missed.cli.manpages man

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Mutation testing of the rule modules, each against its fast tests (docs/mutation.md); not
# part of `make test`. MODULES=card hours ... runs some of them.
MODULES ?=
$(VENV)/.mutation: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	touch $@

mutation: $(VENV)/.mutation
	$(BIN)/python tools/mutation.py $(MODULES)

clean:
	rm -rf $(VENV) build/mutation
