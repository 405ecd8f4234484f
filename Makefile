# torchgen: build the environment from nothing, then demo / test / bench / lint.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/torchgen demo

test: $(STAMP)
	$(PY) -m pytest -q --timeout=900 tests --nbmake notebooks

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check torchgenetics tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
