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
E="@TICKET=0@EARLY_POLL=1"
step "scan1: program-id order + early poll, longer chunks split over warps (fewer look-back hops)"
sweep 170 scan1_d bfloat16 "$E;64,32,2$E;128,32,4$E;256,32,8$E"
sweep 170 scan1_e float32 "$E;64,32,2$E;128,32,4$E;256,32,8$E"
step "gla vs fla chunk_gla (wider forward autotune space), then our kernel breakdown"
timeout 280 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 | grep -v Warn | tail -14
timeout 60 python3 benchmarks/gla_profile.py --json "$out/gla_prof.json" 2>&1 | grep -v Warn | tail -20
step done
