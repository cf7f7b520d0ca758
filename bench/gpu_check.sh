#!/usr/bin/env bash
# One short session on a CUDA machine: the GPU tests, then the GPU benchmark.
#
#   bash bench/gpu_check.sh [OUT_DIR]
#
# GPU_FOUNDATION=1 also runs the foundation section (examples/foundation through Lightning).
#
# Runs under the machine's own python3 with the project's source on PYTHONPATH. Wheels of
# missing dependencies, if any, can be carried in .whl/ and are installed to /tmp/site.
# Writes gpu.txt, tests.log, bench.log, results.json and BENCHMARKS.md to OUT_DIR.
set -uo pipefail
out=${1:-runs/gpu-check}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, lightning; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'lightning', lightning.__version__)" |
    tee -a "$out/gpu.txt"
timeout "${GPU_TEST_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider \
    tests/gpu "tests/evaluation/test_evaluate.py::test_predict_on_an_explicit_cpu_device_matches_auto" 2>&1 | tee "$out/tests.log"
timeout "${GPU_BENCH_TIMEOUT:-240}" python3 bench/run.py --only gpu 2>&1 | tee "$out/bench.log"
if [ -n "${GPU_FOUNDATION:-}" ]; then  # examples/foundation, ~100 M parameters: minutes more
    timeout "${GPU_FOUNDATION_TIMEOUT:-420}" python3 bench/run.py --only foundation 2>&1 |
        tee -a "$out/bench.log"
fi
cp bench/results.json BENCHMARKS.md "$out/"
