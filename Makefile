# ClimaTune: `make demo` and `make test` are the two commands a new user types.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench bench-quick clean

install: $(STAMP)

# Re-install only when the project metadata changes; torch first, from the local CPU
# wheel when there is one, so pip never resolves a multi-GB CUDA build here.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/climatune demo --out runs/demo --overwrite

# Two workers, one test file each at a time (files share their runs through fixtures);
# testpaths in pyproject.toml include src/, so the docstring examples run too.
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m mypy src/climatune

bench: install
	$(PY) bench/run.py

bench-quick: install
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
