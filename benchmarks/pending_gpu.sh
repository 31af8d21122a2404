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
step "prefix_attention look-back over windows of 4 / 8 / 16 slots per step (untimed option, seventh session)"
SEQLAB_BENCH_PA_FORMS="lookback,lookback win4,lookback win8,lookback win16" timeout 200 \
    python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa.json" 2>&1 | grep -v Warn | tail -24
step done
