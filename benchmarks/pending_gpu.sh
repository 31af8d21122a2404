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
sweep() {  # $1 limit, $2 json name, $3 dtypes, $4 configs
    timeout "$1" python3 benchmarks/scan1_sweep.py --json "$out/$2.json" --dtypes "$3" --configs "$4" 2>&1 \
        | grep -v Warn | grep -v "ok=True" | tail -40
}
step "scan1: reused workspace with launch tags (no memset), lean publishing (untimed options, sixth session)"
sweep 170 scan1_bf16 bfloat16 "@EPOCH=1;@LEAN=1;@EPOCH=1@LEAN=1;32,64,1@EPOCH=1@LEAN=1"
sweep 170 scan1_fp32 float32 "@EPOCH=1;@LEAN=1;@EPOCH=1@LEAN=1;32,32,1@EPOCH=1@LEAN=1"
step "scan1 kernel breakdown (memsets included)"
timeout 60 python3 benchmarks/scan1_profile.py --json "$out/scan1_prof.json" 2>&1 | grep -v Warn | tail -14
step "prefix_attention look-back: ticket + late poll vs program-id order + early poll (untimed option)"
SEQLAB_BENCH_PA_FORMS="lookback,lookback early" timeout 150 python3 benchmarks/kernels_ii.py --only prefix_attention \
    --json "$out/pa.json" 2>&1 | grep -v Warn | tail -16
step done
