# Fresh-machine entry points: `make run` serves the demo, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv bench clean golden screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/scopekeeper serve

lint: $(STAMP)
	$(BIN)/ruff check service connectors tests bench migrations scripts

test: lint
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python -m bench.run --scale typical

# Full-page PNGs of the main web pages on the demo data into docs/screenshots/ (needs
# /usr/bin/chromium; see docs/web.md).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) scopekeeper.db*

# Rewrite the golden files of the report and plan outputs (tests/golden/); review the diff.
golden: $(STAMP)
	SCOPEKEEPER_UPDATE_GOLDEN=1 $(BIN)/pytest -q -k "not postgresql" \
		tests/test_reports_golden.py tests/test_plan_golden.py
