#!/usr/bin/env bash
# GPU measurements for the still-open kernel bars (issues 3 and 4; docs/results.md) in one device call of < 600 s.
# Usage on the lent machine, from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit (a hung variant cannot eat the others); JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }
step "scan1 defaults (program-id order, early poll; fp32 forward 64x32x2) vs accelerated-scan and chunk_hgrn"
timeout 130 python3 benchmarks/scan1_sweep.py --no-sweep --dtypes bfloat16,float32 --json "$out/scan1.json" 2>&1 \
    | grep -v Warn | grep -v "ok=True" | grep -v "^{" | tail -30
step "gla vs fla chunk_gla, fwd and fwd+bwd in one process (fla's fwd+bwd autotune takes minutes)"
timeout 340 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 | grep -v Warn | tail -14
step done
