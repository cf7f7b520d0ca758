# ClimaTune: `make demo` and `make test` are the two commands a new user types.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast fuzz lint bench bench-quick clean

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

# The CLI fuzzer, long (its seeded slice runs in `make test`): FUZZ_EXAMPLES cases per
# target with a random seed, printed so that a failure replays with FUZZ_SEED=N.
FUZZ_EXAMPLES ?= 2000
fuzz: install
	@seed=$${FUZZ_SEED:-$$(date +%s)}; echo "fuzz: --hypothesis-seed=$$seed"; \
	CLIMATUNE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
		tests/reliability/test_fuzz.py --timeout=0 --hypothesis-seed=$$seed --hypothesis-show-statistics

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
