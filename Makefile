# make demo   — set up .venv with what the demo needs (torch, genvae, matplotlib) and run the demo (the README's first command)
# make test   — set up .venv, then lint, type-check and run the test suite (the README's second command)
# make dist   — build the wheel and the sdist into dist/ and check them with twine
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch==2.13.0 resolves to the CPU build on the project's machines. Elsewhere, pick the build
# you want, e.g. TORCH_INSTALL="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_INSTALL ?= torch==2.13.0
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install test test-all lint docs demo dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, where none is installed (the build TORCH_INSTALL names), so pip keeps it
TORCH_FIRST = @$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_INSTALL)

# What the demo needs, and no more: torch, genvae and matplotlib (the figures, SyntheticDigits' fonts).
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(TORCH_FIRST)
	$(BIN)/python -m pip install -q -e ".[viz]"
	@touch $@

# Everything the tests, linters, docs and packaging use (the demo's needs included).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(TORCH_FIRST)
	$(BIN)/python -m pip install -q -e ".[dev,viz,docs]"
	@touch $@ $(VENV)/.installed-demo

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check src tests examples benchmarks tools
	$(BIN)/ruff format --check src tests examples benchmarks tools
	$(BIN)/mypy

# Both documentation builds are strict: a broken link, a bad docstring or a renamed name fails.
docs: install
	$(BIN)/sphinx-build -W -q -b html docs/sphinx docs/api
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q

test: lint docs
	$(BIN)/pytest $(PYTEST_ARGS)

test-all: lint docs
	$(BIN)/pytest -m "slow or not slow" $(PYTEST_ARGS)

demo: $(VENV)/.installed-demo
	$(BIN)/genvae demo $(DEMO_ARGS)

# What users install: the sdist, and the wheel built from it (so the sdist is known to build).
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .hypothesis site docs/api
