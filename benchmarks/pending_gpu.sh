#!/usr/bin/env bash
# GPU measurements for the still-open kernel bars (issues 3 and 4; docs/results.md), each part one device call of
# < 600 s. Usage on the lent machine, from the repo root, carrying .whl/:
#   bash benchmarks/pending_gpu.sh "$OUT" gla      # gla vs fla chunk_gla, fwd and fwd+bwd in one process
#   bash benchmarks/pending_gpu.sh "$OUT" ablate   # where scan1's and prefix_attention's forward time goes
#   bash benchmarks/pending_gpu.sh "$OUT" scan1    # scan1's [BC, CT, VEC] tiles against the old [CT, BD] layout
#   bash benchmarks/pending_gpu.sh "$OUT" probe    # scan1 row-loop probe kernels (benchmarks/scan1_probe.py)
#   bash benchmarks/pending_gpu.sh "$OUT" two      # scan1 two-phase forward and recomputed addresses, eager host time
#   bash benchmarks/pending_gpu.sh "$OUT" two2     # the same from CUDA graphs, and the host time of each launch piece
#   bash benchmarks/pending_gpu.sh "$OUT" nine     # ninth session: new defaults, host time of each launch piece
#   bash benchmarks/pending_gpu.sh "$OUT" ten      # tenth session: prefix_attention's scan forward and backward forms
#   bash benchmarks/pending_gpu.sh "$OUT" eleven   # scan forms as defaults (graph fwd+bwd), cache hints, score-pass tiles
#   bash benchmarks/pending_gpu.sh "$OUT" twelve   # the new prefix_attention defaults, scan1 defaults, ncu of the scan kernels
#   bash benchmarks/pending_gpu.sh "$OUT" thirteen # FLAT tiles (no masks, immediate row offsets) in both forward scans
#   bash benchmarks/pending_gpu.sh "$OUT" fourteen # register caps (maxnreg) of the value scans, forward and backward
#   bash benchmarks/pending_gpu.sh "$OUT" final11  # eleventh session's defaults: prefix_attention and scan1 with peers
#   bash benchmarks/pending_gpu.sh "$OUT" tiles11  # prefix_attention value-scan tiles after FLAT and the caps
#   bash benchmarks/pending_gpu.sh "$OUT" hints11  # the load hint and the store hint apart (SEQLAB_SCAN1_HINTS=1, 2)
#   bash benchmarks/pending_gpu.sh "$OUT" walk12   # twelfth session: scan1's walking kernels (float32 default) vs look-back
#   bash benchmarks/pending_gpu.sh "$OUT" final12  # twelfth session's scan1 defaults (float32 walks), peers beside
#   bash benchmarks/pending_gpu.sh "$OUT" final12f # float32 scan1 defaults after the two-level walking chunks
#   bash benchmarks/pending_gpu.sh "$OUT" fused14  # next: prefix_attention's fused walk, every tile (pa_walk_sweep.py), then the best end to end
#   bash benchmarks/pending_gpu.sh "$OUT" walk13   # then: walking-kernel sweep (bf16 tiles incl. 16-channel programs, SEGSCAN), bf16 end to end
#   bash benchmarks/pending_gpu.sh "$OUT" fifteen  # bf16 walks on <= 8-step segments; walking backward end to end; fused walk tiles
#   bash benchmarks/pending_gpu.sh "$OUT" fifteen2 # walks of 8 and 16 channels a program (more warps an SM), bf16, fused, float32
#   bash benchmarks/pending_gpu.sh "$OUT" tile19   # scan1 bf16 forward on 64-step look-back chunks, float32 narrow walks, then final18
#   bash benchmarks/pending_gpu.sh "$OUT" final19  # scan1's new 16-bit forward default (64x256x4) beside the old, peers
#   bash benchmarks/pending_gpu.sh "$OUT" hints19  # scan1's 16-bit default without cache hints, peers; the hints in prefix_attention
#   bash benchmarks/pending_gpu.sh "$OUT" h100_20  # on an H100: scan1 defaults with peers, old tile and ablation rows, float32 tiles
#   bash benchmarks/pending_gpu.sh "$OUT" h100_20b # 64x256x4 flag variants on the H100 (no look-back, hints, polls), then pa20
#   bash benchmarks/pending_gpu.sh "$OUT" h100_20c # I/O ceilings (ABLATE=2) of wide bf16 tiles and float32 look-back tiles
#   bash benchmarks/pending_gpu.sh "$OUT" h100_20d # I/O ceilings of VEC 4 / VEC 8 tiles (wider accesses a thread)
#   bash benchmarks/pending_gpu.sh "$OUT" check19  # next: prefix_attention's pinned tile re-timed, scan1 defaults (bf16, float32) with peers
#   bash benchmarks/pending_gpu.sh "$OUT" final18  # prefix_attention's new defaults (inline, 64-step bf16 chunks), checked
#   bash benchmarks/pending_gpu.sh "$OUT" short18  # one call: the likeliest vec17/win17 rows (VEC 4 and W 4 tiles, both scans)
#   bash benchmarks/pending_gpu.sh "$OUT" vec17    # look-back tiles of four 16-bit channels a thread (8-byte loads), ablations
#   bash benchmarks/pending_gpu.sh "$OUT" win17    # look-back windows (W chunks a round trip); float32 look-back tiles
#   bash benchmarks/pending_gpu.sh "$OUT" sixteen  # prefix_attention's inline score pass (two launches instead of four)
#   bash benchmarks/pending_gpu.sh "$OUT" persist16 # scan1's bf16 forward as persistent programs prefetching their next tile
#   bash benchmarks/pending_gpu.sh "$OUT" final15  # scan1 defaults after the fifteenth session (16-bit walking backward), peers beside
#   bash benchmarks/pending_gpu.sh "$OUT" final    # defaults, eager and CUDA-graph rows, scan1 kernel times, prefix_attention
# Nineteenth session (H200) ran tile19 (with final18), final19, hints19 and sweeps (docs/results.md). Twentieth
# session (H100s) ran h100_20, h100_20b (with pa20), h100_20c and h100_20d. Still unrun: check19 on an H200 (the
# pinned prefix_attention tile re-timed there).
# Each step has its own time limit (a hung variant cannot eat the others); JSON lands in $1.
set -u
out=${1:-/tmp}
part=${2:-gla}
source benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }
scan1_defaults() {  # JSON prefix [dtypes]: scan1's defaults, eager and from CUDA graphs (bf16 then float32), peers beside
    for dt in ${2:-bfloat16 float32}; do
        step "scan1 defaults, $dt"
        timeout 110 python3 benchmarks/scan1_sweep.py --no-sweep --graph --dtypes "$dt" --json "$out/$1_$dt.json" 2>&1 \
            | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" | grep -v " vs " | tail -14
    done
}
fwd_rows() {  # JSON-name dtype time-limit configs [lines]: forward rows of scan1_sweep.py --configs from CUDA graphs
    timeout "$3" python3 benchmarks/scan1_sweep.py --graph --dtypes "$2" --json "$out/$1.json" --configs "$4" 2>&1 \
        | grep -v Warn | grep "fwd \|fraction" | grep -v " vs \|fwd+bwd" | tail -"${5:-12}"
}
if [ "$part" = gla ]; then
    # the seventh session measured the gla fwd ratio (1.08x) and the fwd+bwd ratio (1.16x, older forward) in two
    # runs: fla's backward autotune (~200 s) cut the second run's fwd+bwd row. This step gives both in one process.
    step "gla vs fla chunk_gla, fwd and fwd+bwd in one process (default forward: whole chunks)"
    timeout 450 python3 benchmarks/kernels_ii.py --only gla --timings-only --json "$out/gla.json" 2>&1 \
        | grep -v Warn | tail -16
    step "gla kernel times"
    timeout 100 python3 benchmarks/gla_profile.py --json "$out/gla_prof.json" 2>&1 | grep -v Warn | tail -20
