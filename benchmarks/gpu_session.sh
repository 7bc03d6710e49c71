#!/usr/bin/env bash
# Every GPU check numfmt has, as one prepared run for a GPU lent for minutes.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_session.sh [checks] [bench] [suite]   (default: all three)
#
# checks  tests/test_tensorcore_gpu.py (the tensor-core models against live cuBLASLt,
#         cuBLAS and XLA products on fresh operands) and tests/test_cross_backend_gpu.py
#         (CPU and GPU bits of every scaled, MX, NVFP4, fake-quant, low-bit, k-means and
#         affine path in one process): about 1.5 minutes on an H100.
# bench   benchmarks/run_all.py --short (tables for docs/benchmarks.md) and the
#         tensor-core models at 4096^3: about 4 minutes.
# suite   the whole default test suite on the GPU (issue 15), failures listed:
#         about 3 minutes with pytest-xdist, much longer without.
#
# Everything a stage prints goes to $OUT/<stage>.txt; the lines that matter are echoed.
# The stages are independent, so a short lease can run them one call at a time.
set -u
OUT=${OUT:-./gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(checks bench suite)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || say "no nvidia-smi"
python -c "import jax; print('jax', jax.__version__, jax.devices())"

for stage in "${stages[@]}"; do
  case "$stage" in
    checks)
      say "checks"
      # -o addopts=: one process (no pytest-xdist), so that -s shows the agreement lines.
      JAX_PLATFORMS=cuda timeout 240 python -m pytest -q -s -p no:cacheprovider -o addopts= -rfEs \
        tests/test_tensorcore_gpu.py tests/test_cross_backend_gpu.py > "$OUT/checks.txt" 2>&1
      grep -E "bit-identical|^(FAILED|ERROR|SKIPPED)|passed|failed" "$OUT/checks.txt" | tail -60 ;;
    bench)
      say "bench"
      JAX_PLATFORMS=cuda timeout 300 python benchmarks/run_all.py --short --timeout 200 --out "$OUT/bench" \
        > "$OUT/bench.txt" 2>&1
      tail -5 "$OUT/bench.txt"
      JAX_PLATFORMS=cuda timeout 90 python benchmarks/bench_tensorcore.py --size 4096 > "$OUT/bench_tensorcore.txt" 2>&1
      tail -15 "$OUT/bench_tensorcore.txt" ;;
    suite)
      say "suite"
      # The README's default selection, with pytest-xdist where the machine has it.
      par=()
      python -c "import xdist" 2>/dev/null && par=(-n 12)
      JAX_PLATFORMS=cuda timeout 500 python -m pytest -q -p no:cacheprovider -o addopts= \
        -m "not exhaustive and not slow" -rfE "${par[@]}" > "$OUT/suite.txt" 2>&1
      grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/suite.txt" | tail -40 ;;
    *) echo "unknown stage $stage (checks, bench, suite)"; exit 2 ;;
  esac
done
say "done"
