"""Host-side input validation shared by every kernel op.

Every public op checks its inputs here before any launch, so a bad call ends with one ``ValueError`` that
names the argument and the expected shape / dtype / device instead of a CUDA fault or a silent wrong answer.

Shapes are written as symbol strings (``"B T H K"``); a :class:`Dims` object binds each symbol the first
time it is seen and checks every later tensor against the bound sizes::

    dims = Dims()
    check_tensor(q, "q", "B T H K", dims)
    check_tensor(k, "k", "B T H K", dims)        # must agree with q
    check_tensor(v, "v", "B T H V", dims)        # V bound here
    check_tensor(h0, "initial_state", "N H K V", dims, dtypes=STATE_DTYPES, optional=True)
    n = check_cu_seqlens(cu_seqlens, dims)       # value checks: call outside torch.compile tracing

Value checks on ``cu_seqlens`` need its contents on the host (one device sync), so ops run them in the eager
implementation of their custom op, not in the traced wrapper.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)
STATE_DTYPES: tuple[torch.dtype, ...] = (torch.float32,)
INDEX_DTYPES: tuple[torch.dtype, ...] = (torch.int32, torch.int64)


class Dims:
    """Symbol table for shape checks: ``{"B": 2, "T": 64, ...}`` plus who bound each symbol.

    Args:
        **known: symbols fixed up front (e.g. ``Dims(B=1)``).
    """

    def __init__(self, **known: int) -> None:
        self.sizes: dict[str, int] = dict(known)
        self.bound_by: dict[str, str] = {s: "the op" for s in known}
        self.device: torch.device | None = None
        self.device_of: str | None = None

    def __getitem__(self, sym: str) -> int:
        return self.sizes[sym]

    def get(self, sym: str, default: int | None = None) -> int | None:
        """Size bound to ``sym`` or ``default``."""
        return self.sizes.get(sym, default)


def _fmt(spec: list[str], dims: Dims) -> str:
    parts = [f"{s}" for s in spec]
    sizes = [str(dims.sizes[s]) if s in dims.sizes else "?" for s in spec]
    return f"[{', '.join(parts)}] = [{', '.join(sizes)}]"


def check_tensor(
    x: torch.Tensor | None,
    name: str,
    spec: str,
    dims: Dims,
    *,
    dtypes: Iterable[torch.dtype] = FLOAT_DTYPES,
    optional: bool = False,
    contiguous: bool = True,
) -> None:
    """Check one tensor argument: type, rank and sizes against ``spec``, dtype, device and contiguity.

    Args:
        x: the tensor (None allowed only when ``optional``).
        name: argument name used in the error message.
        spec: space-separated dimension symbols, e.g. ``"B T H K"``; integers are literal sizes.
        dims: the symbol table shared by one op call; unbound symbols get bound to ``x``'s sizes.
        dtypes: accepted dtypes.
        optional: accept ``None``.
        contiguous: require ``x.is_contiguous()``.

    Raises:
        ValueError: naming ``name`` and the expected shape, dtype, device or layout.
    """
    syms = spec.split()
    if x is None:
        if optional:
            return
        raise ValueError(f"{name} is required: expected a tensor of shape [{', '.join(syms)}]")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [{', '.join(syms)}], got {type(x).__name__}")
    if x.dim() != len(syms):
        raise ValueError(f"{name} must have {len(syms)} dims [{', '.join(syms)}], got shape {list(x.shape)}")
    for i, s in enumerate(syms):
        if s.isdigit():
            if x.shape[i] != int(s):
                raise ValueError(f"{name} must have shape [{', '.join(syms)}], got {list(x.shape)}")
            continue
        if s not in dims.sizes:
            dims.sizes[s] = int(x.shape[i])
            dims.bound_by[s] = name
        elif x.shape[i] != dims.sizes[s]:
            raise ValueError(
                f"{name} must have shape {_fmt(syms, dims)} ({s} = {dims.sizes[s]} from {dims.bound_by[s]}), "
                f"got {list(x.shape)}"
            )
    dtypes = tuple(dtypes)
    if x.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must have dtype in ({names}), got {str(x.dtype).replace('torch.', '')}")
    if dims.device is None:
        dims.device, dims.device_of = x.device, name
    elif x.device != dims.device:
        raise ValueError(f"{name} must be on {dims.device} like {dims.device_of}, got {x.device}")
    if contiguous and not x.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous()), got strides {list(x.stride())}")


def check_same_dtype(tensors: dict[str, torch.Tensor | None]) -> None:
    """All non-None tensors share one dtype.

    Raises:
        ValueError: naming the first argument that differs.
    """
    items = [(n, t) for n, t in tensors.items() if t is not None]
    if not items:
        return
    n0, t0 = items[0]
    for n, t in items[1:]:
        if t.dtype != t0.dtype:
            raise ValueError(f"{n} must have the dtype of {n0} ({t0.dtype}), got {t.dtype}")


def check_cu_seqlens_meta(cu_seqlens: torch.Tensor | None, dims: Dims, name: str = "cu_seqlens") -> int:
    """Trace-safe part of the ``cu_seqlens`` check: rank, dtype, device, batch size 1.

    Args:
        cu_seqlens: FlashAttention-style offsets ``[N + 1]`` into the packed time axis, or None.
        dims: symbol table with ``B`` and ``T`` bound (and the device of the op's inputs).
        name: argument name for messages.

    Returns:
        The number of sequences: ``N`` with varlen, else ``B``.

    Raises:
        ValueError: naming ``name`` or the batch size.
    """
    if cu_seqlens is None:
        return dims["B"]
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        shape = list(cu_seqlens.shape) if isinstance(cu_seqlens, torch.Tensor) else type(cu_seqlens).__name__
        raise ValueError(f"{name} must be a 1-D tensor [N + 1] of offsets with N >= 1, got {shape}")
    if cu_seqlens.dtype not in INDEX_DTYPES:
        raise ValueError(f"{name} must have dtype int32 or int64, got {cu_seqlens.dtype}")
    if dims.device is not None and cu_seqlens.device != dims.device:
        raise ValueError(f"{name} must be on {dims.device} like {dims.device_of}, got {cu_seqlens.device}")
    if dims["B"] != 1:
        raise ValueError(f"batch size must be 1 when {name} is given (sequences are packed along T), "
                         f"got B = {dims['B']} from {dims.bound_by['B']}")
    return cu_seqlens.numel() - 1


def check_cu_seqlens_values(cu_seqlens: torch.Tensor | None, total: int, name: str = "cu_seqlens",
                            allow_empty: bool = False) -> None:
    """Value part of the ``cu_seqlens`` check (reads the offsets on the host: one sync).

    Args:
        cu_seqlens: offsets ``[N + 1]`` or None.
        total: packed length ``T``; the last offset must equal it.
        name: argument name for messages.
        allow_empty: accept empty sequences (offsets non-decreasing instead of strictly increasing).

    Raises:
        ValueError: when offsets do not start at 0, are not strictly increasing (non-decreasing with
            ``allow_empty``), or do not end at ``total``.
    """
    if cu_seqlens is None:
        return
    offs = cu_seqlens.tolist()
    if offs[0] != 0:
        raise ValueError(f"{name} must start at 0, got {offs[0]}")
    if allow_empty and any(b < a for a, b in zip(offs[:-1], offs[1:])):
        raise ValueError(f"{name} must be non-decreasing (empty sequences allowed), got {offs}")
    if not allow_empty and any(b <= a for a, b in zip(offs[:-1], offs[1:])):
        raise ValueError(f"{name} must be strictly increasing (every sequence at least 1 step), got {offs}")
    if offs[-1] != total:
        raise ValueError(f"{name} must end at T = {total} (the packed length), got {offs[-1]}")


def check_cu_seqlens(cu_seqlens: torch.Tensor | None, dims: Dims, name: str = "cu_seqlens") -> int:
    """Full ``cu_seqlens`` check (meta + values); returns the number of sequences.

    Raises:
        ValueError: see :func:`check_cu_seqlens_meta` and :func:`check_cu_seqlens_values`.
    """
    n = check_cu_seqlens_meta(cu_seqlens, dims, name)
    check_cu_seqlens_values(cu_seqlens, dims["T"], name)
    return n


def check_choice(value: object, name: str, choices: Iterable[object]) -> None:
    """``value`` is one of ``choices``.

    Raises:
        ValueError: naming ``name`` and the accepted values.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