fi
if [ "$part" = ablate ]; then
    # benchmark-only ablations (wrong results by design: their correctness rows fail): 1 = no look-back,
    # 2 = loads and stores only. The gaps to the real kernel split its time (docs/results.md, seventh session).
    for dt in bfloat16 float32; do
        step "scan1 forward ablations, $dt"
        timeout 150 python3 benchmarks/scan1_sweep.py --json "$out/scan1_ablate_$dt.json" --dtypes "$dt" \
            --configs "@ABLATE=1;@ABLATE=2" 2>&1 | grep -v Warn | grep -v "ok=" | grep "fwd " | tail -12
    done
    for ab in 0 1 2; do
        step "prefix_attention look-back forward, SEQLAB_PREFIX_ATTN_ABLATE=$ab"
        SEQLAB_PREFIX_ATTN_ABLATE=$ab SEQLAB_BENCH_PA_FORMS=lookback timeout 80 python3 benchmarks/kernels_ii.py \
            --only prefix_attention --json "$out/pa_ablate_$ab.json" 2>&1 | grep -v Warn | grep "fwd \|limit" | tail -6
    done
fi
if [ "$part" = scan1 ]; then
    # eighth session: tiles whose threads own VEC adjacent channels and all CT steps (no shuffles in the scan);
    # the first --configs row is the old layout (VEC = 1: time split over threads), the default row the new tiles.
    # (one workspace word per chunk and channel since commit "scan1: one workspace word"); ablation rows split the
    # new forward's time (their correctness rows fail by design)
    cfgs="32,64,1;32,256,4;32,128,2@BWD_CFG=32,64,2;32,128,2@BWD_CFG=16,64,1;@ABLATE=1;@ABLATE=2"
    for dt in bfloat16 float32; do
        extra=""
        [ "$dt" = float32 ] && extra=";64,64,2@BWD_CFG=32,32,1"
        step "scan1 tiles, $dt"
        timeout 250 python3 benchmarks/scan1_sweep.py --json "$out/scan1_vec_$dt.json" --dtypes "$dt" --check-configs \
            --configs "$cfgs$extra" 2>&1 | grep -v Warn | grep "fwd \|correct\|fraction" | grep -v "ok=True" | tail -30
    done
fi
if [ "$part" = host ]; then
    step "scan1 defaults, eager and CUDA graph, bf16"
    timeout 100 python3 benchmarks/scan1_sweep.py --no-sweep --graph --dtypes bfloat16 --json "$out/scan1_host.json" 2>&1 \
        | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False" | grep -v "vs " | tail -10
    step "host time of scan1 eager calls"
    timeout 120 python3 benchmarks/host_profile.py 2>&1 | grep -v Warn | head -70
fi
if [ "$part" = probe ]; then
    # ninth session: row-loop programs (copy pattern, chunk scan without look-back, two-phase scan with look-back)
    for dt in bfloat16 float32; do
        step "scan1 row-loop probes, $dt"
        timeout 270 python3 benchmarks/scan1_probe.py --dtypes "$dt" --json "$out/probe_$dt.json" 2>&1 | grep -v Warn | tail -70
    done
fi
if [ "$part" = two ]; then
    # ninth session: the two-phase forward (SEQLAB_SCAN1_TWO) and recomputed addresses (SEQLAB_SCAN1_OPAQUE), which
    # cut the bf16 32x128x2 tile from 197 to 96 registers a thread (sm_90 ptxas -v); flagged rows are checked too
    step "scan1 two-phase forward, bfloat16"
    timeout 170 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --json "$out/two_bf16.json" \
        --configs "@TWO=1@OPAQUE=1;@OPAQUE=1;32,256,4@TWO=1@OPAQUE=1;32,64,1@TWO=1@OPAQUE=1" 2>&1 \
        | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" | grep -v " vs " | tail -24
    step "scan1 two-phase forward, float32"
    timeout 130 python3 benchmarks/scan1_sweep.py --dtypes float32 --json "$out/two_fp32.json" \
        --configs "@OPAQUE=1;@TWO=1@OPAQUE=1" 2>&1 \
        | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" | grep -v " vs " | tail -14
    step "host time of scan1 eager calls (eager twins)"
    timeout 100 python3 benchmarks/host_profile.py 2>&1 | grep -v Warn | head -50
fi
if [ "$part" = two2 ]; then
    # ninth session, second run: the same variants replayed from CUDA graphs (eager bf16 rows are host-bound),
    # then the host time of each piece of the eager launch path
    step "scan1 two-phase forward from CUDA graphs, bfloat16"
    timeout 200 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --json "$out/two2_bf16.json" \
        --configs "@OPAQUE=1;@TWO=1@OPAQUE=1;32,256,4@TWO=1@OPAQUE=1;32,64,1@TWO=1@OPAQUE=1" 2>&1 \
        | grep -v Warn | grep "CUDA graph\|ok=False\|fraction" | grep -v " vs " | tail -24
    step "scan1 two-phase forward from CUDA graphs, float32"
    timeout 160 python3 benchmarks/scan1_sweep.py --graph --dtypes float32 --json "$out/two2_fp32.json" \
        --configs "@OPAQUE=1;@TWO=1@OPAQUE=1;32,64,1@TWO=1@OPAQUE=1" 2>&1 \
        | grep -v Warn | grep "CUDA graph\|ok=False\|fraction" | grep -v " vs " | tail -14
    step "host time of the eager launch path, piece by piece"
    timeout 60 python3 benchmarks/host_parts.py --json "$out/host_parts.json" 2>&1 | grep -v Warn | tail -14
fi
if [ "$part" = nine ]; then
    # ninth session: the new defaults (two-phase forward, recomputed addresses), eager and from CUDA graphs, and the
    # host time of the eager launch path piece by piece, backward included
    scan1_defaults nine
    step "host time of the eager launch path, piece by piece"
    timeout 60 python3 benchmarks/host_parts.py --json "$out/host_parts.json" 2>&1 | grep -v Warn | tail -20
