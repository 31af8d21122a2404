#!/usr/bin/env bash
# GPU measurements for the still-open kernel bars (issues 3 and 4; docs/results.md) in one device call of < 600 s:
# the untimed scan1 options first. Usage on the lent machine, from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit so one slow peer autotune cannot eat the others; JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== scan1 vs accelerated-scan and fla chunk_hgrn (issue 3): program-id order and the early poll (untimed)"
timeout 200 python3 benchmarks/scan1_sweep.py --json "$out/scan1.json" \
    --configs "@TICKET=0;@EARLY_POLL=1;@TICKET=0@EARLY_POLL=1;64,64,4@TICKET=0@EARLY_POLL=1" 2>&1 \
    | grep -v Warn | grep -v "ok=True" | tail -40
timeout 60 python3 benchmarks/scan1_profile.py --json "$out/scan1_prof.json" 2>&1 | grep -v Warn | tail -14
echo "== gla vs fla chunk_gla, fwd and fwd+bwd in one run (issue 4; fla's autotune takes ~150 s)"
timeout 280 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 | grep -v Warn | tail -12
