# Every target creates and uses .venv itself, so a fresh clone with only
# Python 3.11 needs nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The Kaitai Struct compiler (npm) and its YAML reader, pinned in ksy/kaitai.py,
# installed once into this git-ignored folder.
KAITAI := build/kaitai/.installed
FUZZ_SECONDS ?= 60
SCALE ?= small

.PHONY: demo test lint typecheck unit fuzz bench bench-compare schemas c kaitai clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m xenlu.cli.demo

lint: $(STAMP)
	$(PY) -m ruff check xenlu tests benchmarks fuzz c ksy
	$(PY) -m ruff format --check xenlu tests benchmarks fuzz c ksy

typecheck: $(STAMP)
	$(PY) -m mypy

# The suite also compiles c/ (warnings as errors, and with ASan/UBSan) and
# the ksy/ descriptions (tests/test_cgen.py, tests/test_ksy.py).
unit: $(STAMP) $(KAITAI)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest

test: lint typecheck unit

fuzz: $(STAMP)
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

bench: $(STAMP)
	$(PY) benchmarks/run.py --scale $(SCALE)

# Two revisions side by side, every row (benchmarks/README.md, "Before and
# after"): make bench-compare BASE=d7392c1 [HEAD=fd07dc7] [ROUNDS=5] [ONLY=rows]
# [JSON=file]. HEAD defaults to the work tree as it is; exit 1 if a row is
# slower by more than 10% beyond its noise. Xen's verifier rows need
# XEN_TOOLS_PYTHON, as for `make bench`.
bench-compare: $(STAMP)
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=REV [HEAD=REV]" >&2; exit 2; }
	$(PY) benchmarks/compare.py $(BASE) $(if $(HEAD),$(HEAD),.) --scale $(SCALE) \
		$(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(ONLY),--only $(ONLY)) $(if $(JSON),--json $(JSON))

# Every artefact generated from the declarations (xenlu/tools/artefacts.py).
schemas: $(STAMP)
	$(PY) -m xenlu schema write xenlu/schemas
	$(PY) -m xenlu schema c-header --dir include
	$(PY) -m xenlu schema ksy --dir ksy

# The C reader/writer: build/c/xenlu-c, and build/c-san/xenlu-c with sanitizers.
c: $(STAMP)
	$(PY) c/build.py build/c
	$(PY) c/build.py build/c-san --sanitize

kaitai: $(KAITAI)

$(KAITAI): ksy/kaitai.py $(STAMP)
	$(PY) ksy/kaitai.py install
	touch $(KAITAI)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
