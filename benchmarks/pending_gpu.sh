#!/usr/bin/env bash
# The GPU measurements prepared on the CPU and not yet run (docs/results.md, "Prepared in the fourth session"),
# in one device call of < 600 s. Usage on the lent machine, from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit so one slow peer autotune cannot eat the others; JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== prefix_attention: fused vs chunked vs lookback (issue 4: >= 80% of copy bandwidth)"
timeout 170 python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa.json" 2>&1 | grep -v Warn | tail -30
echo "== mamba2 layer with grouped B/C vs fla's simple-gla layer (issue 5)"
timeout 150 python3 benchmarks/blocks.py --rows "ours mamba2,fla SimpleGatedLinearAttention" --budget 140 \
    --json "$out/blocks_mamba2.json" 2>&1 | tail -8
echo "== scan1: 1-2 warp tiles (issue 3)"
timeout 170 python3 benchmarks/scan1_sweep.py --configs "64,32,1;32,32,1;64,64,2;32,64,2;64,128,4" \
    --json "$out/scan1.json" 2>&1 | grep -v Warn | tail -40