fi
if [ "$part" = ten ]; then
    # tenth session: prefix_attention's scan form (a score pass, then scan1's linear scan over the values;
    # kernels/prefix_attention/triton_lin.py) against the look-back form pinned to its tuned config (no autotune),
    # two value tiles beside the default, bf16 correctness of each; then the per-launch device times
    step "prefix_attention scan form against the look-back form"
    SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=64,128,4,128 \
    SEQLAB_BENCH_PA_FORMS="lookback,scan,scan 16x64x1,scan 32x256x4" timeout 110 \
        python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa_scan.json" 2>&1 | grep -v Warn \
        | grep "fwd\|limit\|correct" | tail -30
    step "prefix_attention with the scan backward (SEQLAB_PREFIX_ATTN_BWD=scan), value tile 32,32,1 and 16,32,1"
    SEQLAB_PREFIX_ATTN_BWD=scan SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=64,128,4,128 SEQLAB_BENCH_PA_FORMS="lookback,scan" \
        timeout 80 python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa_scan_bwd.json" 2>&1 \
        | grep -v Warn | grep "fwd\|correct" | tail -12
    SEQLAB_PREFIX_ATTN_BWD=scan SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG=16,32,1 SEQLAB_BENCH_PA_FORMS=scan timeout 60 \
        python3 benchmarks/kernels_ii.py --only prefix_attention --timings-only 2>&1 | grep -v Warn | grep "fwd+bwd"
    for lse in chunks walk; do
        step "prefix_attention kernel times, score pass SEQLAB_PREFIX_ATTN_SCAN_LSE=$lse"
        SEQLAB_PREFIX_ATTN_BWD=scan SEQLAB_PREFIX_ATTN_SCAN_LSE=$lse SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=64,128,4,128 \
            timeout 45 \
            python3 benchmarks/pa_profile.py --forms lookback,scan --json "$out/pa_prof_$lse.json" 2>&1 \
            | grep -v Warn | grep "^| _\|^| void\|prefix_attention\|sum" | head -40
    done
fi
if [ "$part" = eleven ]; then
    # eleventh session: prefix_attention's old defaults (look-back forward, walking backward) against the scan
    # forward and scan backward, fwd+bwd from CUDA graphs too; scan1's streaming cache hints (SEQLAB_SCAN1_HINTS) in
    # both; tiles of the chunked score pass; an Nsight Compute summary of the value scan where ncu exists
    which ncu nsys 2>/dev/null; ls -d /usr/local/cuda*/bin 2>/dev/null
    pa() {  # label, env..., then kernels_ii
        local tag=$1; shift
        step "prefix_attention $tag"
        env "$@" SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=64,128,4,128 timeout 90 python3 benchmarks/kernels_ii.py \
            --only prefix_attention --json "$out/pa11_$tag.json" 2>&1 | grep -v Warn | grep "fwd\|limit\|correct" | tail -12
    }
    pa walk SEQLAB_PREFIX_ATTN_BWD=walk SEQLAB_BENCH_PA_FORMS=lookback
    pa scan SEQLAB_PREFIX_ATTN_BWD=scan SEQLAB_BENCH_PA_FORMS=scan
    pa hints SEQLAB_SCAN1_HINTS=1 SEQLAB_PREFIX_ATTN_BWD=scan SEQLAB_BENCH_PA_FORMS=scan
    for tile in 128,16,4 32,16,1 64,16,2; do
        step "score-pass chunk tile $tile (device us)"
        SEQLAB_PREFIX_ATTN_LSE_TILE=$tile SEQLAB_PREFIX_ATTN_BWD=scan timeout 40 python3 benchmarks/pa_profile.py \
            --forms scan --json "$out/pa11_lse_$tile.json" 2>&1 | grep -v Warn | grep "_pa_lse\|_pa_ds\|sum" | head -8
    done
    for dt in float32 bfloat16; do
        step "scan1 default and SEQLAB_SCAN1_HINTS=1, $dt"
        timeout 110 python3 benchmarks/scan1_sweep.py --configs "@HINTS=1" --graph --dtypes "$dt" \
            --json "$out/scan1_hints_$dt.json" 2>&1 | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" \
            | grep -v " vs " | tail -14
    done
    if command -v ncu >/dev/null; then
        step "ncu: the value scan of the scan forward"
        SEQLAB_PREFIX_ATTN_BWD=scan timeout 90 ncu --kernel-name _pa_scan_fwd_kernel --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
            python3 benchmarks/pa_profile.py --forms scan 2>&1 | grep -v Warn | tail -80
    fi
fi
if [ "$part" = twelve ]; then
    # eleventh session, second call: prefix_attention's new defaults (scan forward and backward, 16-bit cache hints,
    # 32-step score chunks, u_T from the end row) against the old ones in separate processes; scan1's defaults
    # (hints on for bf16); Nsight Compute on the value-scan kernels
    step "prefix_attention defaults"
    SEQLAB_BENCH_PA_FORMS=scan timeout 90 python3 benchmarks/kernels_ii.py --only prefix_attention \
        --json "$out/pa12_default.json" 2>&1 | grep -v Warn | grep "fwd\|limit\|correct" | tail -10
    step "prefix_attention old defaults: look-back forward, walking backward"
    SEQLAB_PREFIX_ATTN_BWD=walk SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=64,128,4,128 SEQLAB_BENCH_PA_FORMS=lookback timeout 90 \
        python3 benchmarks/kernels_ii.py --only prefix_attention --timings-only --json "$out/pa12_old.json" 2>&1 \
        | grep -v Warn | grep "fwd" | tail -6
    step "prefix_attention kernel times (defaults)"
    timeout 40 python3 benchmarks/pa_profile.py --forms scan --json "$out/pa12_prof.json" 2>&1 | grep -v Warn \
        | grep "^| _\|^| void\|sum" | head -24
    scan1_defaults scan1_12
    if command -v ncu >/dev/null; then
        for k in _pa_scan_fwd_kernel _pa_scan_bwd_kernel; do
            step "ncu $k"
            timeout 100 ncu --kernel-name $k --launch-count 1 --section SpeedOfLight --section Occupancy \
                --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis \
                python3 benchmarks/pa_profile.py --forms scan 2>&1 | grep -v Warn \
                | grep -E "^ +[A-Z][A-Za-z./ %-]+ +[a-zA-Z/%]* +[0-9.,]+$|Section|stall|Stall" | head -70
        done
    fi
