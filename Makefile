# wasmhost — every target sets up what it needs (virtual environment included).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data

.PHONY: install wat modules toolchains test serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The WAT examples need only the venv (serve, bench and the tests use them); the
# SDK examples in modules/wasm/ are committed, so nothing else needs a toolchain.
wat: install
	$(PY) modules/build.py

# Every example from source: the WAT ones, then each language's (needs
# scripts/install-toolchains.sh; each build.sh names what is missing).
modules: wat
	@status=0; for script in modules/*/build.sh; do \
	    echo "== $$script"; bash "$$script" || status=$$?; \
	done; \
	if [ $$status -eq 3 ]; then echo "some toolchains are missing: run scripts/install-toolchains.sh" >&2; fi; \
	exit $$status

toolchains:
	bash scripts/install-toolchains.sh

test: install
	$(PY) -m pytest -q

serve: wat
	$(PY) -m wasmhost serve --data $(DATA) --deploy-examples

# The whole suite (bench/run.py, ~10 minutes): tiers, peers, load; installs wrk with apt if it
# can (root), else uses its asyncio load client. Results in bench/results/.
bench: wat
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) modules/build .pytest_cache
