#!/usr/bin/env bash
# GPU measurements prepared on the CPU and not yet run, in one device call of < 600 s. Usage on the lent machine,
# from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT"
# Each step has its own time limit so one slow peer autotune cannot eat the others; JSON lands in $1.
set -u
out=${1:-/tmp}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== scan1: windowed look-back (CT,BD,W/LW) vs one-predecessor look-back (/1) and the peers (issue 3)"
timeout 170 python3 benchmarks/scan1_sweep.py \
    --configs "64,64,4/1;32,32,1/16;32,32,1/32;64,32,1/16;32,64,2/16;64,64,4/32;128,64,4/16;16,32,1/16" \
    --json "$out/scan1.json" 2>&1 | grep -v Warn | grep -v "^correct.*ok=True" | tail -50
echo "== blocks: every issue-5 throughput row in one run"
timeout 330 python3 benchmarks/blocks.py --rows "ours gla,fla GatedLinearAttention,ours deltanet,fla DeltaNet,ours \
mamba2,fla SimpleGatedLinearAttention,ours mamba,torch-loop mamba" --budget 290 --json "$out/blocks_i5.json" 2>&1 | tail -16
