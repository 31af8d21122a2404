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
step "gla vs fla chunk_gla (default forward form: whole chunks), one process"
timeout 330 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 \
    | grep -v Warn | tail -16
step "gla bf16 correctness against the fp32 chunked form (benchmark shape, strong decays, packed sequences)"
timeout 150 python3 benchmarks/kernels_ii.py --only gla --no-peer --json "$out/gla_check.json" 2>&1 \
    | grep -v Warn | grep -i "correct" | tail -12
step done
