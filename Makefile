# wasmhost — every target sets up what it needs (virtual environment included).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data

.PHONY: install modules test serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

modules: install
	$(PY) modules/build.py

test: install
	$(PY) -m pytest -q

serve: install modules
	$(PY) -m wasmhost serve --data $(DATA) --deploy-examples

bench: install modules
	$(PY) bench/bench_core.py

clean:
	rm -rf $(VENV) modules/build .pytest_cache