fi
if [ "$part" = thirteen ]; then
    # eleventh session, third call: FLAT forward tiles (dense, full tiles: no masks, compile-time row offsets) in
    # prefix_attention's value scan and scan1's forward, against the masked tiles in the same process (scan1) or the
    # next one (prefix_attention)
    for flat in 1 0; do
        step "prefix_attention defaults, SEQLAB_PREFIX_ATTN_FLAT=$flat"
        SEQLAB_PREFIX_ATTN_FLAT=$flat SEQLAB_BENCH_PA_FORMS=scan timeout 90 python3 benchmarks/kernels_ii.py \
            --only prefix_attention --json "$out/pa13_flat$flat.json" 2>&1 | grep -v Warn | grep "fwd\|copy of v\|correct" | tail -8
    done
    step "prefix_attention kernel times (defaults)"
    timeout 40 python3 benchmarks/pa_profile.py --forms scan --json "$out/pa13_prof.json" 2>&1 | grep -v Warn \
        | grep "^| _\|^| void\|sum" | head -24
    for dt in bfloat16 float32; do
        step "scan1 defaults (FLAT) against SEQLAB_SCAN1_FLAT=0 and HINTS=1, $dt"
        timeout 150 python3 benchmarks/scan1_sweep.py --configs "@FLAT=0;@HINTS=1" --graph --dtypes "$dt" \
            --json "$out/scan1_13_$dt.json" 2>&1 | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction\|rel" \
            | grep -v " vs " | tail -24
    done
fi
if [ "$part" = fourteen ]; then
    # eleventh session, fourth call: register caps (more programs an SM, some spills) of the single-pass scans
    for cap in "" SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=80 SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=64 \
               SEQLAB_PREFIX_ATTN_SCAN_BWD_MAXNREG=128 SEQLAB_PREFIX_ATTN_SCAN_BWD_MAXNREG=96; do
        step "prefix_attention kernel times, ${cap:-defaults}"
        env $cap timeout 40 python3 benchmarks/pa_profile.py --forms scan --json "$out/pa14_${cap##*_}.json" 2>&1 \
            | grep -v Warn | grep "^| _pa_scan\|sum" | head -4
    done
    step "prefix_attention bf16 correctness with both caps"
    SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=80 SEQLAB_PREFIX_ATTN_SCAN_BWD_MAXNREG=128 SEQLAB_BENCH_PA_FORMS=scan timeout 60 \
        python3 benchmarks/kernels_ii.py --only prefix_attention --json "$out/pa14_caps.json" 2>&1 | grep -v Warn \
        | grep "CUDA graph\|correct" | tail -4
    step "scan1 register caps, bf16"
    timeout 200 python3 benchmarks/scan1_sweep.py --configs "@MAXNREG=80;@MAXNREG=64;@BWD_MAXNREG=128;@BWD_MAXNREG=96" \
        --graph --dtypes bfloat16 --json "$out/scan1_14_bf16.json" 2>&1 | grep -v Warn \
        | grep "CUDA graph\|ok=False" | grep -v " vs " | tail -14
    step "scan1 register caps, float32"
    timeout 150 python3 benchmarks/scan1_sweep.py --configs "@MAXNREG=128;@BWD_MAXNREG=128" \
        --graph --dtypes float32 --json "$out/scan1_14_fp32.json" 2>&1 | grep -v Warn \
        | grep "CUDA graph\|ok=False" | grep -v " vs " | tail -10
fi
if [ "$part" = final11 ]; then
    step "prefix_attention defaults"
    SEQLAB_BENCH_PA_FORMS=scan timeout 90 python3 benchmarks/kernels_ii.py --only prefix_attention \
        --json "$out/pa_final11.json" 2>&1 | grep -v Warn | grep "fwd\|copy of v\|correct" | tail -8
    step "prefix_attention kernel times"
    timeout 40 python3 benchmarks/pa_profile.py --forms scan --json "$out/pa_final11_prof.json" 2>&1 | grep -v Warn \
        | grep "^| _\|^| void\|sum" | head -24
    scan1_defaults scan1_final11
fi
if [ "$part" = tiles11 ]; then
    for cfg in 32,128,2 32,256,4 32,64,1 32,256,2 64,128,4; do
        step "prefix_attention forward value tile $cfg (device us)"
        SEQLAB_PREFIX_ATTN_SCAN_CFG=$cfg timeout 30 python3 benchmarks/pa_profile.py --forms scan 2>&1 | grep -v Warn \
            | grep "^| _pa_scan" | head -3
    done
    for cfg in 32,64,2 16,32,1 32,64,1; do
        step "prefix_attention backward value tile $cfg (device us)"
        SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG=$cfg timeout 30 python3 benchmarks/pa_profile.py --forms scan 2>&1 \
            | grep -v Warn | grep "^| _pa_scan_bwd" | head -2
    done
fi
if [ "$part" = hints11 ]; then
    for dt in float32 bfloat16; do
        step "scan1 hints apart, $dt"
        timeout 120 python3 benchmarks/scan1_sweep.py --configs "@HINTS=1;@HINTS=2" --graph --dtypes "$dt" \
            --json "$out/scan1_hints11_$dt.json" 2>&1 | grep -v Warn | grep "fwd.*CUDA graph\|ok=False" | tail -8
    done
    for h in 1 2 3; do
        step "prefix_attention forward value scan, SEQLAB_SCAN1_HINTS=$h (device us)"
        SEQLAB_SCAN1_HINTS=$h timeout 30 python3 benchmarks/pa_profile.py --forms scan 2>&1 | grep -v Warn \
            | grep "^| _pa_scan_fwd" | head -2
    done
fi
if [ "$part" = walk12 ]; then
    step "scan1 float32: walking kernels (default) against the look-back kernels and other walking tiles"
    timeout 400 python3 benchmarks/scan1_sweep.py --graph --dtypes float32 --json "$out/scan1_walk12.json" \
        --configs "@WALK=0;@WALK_CFG=32,32,1,1,4;@WALK_BWD_CFG=32,16,1,1,3;@WALK_BWD_CFG=16,16,1,1,6;@WALK_BWD_CFG=32,32,1,1,4" 2>&1 \
        | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction\|limit" | tail -40
fi
if [ "$part" = final12 ]; then
    scan1_defaults scan1_final12
fi
if [ "$part" = final12f ]; then
    scan1_defaults scan1_final12f float32
fi
if [ "$part" = walk13 ]; then
    # prepared in the twelfth session, untimed: the [BC, TS, TI, VEC] tiles give bf16 16-byte cp.async copies (the
    # one-level bf16 walk was not pipelined), SEGSCAN=1 joins a chunk's segments with one scan (sm_90 bf16 64-step
    # chunk: 720 -> 280 shuffles forward, 1104 -> 432 backward). Thirteenth session: the 16-bit defaults take four
    # adjacent channels a thread (BC=8, VEC=4: 8-byte copies, segments over 4 threads; 112 shuffles forward, 176
    # backward) and 5 / 6 stages; @WALK=1 below runs them
    step "scan1 walking-kernel sweep, kernels alone, both dtypes"
    timeout 240 python3 benchmarks/scan1_walk_sweep.py --json "$out/walk_sweep13.json" 2>&1 | grep -v Warn | tail -24
    step "scan1 walking kernels at prefix_attention's value-scan shape (B4 T4096 D=H*V=2048 bf16; its value scan 44 us)"
    timeout 80 python3 benchmarks/scan1_walk_sweep.py --dtypes bfloat16 --shape 4,4096,2048 \
        --rows "64,8,4,1,5,4;64,8,4,1,8,4;64,32,1,1,3,8,1;64,32,1,1,3,8" --json "$out/walk_sweep13_pa.json" 2>&1 \
        | grep -v Warn | tail -10
    step "scan1 bf16 end to end: look-back defaults against the walking kernels"
    timeout 140 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --json "$out/scan1_walk13_bf16.json" \
        --configs "@WALK=1;@WALK=1@WALK_SEGSCAN=1" 2>&1 \
        | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" | grep -v " vs " | tail -16
    [ $((SECONDS - t0)) -lt 440 ] && scan1_defaults scan1_walk13 float32  # the two-level walking chunks end to end
