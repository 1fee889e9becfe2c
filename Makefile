# Two commands: `make demo` and `make test`. Each builds .venv once; the stamp
# file means a re-run installs nothing unless pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin

.PHONY: demo test lint venv clean browser docs docs-build

venv: $(STAMP)

# pip -qq: errors only (pip configs that name optional local indexes warn on every package)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dcesynth needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dcectl demo

test: $(STAMP) browser docs-build
	$(BIN)/ruff check platform tests jobs
	$(BIN)/python -m pytest

# The dashboard test opens Ray's dashboard in headless Chromium (Debian's chromium and
# chromium-driver). Installed when missing and apt is usable (CI runs as root); elsewhere
# that test is skipped, saying why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		     && (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
		     || echo "chromium not installed: the dashboard browser test will be skipped"; }

# The guides as a site (mkdocs.yml): docs/cli.md regenerated from the dcectl app, then a
# strict build (warnings are errors) into site/. `make test` builds the committed docs as
# they are (docs-build), so a stale docs/cli.md fails its test rather than being rewritten.
docs: $(STAMP)
	$(BIN)/python -m dcesynth.cli.reference docs/cli.md
	$(MAKE) docs-build

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check platform tests jobs
	$(BIN)/ruff format --check platform tests jobs

clean:
	rm -rf $(VENV) demo_out study_out bench_out .pytest_cache site
