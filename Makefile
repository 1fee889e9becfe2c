# Two commands: `make demo` and `make test`. Each builds .venv once; the stamp
# file means a re-run installs nothing unless pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin

.PHONY: demo test lint venv clean

venv: $(STAMP)

# pip -qq: errors only (pip configs that name optional local indexes warn on every package)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dcesynth needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dcectl demo

test: $(STAMP)
	$(BIN)/ruff check platform tests jobs
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check platform tests jobs
	$(BIN)/ruff format --check platform tests jobs

clean:
	rm -rf $(VENV) demo_out .pytest_cache