fi
if [ "$part" = fused14 ]; then
    # prepared in the thirteenth session, re-ranked in the fourteenth (no device lent either time): the fused walk
    # (SEQLAB_PREFIX_ATTN_SCAN_WALK=fused) runs the whole forward as one launch. First every tile in one process
    # (benchmarks/pa_walk_sweep.py: kernel-level forward from CUDA graphs, o and lse checked against the default,
    # copy of v in the same run), then the fastest correct fused row end to end in kernels_ii.py with its bf16
    # correctness pass (the issue 4 figure), the default forward in the same way, and the fused walk's kernel times.
    step "prefix_attention walking forwards, every tile (pa_walk_sweep.py)"
    timeout 200 python3 benchmarks/pa_walk_sweep.py --json "$out/fused14_sweep.json" 2>&1 | grep -v Warn | tail -26
    best=$(python3 -c "import json,sys; r=[x for x in json.load(open(sys.argv[1]))['rows'] if x['row'].startswith('fused ') and x.get('ok')]; print(min(r, key=lambda x: x['fwd_ms'])['row'].split()[1] if r else '')" "$out/fused14_sweep.json" 2>/dev/null)
    best=${best:-64,8,4,1,8,4}
    IFS=, read -r c1 c2 c3 c4 c5 c6 c7 c8 <<< "$best"
    export SEQLAB_PREFIX_ATTN_FUSED_SREP=${c8:-2}
    for w in "fused ${c7:-0} check" "0 0 -"; do
        set -- $w
        step "prefix_attention fwd and fwd+bwd, SEQLAB_PREFIX_ATTN_SCAN_WALK=$1 (tile $best, SEGSCAN=$2)"
        SEQLAB_PREFIX_ATTN_SCAN_WALK=$1 SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG=$c1,$c2,$c3,$c4,$c5,$c6 \
            SEQLAB_SCAN1_WALK_SEGSCAN=$2 SEQLAB_BENCH_PA_FORMS=scan timeout 100 python3 benchmarks/kernels_ii.py \
            --only prefix_attention $([ "$3" = check ] || echo --timings-only) --json "$out/fused14_$1.json" 2>&1 \
            | grep -v Warn | grep "fwd\|copy\|correct\|rel" | tail -10
    done
    step "prefix_attention kernel times, fused walk (device us a launch), tile $best"
    SEQLAB_PREFIX_ATTN_SCAN_WALK=fused SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG=$c1,$c2,$c3,$c4,$c5,$c6 \
        SEQLAB_SCAN1_WALK_SEGSCAN=${c7:-0} timeout 60 python3 benchmarks/pa_profile.py --forms scan \
        --json "$out/fused14_prof.json" 2>&1 | grep -v Warn | grep "^| _pa_\|sum" | head -8
fi
if [ "$part" = fifteen ]; then
    # fifteenth session. walk13 measured the bf16 walking tile 64,32,1,1,3,8 with SEGSCAN=1 (eight 8-step segments,
    # 8 channels a thread) at backward 0.218 ms against look-back 0.258 (forward 0.139 against 0.125), and every
    # 4-channel tile (16-step segments) at 0.25-0.39 ms: a walk's trip is latency-bound, so shorter in-thread chains.
    # Tiles of <= 8-step segments, then the best end to end (look-back forward + walking backward, and both walking)
    # with accelerated-scan beside, then prefix_attention's fused walk on such tiles.
    step "scan1 bf16 walking tiles with <= 8-step segments (SEGSCAN=1), kernels alone"
    timeout 170 python3 benchmarks/scan1_walk_sweep.py --dtypes bfloat16 --json "$out/walk15.json" --rows \
        "64,32,1,1,3,8,1;64,32,1,1,4,8,1;64,32,1,1,2,8,1;32,32,1,1,4,8,1;32,32,1,1,6,8,1;64,32,1,1,3,16,1;64,64,1,2,3,8,1;128,32,1,1,3,8,1;64,16,1,1,4,8,1;64,16,1,1,4,16,1" \
        2>&1 | grep -v Warn | tail -14
    pick() { python3 -c "import json,sys; r=[x for x in json.load(open(sys.argv[1]))['rows'] if x.get('ok') and x['row'] != 'look-back' and sys.argv[2] in x]; print(','.join(min(r, key=lambda x: x[sys.argv[2]])['row'].split(',')[:6]) if r else '64,32,1,1,3,8')" "$out/walk15.json" "$1" 2>/dev/null || echo 64,32,1,1,3,8; }
    bf=$(pick fwd_ms); bb=$(pick bwd_ms)
    step "scan1 bf16 end to end: look-back, walking backward $bb only, both walking (forward $bf)"
    timeout 170 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --json "$out/scan1_15_bf16.json" \
        --configs "@WALK=bwd@WALK_SEGSCAN=1@WALK_BWD_CFG=$bb;@WALK=1@WALK_SEGSCAN=1@WALK_CFG=$bf@WALK_BWD_CFG=$bb" \
        2>&1 | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False\|fraction" | grep -v " vs " | tail -16
    step "prefix_attention fused walk on <= 8-step segments"
    timeout 150 python3 benchmarks/pa_walk_sweep.py --json "$out/pa15.json" --rows \
        "fused 64,32,1,1,3,8,1;fused 64,32,1,1,4,8,1;fused 32,32,1,1,4,8,1;fused 64,32,1,1,6,8,1;fused 64,16,1,1,4,8,1;fused 64,32,1,1,3,16,1;fused 64,32,1,1,3,8,1,0;1 64,32,1,1,3,8,1" \
        2>&1 | grep -v Warn | tail -20
