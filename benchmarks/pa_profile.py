"""Where prefix_attention's GPU time goes: torch.profiler kernel tables of the forward and forward+backward for
each forward form (``SEQLAB_PREFIX_ATTN_FWD``), at the issue-4 shape (B=4 T=4096 H=16 V=128 bf16, scores N(0, 1)).

``benchmarks/kernels_ii.py --only prefix_attention`` gives one number per pass; this splits it per launch (for the
``scan`` form: the workspace fill, the score pass and the value scan). Usage on the lent GPU::

    source benchmarks/device_env.sh && python3 benchmarks/pa_profile.py --forms lookback,scan --json $OUT/pa_prof.json

On a machine without CUDA it profiles a tiny shape under the Triton interpreter (a smoke test of the script).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __name__ == "__main__" and not __import__("torch").cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import kernel_table, print_table, write_tables  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--forms", default="lookback,scan", help="comma list of SEQLAB_PREFIX_ATTN_FWD values")
    ap.add_argument("--json")
    args = ap.parse_args()
    from seqlab.kernels import prefix_attention

    cuda = torch.cuda.is_available()
    dev, dt = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    B, T, H, V = (4, 4096, 16, 128) if cuda else (1, 70, 2, 16)
    torch.manual_seed(0)
    s = torch.randn(B, T, H, device=dev, requires_grad=True)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt, requires_grad=True)
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)
    out = {}
    for form in args.forms.split(","):
        os.environ["SEQLAB_PREFIX_ATTN_FWD"] = form
        for bwd in (False, True):
            def step(bwd=bwd):
                o = prefix_attention(s, v, backend="triton")[0]
                if bwd:
                    torch.autograd.grad(o, (s, v), do)
            key = f"{form} {'fwd+bwd' if bwd else 'fwd'}"
            rows = kernel_table(step)
            out[key] = rows
            total = sum(r["us_per_step"] for r in rows)
            print_table(f"prefix_attention {key}: B{B} T{T} H{H} V{V} {str(dt)[6:]}, device us per step "
                        f"(sum {total:.1f})", rows)
    write_tables(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
