#!/usr/bin/env bash
# The GPU measurements behind the still-open kernel bars (issues 3 and 4; docs/results.md), in one device call of
# < 600 s. Usage on the lent machine, from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit so one slow peer autotune cannot eat the others; JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== scan1 default vs accelerated-scan and fla chunk_hgrn (issue 3), and where its time goes"
timeout 120 python3 benchmarks/scan1_sweep.py --no-sweep --json "$out/scan1.json" 2>&1 | grep -v Warn \
    | grep -v "ok=True" | tail -30
timeout 60 python3 benchmarks/scan1_profile.py --json "$out/scan1_prof.json" 2>&1 | grep -v Warn | tail -14
echo "== prefix_attention forms vs copy bandwidth (issue 4)"
timeout 120 python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa.json" 2>&1 | grep -v Warn | tail -20
echo "== gla vs fla chunk_gla, fwd and fwd+bwd in one run (issue 4; fla's autotune takes ~150 s)"
timeout 280 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 | grep -v Warn | tail -12
