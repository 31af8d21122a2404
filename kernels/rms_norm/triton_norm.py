"""Triton kernels of ``seqlab.kernels.rms_norm``: (gated) RMSNorm over the last dim, one kernel each way.

The same fusion as fla's ``FusedRMSNormGated`` (github.com/fla-org/flash-linear-attention,
``fla/modules/fused_norm_gate.py``) and mamba_ssm's ``RMSNormGated`` (github.com/state-spaces/mamba,
``mamba_ssm/ops/triton/layernorm_gated.py``); the code here is written for this repo's op layout.

``x`` is viewed as ``[N, D]`` rows (contiguous). With ``s = silu(z)``, ``u = x s`` when the gate comes before the
norm (``norm_before_gate=False``) else ``u = x``, ``r = 1 / sqrt(mean(u^2) + eps)`` and ``uh = u r``:

* forward: one program per ``BR`` rows (``BD = next_pow2(D)``, ``BR = 1`` once ``BD >= 4096``); the row
  statistics are float32; stores ``y`` (in ``x.dtype``) and ``rstd = r`` ``[N]`` float32 (all the backward keeps).
* backward: ``uh`` and ``s`` are recomputed from ``x``, ``z`` and ``rstd``. With ``h = uh w`` and ``g = dy``
  (times ``s`` for the gate after the norm)::

      dw  += sum_rows g uh
      du   = r (g w - uh mean(g w uh))
      dx   = du s,  dz = du x silu'(z)        (gate before the norm)
      dx   = du,    dz = dy h silu'(z)        (gate after the norm)

  ``silu'(z) = sig(z) (1 + z (1 - sig(z)))``. Each program walks a contiguous range of row blocks and writes
  its float32 partial ``dw`` to row ``pid`` of a ``[n_programs, D]`` buffer, summed on the host with
  ``torch.sum`` (no atomics, deterministic).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, next_pow2


@triton.jit
def _rms_norm_fwd_kernel(x, z, w, y, rstd, N, eps, D: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr,
                         HAS_W: tl.constexpr, HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr):
    """One program per ``BR`` rows of ``D`` features."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    cols = tl.arange(0, BD)
    rmask = rows < N
    cmask = cols < D
    m = rmask[:, None] & cmask[None, :]
    p = rows[:, None] * D + cols[None, :]
    b_u = tl.load(x + p, mask=m, other=0.0).to(tl.float32)
    if HAS_Z:
        b_z = tl.load(z + p, mask=m, other=0.0).to(tl.float32)
        b_s = b_z * tl.sigmoid(b_z)
        if not NORM_BEFORE_GATE:
            b_u = b_u * b_s
    b_r = tl.rsqrt(tl.sum(b_u * b_u, 1) / D + eps)
    b_y = b_u * b_r[:, None]
    if HAS_W:
        b_w = tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)
        b_y = b_y * b_w[None, :]
    if HAS_Z:
        if NORM_BEFORE_GATE:
            b_y = b_y * b_s
    tl.store(y + p, b_y.to(y.dtype.element_ty), mask=m)
    tl.store(rstd + rows, b_r, mask=rmask)