fi
if [ "$part" = fifteen2 ]; then
    # fifteenth session, last call: the 64,32,1,1 walks run ~2000 cycles a trip for ~940 instructions with one warp a
    # scheduler (two programs an SM), so narrower programs put more warps on each SM: 8 channels a program (1024
    # programs, 8 warps an SM, segments over 32 threads) and 16 (512, 4 an SM); sm_90 offline builds, no spills
    step "scan1 bf16 walks of 8 and 16 channels a program"
    timeout 80 python3 benchmarks/scan1_walk_sweep.py --dtypes bfloat16 --json "$out/walk15b_bf16.json" --rows \
        "128,8,1,1,4,32,1;128,8,1,1,6,32,1;64,16,1,1,6,16,1;128,16,1,1,4,16,1;64,8,1,1,6,32,1" 2>&1 | grep -v Warn | tail -9
    step "prefix_attention fused walk, 8 and 16 channels a program"
    timeout 50 python3 benchmarks/pa_walk_sweep.py --json "$out/pa15b.json" --rows \
        "fused 128,8,1,1,4,32,1;fused 64,16,1,1,6,16,1;fused 64,8,1,1,6,32,1" 2>&1 | grep -v Warn | tail -9
    step "scan1 float32 walks of 8 and 16 channels a program"
    timeout 60 python3 benchmarks/scan1_walk_sweep.py --dtypes float32 --json "$out/walk15b_fp32.json" --rows \
        "128,8,1,1,4,16,1;64,16,1,1,4,8,1;64,16,1,1,4,8,0" 2>&1 | grep -v Warn | tail -7
fi
if [ "$part" = tile19 ]; then
    # nineteenth session (128,128,2 dropped: it spills 120 bytes, sm_90 offline): 64-step chunks won prefix_attention's value scan on the H100 (76.6-81.6% of copy against
    # 71.2-73.2% with 32 steps) but were never timed in scan1's bf16 look-back forward (VEC 2 tiles). Checked rows,
    # the loads/stores-only ablation of the 64-step tile (wrong results by design, its check fails), fifteen2's float32
    # walk rows, then final18.
    step "scan1 bf16 forward, 64-step look-back chunks, CUDA graphs, checked"
    timeout 300 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --check-configs \
        --json "$out/scan1_tile19.json" --configs "64,128,2;64,64,1;64,256,4;64,128,2@ABLATE=2" \
        2>&1 | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -12
    step "scan1 float32 walks of 8 and 16 channels a program (fifteen2's float32 rows; more warps an SM)"
    timeout 60 python3 benchmarks/scan1_walk_sweep.py --dtypes float32 --json "$out/walk19_fp32.json" --rows \
        "128,8,1,1,4,16,1;64,16,1,1,4,8,1;64,16,1,1,4,8,0" 2>&1 | grep -v Warn | tail -7
    part=final18
fi
if [ "$part" = final19 ]; then
    # nineteenth session: the 16-bit forward default became 64x256x4 (tile19 on an H200: 0.1159 against 0.1262 ms
    # from graphs); the default itself with peers and its correctness pass, the old default and 64x512x8 beside it
    step "scan1 bf16 new default, old default and 64,512,8, CUDA graphs, checked"
    timeout 200 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --check-configs \
        --json "$out/scan1_final19.json" --configs "32,128,2;64,512,8" \
        2>&1 | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs " | tail -14
fi
if [ "$part" = hints19 ]; then
    # nineteenth session: no cache hints on scan1's 64-step 16-bit tiles (0.1102 against 0.116-0.117 ms, H200 graphs);
    # the new default with peers (correctness pass of the default), then the same hints in prefix_attention's value
    # scan (64-step bf16 chunks there too since the eighteenth session)
    scan1_defaults final19b bfloat16
    step "prefix_attention forward without the cache hints (pa_walk_sweep.py, CUDA graphs)"
    timeout 90 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_hints19.json" --rows \
        "env SEQLAB_SCAN1_HINTS=0;env SEQLAB_SCAN1_HINTS=2;env SEQLAB_SCAN1_HINTS=1" 2>&1 | grep -v Warn | tail -8
fi
if [ "$part" = h100_20 ]; then
    # twentieth session: the first H100 run of scan1's 64x256x4 no-hint bf16 forward (H200: a tie with
    # accelerated-scan from graphs). On the H100 accelerated-scan's bf16 forward ran at 96.8% of copy (eighteenth
    # session), so a tie there would meet the 90% bar. Defaults with peers, then the old tile, the 64x128x2 tile and
    # the loads/stores-only ablation of the new tile (wrong by design) in one process, float32, prefix_attention.
    scan1_defaults h100_20 bfloat16
    step "scan1 bf16 forward tiles from CUDA graphs: old default, 64x128x2, ablation of the new tile"
    fwd_rows scan1_tiles20 bfloat16 150 "32,128,2@HINTS=3;64,128,2@HINTS=0;64,256,4@HINTS=0@ABLATE=2" 10
    scan1_defaults h100_20 float32
    # float32 look-back tiles with four warps (VEC 2, 167 registers, no spills offline; 64-step float32 chunks spill
    # 128-192 bytes: benchmarks/lookback_compile_counts.py --dtype fp32 --hints 0 --scan1-only --no-persist)
    step "scan1 float32 look-back tiles of four warps from CUDA graphs, beside 32,128,2"
    fwd_rows scan1_fp32_tiles20 float32 120 "32,128,2@WALK=0;32,256,4@WALK=0;16,256,4@WALK=0" 10
fi
if [ "$part" = h100_20b ]; then
    # twentieth session, second call: on the H100 the new bf16 default ran at 88.6% of copy from graphs (0.150 ms)
    # and its loads/stores-only ablation at 93.6% (0.142): where do the 8 us go, and does a flag recover them?
    step "scan1 bf16 forward, 64x256x4 variants from CUDA graphs (H100)"
    fwd_rows scan1_tiles20b bfloat16 300 "64,256,4@HINTS=0@ABLATE=1;64,256,4@HINTS=2;64,256,4@HINTS=0@EARLY_POLL=0;64,256,4@HINTS=0@TICKET=1;64,256,4@HINTS=0@LOOKBACK_WINDOW=4;64,128,2@HINTS=0@ABLATE=2;32,256,4@HINTS=0;64,256,4@HINTS=0@TWO=0" 24
    part=pa20
fi
if [ "$part" = h100_20c ]; then
    # twentieth session, third call: h100_20b put the bf16 look-back's cost at 9 us (no-look-back 0.141 ms, default
    # 0.150) and the 64x256x4 tile's loads and stores alone at 94.3% of copy, still slower than accelerated-scan's
    # whole forward (0.137 ms, time-contiguous [B, D, T] input). Do wider tiles (rows of 1-2 KB) move the I/O ceiling?
    # Ablations are wrong by design. float32: the look-back tiles' I/O ceiling against accelerated-scan's 0.2725 ms.
    step "scan1 bf16 forward: I/O ceilings (ABLATE=2) of wide tiles, and the wide tiles in full (CUDA graphs)"
    fwd_rows scan1_tiles20c bfloat16 260 "64,256,4@HINTS=0@ABLATE=2;32,512,8@HINTS=0@ABLATE=2;32,1024,16@HINTS=0@ABLATE=2;64,512,8@HINTS=0@ABLATE=2;32,512,8@HINTS=0;32,1024,16@HINTS=0" 20
    step "scan1 float32 forward: I/O ceilings (ABLATE=2) of the look-back tiles (CUDA graphs)"
    fwd_rows scan1_fp32_tiles20c float32 150 "32,128,2@WALK=0@ABLATE=2;32,256,4@WALK=0@ABLATE=2;32,512,8@WALK=0@ABLATE=2" 12
