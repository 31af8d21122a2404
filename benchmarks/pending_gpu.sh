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
step "scan1, one-tile programs: one-trip look-back (default) vs re-loading; program-id order + early poll"
sweep 150 scan1_a bfloat16 "@RELOAD=1;@TICKET=0@EARLY_POLL=1;16,32,1@TICKET=0@EARLY_POLL=1"
step "scan1, persistent programs (next tile's loads in flight)"
sweep 170 scan1_b bfloat16 "@PERSIST=8;@PERSIST=16;16,32,1@PERSIST=16;16,32,1@PERSIST=24;16,64,2@PERSIST=8"
step "scan1 fp32"
sweep 120 scan1_c float32 "@TICKET=0@EARLY_POLL=1;@PERSIST=8;16,32,1@PERSIST=16"
step "gla kernel breakdown, ours then fla chunk_gla"
timeout 120 python3 benchmarks/gla_profile.py --peer --json "$out/gla_prof.json" 2>&1 | grep -v Warn | tail -80
step done