@triton.jit
def _rms_norm_bwd_kernel(x, z, w, rstd, dy, dx, dz, dw, N, n_blocks, blocks_per_program,
                         D: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr,
                         HAS_W: tl.constexpr, HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr):
    """Program ``pid`` handles row blocks ``[pid * blocks_per_program, ...)`` and writes ``dw[pid]`` (float32)."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BD)
    cmask = cols < D
    if HAS_W:
        b_w = tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)
        b_dw = tl.zeros([BD], dtype=tl.float32)
    start = pid * blocks_per_program
    end = tl.minimum(start + blocks_per_program, n_blocks)
    for blk in range(start, end):
        rows = tl.cast(blk, tl.int64) * BR + tl.arange(0, BR)
        rmask = rows < N
        m = rmask[:, None] & cmask[None, :]
        p = rows[:, None] * D + cols[None, :]
        b_x = tl.load(x + p, mask=m, other=0.0).to(tl.float32)
        b_g = tl.load(dy + p, mask=m, other=0.0).to(tl.float32)
        b_r = tl.load(rstd + rows, mask=rmask, other=0.0)
        b_u = b_x
        if HAS_Z:
            b_z = tl.load(z + p, mask=m, other=0.0).to(tl.float32)
            b_sig = tl.sigmoid(b_z)
            b_s = b_z * b_sig
            b_ds = b_sig * (1.0 + b_z * (1.0 - b_sig))  # silu'(z)
            if NORM_BEFORE_GATE:
                b_h = b_x * b_r[:, None]
                if HAS_W:
                    b_h = b_h * b_w[None, :]
                tl.store(dz + p, (b_g * b_h * b_ds).to(dz.dtype.element_ty), mask=m)
                b_g = b_g * b_s
            else:
                b_u = b_x * b_s
        b_uh = b_u * b_r[:, None]
        if HAS_W:
            b_dw += tl.sum(b_g * b_uh, 0)
            b_g = b_g * b_w[None, :]
        b_du = b_r[:, None] * (b_g - b_uh * (tl.sum(b_g * b_uh, 1) / D)[:, None])
        if HAS_Z:
            if not NORM_BEFORE_GATE:
                tl.store(dz + p, (b_du * b_x * b_ds).to(dz.dtype.element_ty), mask=m)
                b_du = b_du * b_s
        tl.store(dx + p, b_du.to(dx.dtype.element_ty), mask=m)
    if HAS_W:
        tl.store(dw + pid * D + cols, b_dw, mask=cmask)


def blocks(D: int) -> tuple[int, int, int]:
    """``(BR, BD, num_warps)`` for rows of ``D`` features: tiles of about 4096 elements, one row once D >= 4096."""
    BD = max(16, next_pow2(D))
    BR = max(1, min(64, 4096 // BD))
    return BR, BD, min(16, max(4, BR * BD // 1024))


def _n_programs(n_blocks: int, device: torch.device) -> int:
    """Backward grid: a few programs per SM on CUDA (each loops over row blocks); 2 under the interpreter."""
    if device.type == "cuda":
        target = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    else:
        target = 2
    return max(1, min(n_blocks, target))


def rms_norm_fwd(x: torch.Tensor, weight: torch.Tensor | None, z: torch.Tensor | None, eps: float,
                 norm_before_gate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, rstd [N] float32)`` for contiguous ``x`` / ``z`` ``[..., D]`` and ``weight`` ``[D]`` (or None)."""
    D = x.shape[-1]
    N = x.numel() // D
    y = torch.empty_like(x)
    rstd = torch.empty(N, device=x.device, dtype=torch.float32)
    if N:
        BR, BD, nw = blocks(D)
        _rms_norm_fwd_kernel[(cdiv(N, BR),)](
            x, x if z is None else z, x if weight is None else weight, y, rstd, N, eps,
            D=D, BR=BR, BD=BD, HAS_W=weight is not None, HAS_Z=z is not None,
            NORM_BEFORE_GATE=norm_before_gate, num_warps=nw)
    return y, rstd


def rms_norm_bwd(x: torch.Tensor, weight: torch.Tensor | None, z: torch.Tensor | None, rstd: torch.Tensor,
                 dy: torch.Tensor, norm_before_gate: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(dx, dweight or None, dz or None)`` in the dtypes of ``x``, ``weight``, ``z``."""
    D = x.shape[-1]
    N = rstd.shape[0]
    dx = torch.empty_like(x)
    dz = None if z is None else torch.empty_like(z)
    dw = None
    if N:
        BR, BD, nw = blocks(D)
        n_blocks = cdiv(N, BR)
        per = cdiv(n_blocks, _n_programs(n_blocks, x.device))
        n_prog = cdiv(n_blocks, per)
        partial = (torch.empty(n_prog, D, device=x.device, dtype=torch.float32) if weight is not None else None)
        _rms_norm_bwd_kernel[(n_prog,)](
            x, x if z is None else z, x if weight is None else weight, rstd, dy, dx,
            dx if dz is None else dz, x if partial is None else partial, N, n_blocks, per,
            D=D, BR=BR, BD=BD, HAS_W=weight is not None, HAS_Z=z is not None,
            NORM_BEFORE_GATE=norm_before_gate, num_warps=nw)
        if partial is not None:
            dw = partial.sum(0).to(weight.dtype)
    elif weight is not None:
        dw = torch.zeros_like(weight)
    return dx, dw, dz
