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
# the seventh session measured the gla fwd ratio (1.08x) and the fwd+bwd ratio (1.16x, older forward) in two runs:
# fla's backward autotune (~200 s) cut the second run's fwd+bwd row. This step gives both in one process.
step "gla vs fla chunk_gla, fwd and fwd+bwd in one process (default forward: whole chunks)"
timeout 450 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 \
    | grep -v Warn | tail -16
step "gla kernel times"
timeout 100 python3 benchmarks/gla_profile.py --json "$out/gla_prof.json" 2>&1 | grep -v Warn | tail -20
step done
