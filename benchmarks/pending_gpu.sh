#!/usr/bin/env bash
# GPU measurements prepared on the CPU and not yet run, in one device call of < 600 s. Usage on the lent machine,
# from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit so one slow peer autotune cannot eat the others; JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== scan1: serial-in-time form (CT,BD,W,S) vs the look-back form and the peers (issue 3)"
timeout 180 python3 benchmarks/scan1_sweep.py \
    --configs "32,32,1,1;32,32,1,2;16,32,1,2;64,32,1,1;64,32,1,2;32,64,2,2;16,16,1,2;16,32,1,1" \
    --json "$out/scan1.json" 2>&1 | grep -v Warn | grep -v "^correct" | tail -50
echo "== scan1: kernel time breakdown, look-back default vs serial"
timeout 80 python3 benchmarks/scan1_profile.py --configs "default;32,32,1;32,32,1,2" --json "$out/scan1_prof.json" \
    2>&1 | grep -v Warn | tail -60
echo "== gla kernel vs fla chunk_gla, fwd and fwd+bwd in one run (issue 4)"
timeout 280 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 | grep -v Warn | tail -20