fi
if [ "$part" = h100_20d ]; then
    # twentieth session, fourth call: wide tiles left the I/O ceiling at 93-95% of copy (h100_20c). Do wider accesses
    # a thread (VEC 4: 8-byte bf16 / 16-byte float32 loads; VEC 8: 16-byte bf16 loads) lift it toward
    # accelerated-scan's 98%? Loads and stores only (ABLATE=2, wrong by design), CUDA graphs.
    step "scan1 bf16 forward: I/O ceilings of VEC 4 and VEC 8 tiles"
    fwd_rows scan1_vec20d bfloat16 220 "16,256,2@HINTS=0@ABLATE=2;32,256,2@HINTS=0@ABLATE=2;8,512,2@HINTS=0@ABLATE=2;16,512,2@HINTS=0@ABLATE=2;8,512,2@HINTS=0" 16
    step "scan1 float32 forward: I/O ceilings of VEC 4 look-back tiles (16-byte loads)"
    fwd_rows scan1_fp32_vec20d float32 130 "16,256,2@WALK=0@ABLATE=2;8,256,2@WALK=0@ABLATE=2" 10
fi
if [ "$part" = pa20 ]; then
    step "prefix_attention forward, pinned value-scan tile against 64x256x4 (pa_walk_sweep.py, CUDA graphs)"
    timeout 90 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_h100_20.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,256,4;env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,128,2" 2>&1 | grep -v Warn | tail -7
fi
if [ "$part" = check19 ]; then
    # after the nineteenth session: prefix_attention's value scan pinned back to 64x128x2 (scan1's new 16-bit tile
    # had reached it and lost on the H200), re-timed beside 64x256x4; then scan1's defaults in both dtypes with peers
    # (on an H100 this is the first run of the 64x256x4 no-hint bf16 forward)
    step "prefix_attention forward, pinned value-scan tile against 64x256x4 (pa_walk_sweep.py, CUDA graphs)"
    timeout 90 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_check19.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,256,4;env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,128,2" 2>&1 | grep -v Warn | tail -7
    scan1_defaults check19
fi
if [ "$part" = final18 ]; then
    # eighteenth session: prefix_attention's defaults became the inline score pass on 64-step bf16 value chunks
    # (measured as env rows on an H100: 81.6-81.9% of copy against 71.2-71.5%); the default itself, beside the old
    # one, and the bf16 correctness pass (forward and backward against the float32 oracle) at the benchmark shape
    step "prefix_attention forward, new default against the old (pa_walk_sweep.py, CUDA graphs)"
    timeout 90 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_final18.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_LSE=chunks SEQLAB_PREFIX_ATTN_SCAN_CFG=32,128,2" 2>&1 | grep -v Warn | tail -5
    step "prefix_attention scan form end to end, fwd and fwd+bwd, bf16 correctness"
    SEQLAB_BENCH_PA_FORMS=scan timeout 100 python3 benchmarks/kernels_ii.py --only prefix_attention \
        --json "$out/pa_final18_e2e.json" 2>&1 | grep -v Warn | tail -8
fi
if [ "$part" = short18 ]; then
    # eighteenth session: device starts kept failing (each failed try costs 90-180 s of the 1800 s), so the rows of
    # vec17 and win17 most likely to beat the bf16 defaults go first, in one call: scan1's four-channel tiles and a
    # four-chunk window, and the same in prefix_attention's value scan. Defaults ride along in each script.
    step "scan1 bf16 forward: VEC 4 tiles and a look-back window, CUDA graphs, checked"
    timeout 230 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --check-configs \
        --json "$out/scan1_short18.json" --configs "16,256,2;32,256,2;@LOOKBACK_WINDOW=4;16,256,2@LOOKBACK_WINDOW=4" \
        2>&1 | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -10
    step "prefix_attention forward: VEC 4 value-scan tiles and a window (pa_walk_sweep.py, CUDA graphs)"
    timeout 150 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_short18.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_CFG=16,256,2;env SEQLAB_PREFIX_ATTN_SCAN_CFG=32,256,2;env SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW=4" \
        2>&1 | grep -v Warn | tail -7
fi
if [ "$part" = vec17 ]; then
    # seventeenth session (no device lent; prepared, untimed). The bf16 look-back forward (32,128,2: two channels a
    # thread, 4-byte loads) runs at 71-75% of copy bandwidth; float32 on the same tile (8-byte loads) at 89.5%.
    # Tiles of four 16-bit channels a thread load 8 bytes; the ninth/eleventh sessions' VEC 4 rows (32,256,2: 51.0
    # against 44.6 us in the prefix value scan) converted every workspace access through shared memory (17 barriers
    # against 3), which triton_scan._ws_chans now avoids. sm_90 offline (lookback_compile_counts.py --no-persist):
    # scan1 16,256,2 124 registers / 1408 instructions, 32,256,2 188 / 2360 (default 32,128,2: 96 / 1320); prefix
    # value scan 16,256,2 104 / 1224, 32,256,2 156 / 2000 (default 101 / 1224); all without spills. The ABLATE rows
    # (wrong results by design, their checks fail) split the default tile's time between look-back, in-tile scan
    # and loads/stores, last measured on the old [CT, BD] tiles (eighth session).
    step "scan1 bf16 forward, four channels a thread (VEC 4), ablations, CUDA graphs, checked"
    timeout 280 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --check-configs \
        --json "$out/scan1_vec17.json" --configs "16,256,2;32,256,2;16,128,1;32,128,1;32,512,4;@ABLATE=1;@ABLATE=2" \
        2>&1 | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -12
    step "prefix_attention forward, value-scan tiles of four channels a thread (pa_walk_sweep.py, CUDA graphs)"
    timeout 150 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_vec17.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_CFG=16,256,2;env SEQLAB_PREFIX_ATTN_SCAN_CFG=32,256,2;env SEQLAB_PREFIX_ATTN_SCAN_CFG=32,128,1;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_CFG=16,256,2" \
        2>&1 | grep -v Warn | tail -8
