# torchgen: build the environment from nothing, then demo / test / bench / lint.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv peers clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py torchgenetics/susie/_brent.c torchgenetics/susie/_products.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/torchgen demo

# plink2 from the package manager, for the tests that compare against it (optional).
peers:
	@command -v plink2 >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq plink2) >/dev/null 2>&1 || \
	  echo "plink2 not installed: its comparison tests run from saved output"; }

test: $(STAMP) peers
	$(PY) -m pytest -q --timeout=900 tests --nbmake notebooks

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check torchgenetics tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info torchgenetics/susie/*.so
