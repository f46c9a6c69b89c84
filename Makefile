# Every target creates and uses .venv itself, so a fresh clone with only
# Python 3.11 needs nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FUZZ_SECONDS ?= 60
SCALE ?= small

.PHONY: demo test lint typecheck unit fuzz bench schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m xenlu.demo

lint: $(STAMP)
	$(PY) -m ruff check xenlu tests benchmarks fuzz
	$(PY) -m ruff format --check xenlu tests benchmarks fuzz

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest

test: lint typecheck unit

fuzz: $(STAMP)
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

bench: $(STAMP)
	$(PY) benchmarks/run.py --scale $(SCALE)

schemas: $(STAMP)
	$(PY) -m xenlu schema write xenlu/schemas

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