fi
if [ "$part" = win17 ]; then
    # seventeenth session (prepared, untimed): look-back windows, W chunks' words a round trip consumed in order
    # (triton_scan._carry_in; SEQLAB_SCAN1_LOOKBACK_WINDOW, SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW). sm_90 32,128,2
    # bf16: scan1 117 registers with W = 4 and 120 with 8, against 96; prefix value scan 117 / 123 against 101.
    # Then float32 look-back tiles of four channels a thread (16-byte loads) beside the walking default.
    step "scan1 bf16 forward, look-back windows, CUDA graphs, checked"
    timeout 220 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --check-configs \
        --json "$out/scan1_win17.json" \
        --configs "@LOOKBACK_WINDOW=4;@LOOKBACK_WINDOW=8;@LOOKBACK_WINDOW=4@MAXNREG=104;16,256,2@LOOKBACK_WINDOW=4" \
        2>&1 | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -10
    step "prefix_attention forward, look-back windows (pa_walk_sweep.py, CUDA graphs)"
    timeout 130 python3 benchmarks/pa_walk_sweep.py --json "$out/pa_win17.json" --rows \
        "env SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW=4;env SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW=8;env SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW=4 SEQLAB_PREFIX_ATTN_SCAN_LSE=inline" \
        2>&1 | grep -v Warn | tail -7
    step "scan1 float32 forward: look-back tiles of four channels a thread and a window, beside the walking default"
    timeout 160 python3 benchmarks/scan1_sweep.py --graph --dtypes float32 --check-configs \
        --json "$out/scan1_win17_fp32.json" \
        --configs "16,256,2@WALK=0;32,256,2@WALK=0;32,128,2@WALK=0;32,128,2@WALK=0@LOOKBACK_WINDOW=4" 2>&1 \
        | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -10
fi
if [ "$part" = sixteen ]; then
    # sixteenth session (no device lent; prepared, untimed): prefix_attention's inline score pass
    # (SEQLAB_PREFIX_ATTN_SCAN_LSE=inline). The default forward (~55 us from graphs) is a workspace fill (~2.8 us),
    # chunk summaries (1.9), the chunked score pass (7.2) and the value scan (42.5-44.8); inline folds the fill into
    # the summaries kernel and the score pass into the value-scan tiles: two launches instead of four. sm_90 offline:
    # value tile 32,128,2 at 117 registers and 1472 SASS instructions against 101 and 1224. PERSIST rows: persistent
    # value-scan programs prefetching their next tile (triton_lin_persist.py; 163-180 registers, inline 124-158;
    # benchmarks/lookback_compile_counts.py).
    step "prefix_attention forward: inline score pass beside the default (pa_walk_sweep.py, CUDA graphs)"
    timeout 230 python3 benchmarks/pa_walk_sweep.py --json "$out/pa16_sweep.json" --rows \
        "env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=104;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_CFG=32,256,4;env SEQLAB_PREFIX_ATTN_SCAN_CFG=32,256,4;env SEQLAB_PREFIX_ATTN_SCAN_PERSIST=4;env SEQLAB_PREFIX_ATTN_SCAN_PERSIST=6 SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=168;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_PERSIST=6;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_PERSIST=8 SEQLAB_PREFIX_ATTN_SCAN_MAXNREG=128;env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,128,2;env SEQLAB_PREFIX_ATTN_SCAN_CFG=64,64,1;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_SCAN_CFG=64,128,2;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_INLINE_BP=32;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_PREFIX_ATTN_INLINE_BP=128;env SEQLAB_PREFIX_ATTN_SCAN_LSE=chunks" \
        2>&1 | grep -v Warn | tail -30
    step "prefix_attention kernel times, inline score pass (device us a launch)"
    SEQLAB_PREFIX_ATTN_SCAN_LSE=inline timeout 60 python3 benchmarks/pa_profile.py --forms scan \
        --json "$out/pa16_prof.json" 2>&1 | grep -v Warn | grep "^| _pa_\|sum\|fill\|elementwise" | head -12
    step "prefix_attention fwd and fwd+bwd end to end with the inline score pass, bf16 correctness"
    SEQLAB_PREFIX_ATTN_SCAN_LSE=inline SEQLAB_BENCH_PA_FORMS=scan timeout 100 python3 benchmarks/kernels_ii.py \
        --only prefix_attention --json "$out/pa16_inline.json" 2>&1 | grep -v Warn | grep "fwd\|copy\|correct\|rel" | tail -10
fi
if [ "$part" = persist16 ]; then
    # sixteenth session (prepared, untimed): bf16 forward at 71-75% of copy against float32's 94-96% with the same
    # tiles; a bf16 tile holds half the bytes for the same registers, so fewer bytes are in flight an SM
    step "scan1 bf16 forward as persistent programs that prefetch their next tile (SEQLAB_SCAN1_PERSIST), graphs"
    # sm_90 offline (benchmarks/lookback_compile_counts.py): packed 32x128x2 tile 214 registers (168 capped, no
    # spills) against 96 for one program a tile; 16x128x2: 122. The
    # seventh session's persistent kernels (old [CT, BD] tiles, 220-254 registers) were slower at every setting; this
    # one carries the next tile as packed int32 words. Last two rows: 64-step tiles of two channels a thread (one
    # program, 162-163 registers, twice the bytes a program: float32's 32-step tiles reach 94-96% of copy)
    timeout 240 python3 benchmarks/scan1_sweep.py --graph --dtypes bfloat16 --json "$out/scan1_persist16.json" \
        --configs "@PERSIST=4;@PERSIST=6@MAXNREG=168;@PERSIST=3;16,128,2@PERSIST=8;16,128,2@PERSIST=6;64,128,2;64,64,1" 2>&1 \
        | grep -v Warn | grep "fwd \|ok=False\|fraction" | grep -v " vs \|fwd+bwd" | tail -16
fi
if [ "$part" = final15 ]; then
    # fifteenth session's defaults: 16-bit scan1 walks its backward (64,32,1,1,3,8, SEGSCAN=1), forward looks back;
    # bf16 correctness pass at the benchmark shape, peers beside (accelerated-scan, fla chunk_hgrn)
    scan1_defaults final15
fi
if [ "$part" = final ]; then
    for dt in bfloat16 float32; do
        step "scan1 defaults with CUDA-graph rows, $dt"
        timeout 120 python3 benchmarks/scan1_sweep.py --no-sweep --graph --dtypes "$dt" \
            --json "$out/scan1_final_$dt.json" 2>&1 | grep -v Warn | grep "fwd \|fwd+bwd \|ok=False" | grep -v "vs " | tail -14
    done
    step "scan1 kernel times"
    timeout 150 python3 benchmarks/scan1_profile.py --configs "default;16,64,1;16,128,2;32,64,2" \
        --json "$out/scan1_profile.json" 2>&1 | grep -v Warn | grep -v "^$" | tail -60
    step "prefix_attention: in-chunk fast path (default) against the exact path for every chunk"
    SEQLAB_BENCH_PA_FORMS=lookback timeout 100 python3 benchmarks/kernels_ii.py --only prefix_attention \
        --json "$out/pa_fast.json" 2>&1 | grep -v Warn | grep "fwd\|limit\|correct\|config" | tail -12
    SEQLAB_PREFIX_ATTN_FAST=0 SEQLAB_BENCH_PA_FORMS=lookback timeout 100 python3 benchmarks/kernels_ii.py \
        --only prefix_attention --json "$out/pa_exact.json" 2>&1 | grep -v Warn | grep "fwd\|config" | tail -6
fi
step done
