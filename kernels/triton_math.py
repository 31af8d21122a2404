"""Float32 transcendental helpers shared by the Triton kernels.

``tl.exp`` lowers to ``ex2.approx.f32`` without flush-to-zero, and ``ptxas`` wraps it in a subnormal range check:
``FSETP``, a predicated ``FMUL`` before and another after the ``MUFU``, five issue slots an element against two (sm_90 SASS of ``scan1``'s walking forward, bf16 ``64,8,4,1,5,4``: 1160 instructions a
64-step trip; ``benchmarks/scan1_walk_compile_counts.py``). ``tl.exp2`` lowers to the ``.ftz`` form, so
:func:`exp_ftz` scales by ``log2 e`` and calls it. The only difference from ``tl.exp`` is at subnormal
results: ``exp(x)`` for ``x < -87.3`` is flushed to zero (the smallest normal float32 is ``1.18e-38``). Both forms
carry the same ``2^-22`` relative error. (``tl.log`` and ``tl.log2`` are precise polynomials on sm_90, not
``lg2.approx``; they are left as they are.)
"""
from __future__ import annotations

import triton
import triton.language as tl

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)


@triton.jit
def exp_ftz(x):
    """``exp(x)`` in float32 as ``2^(x log2 e)`` with subnormal results flushed to zero (``ex2.approx.ftz.f32``)."""
    return tl.exp2(x * LOG2E)

