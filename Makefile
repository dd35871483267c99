# particlegraph: two commands for a fresh machine.
#   make demo   set up, then run the flagship (MLPF) end to end on a small generated sample (CPU)
#   make test   set up, then lint and run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench clean

venv: $(STAMP)

# torch is pinned to the CPU wheel first: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all,dev]" torch==2.13.0
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

test: venv lint
	$(VENV)/bin/pytest -q

demo: venv
	$(VENV)/bin/particlegraph mlpf demo --out runs/demo

clean:
	rm -rf runs/demo .pytest_cache .ruff_cache
