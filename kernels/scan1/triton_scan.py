"""Single-pass Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on ``[B, T, D]`` (D contiguous).

Design (a chained scan with decoupled look-back, Merrill & Garland, "Single-pass Parallel Prefix Scan with
Decoupled Look-back", NVIDIA 2016; the CUB ``DeviceScan`` scheme, here per channel block):

* The time axis of every sequence is cut into chunks of ``CT`` steps; one program owns one
  (chunk, sequence, channel block of ``BD = BC * VEC``) tile, so there are ``B * T / CT * D / BD`` programs and every
  element of ``a`` and ``b`` is read from HBM once and ``h`` written once (3 passes forward; the backward
  reads ``a``, ``h``, ``do`` and writes ``da``, ``db``: 5 passes). That is what makes the op bound by memory
  bandwidth instead of by a sequential walk over T.
* Tiles are ``[BC, CT, VEC]``: channel groups first, time second, ``VEC`` adjacent channels last. Triton orders
  a blocked layout by contiguity with ties in dimension order, so this shape puts the threads (and warps) along the
  channel groups and keeps every channel's ``CT`` steps and ``VEC`` neighbours inside one thread: ``VEC``-wide
  vector loads (``VEC = 2`` bf16: 128 bytes a warp per row), a scan along time with no shuffles or barriers, and
  ``[BC, VEC]`` look-back vectors held once each. A ``[CT, BD]`` tile instead got ``sizePerThread = [1, 8]``,
  ``threadsPerWarp = [8, 4]`` in bf16 (time split over 8 threads, 368 shuffles a tile; sm_90 PTX, Triton 3.6).
* A program loads its tile, scans it along time with ``tl.associative_scan`` (combine
  ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``), and publishes the tile's aggregate ``(A, B)`` (the affine
  map from the state entering the chunk to the state leaving it). It then looks back over the preceding
  chunks of its sequence, composing their aggregates until it meets one whose inclusive state is already
  published, which gives its carry-in; it publishes its own inclusive state and writes
  ``h = A_cum * carry + B_cum``. The workspace holds one int64 word per chunk and channel: unwritten (all
  ones), the aggregate (A's and B's float32 bits in one word), then, overwritten, the inclusive state (a marker
  and its bits). Each is one 64-bit store, so readers need no fences (the CUB tile-status word; see
  :func:`_carry_in`). The earlier three-word record (A, B, inclusive, each with a flag) moved three times the
  bytes and needed a 50 MB memset per call at B=8 T=8192 D=1024.
* Programs take their tiles in launch order (chunk index slowest), from the program id (default) or from an
  atomic ticket counter, so a chunk only ever waits on chunks whose programs already run.
* Host side (configs, flags, workspace, launches): :mod:`seqlab.kernels.scan1.triton_launch`.
* Sequence starts are resets (``a := 0``, ``b := b + a h0``), so variable-length packed sequences
  (``cu_seqlens``), initial states and right-to-left scans (``REVERSE`` maps scan position ``p`` to time
  ``T - 1 - p``) all reduce to the same scan with no copies. A chunk containing a reset publishes its
  inclusive state at once, which also bounds every look-back.

Backward, in scan order (``a'`` is the gate with resets, ``do'`` adds ``d h_T`` at sequence ends)::

    g_p = do'_p + a'_{p+1} g_{p+1}        (a reverse scan: the same machinery walking chunks backwards)
    db_p = g_p,  da_p = g_p h_{p-1}  (h0 at a sequence start),  d log a_p = da_p a_p,  d h0 = a_start g_start

All arithmetic and carries are float32.
"""
from __future__ import annotations

import triton
import triton.language as tl

from seqlab.kernels.triton_math import exp_ftz


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


_NOT_READY = tl.constexpr(-1)  # a workspace word nobody has written (the buffer is filled with all ones)
_INC = tl.constexpr(4294967294)  # high half 0xFFFFFFFE: the low half is an inclusive state
_INC_WORD = tl.constexpr(-8589934592)  # 0xFFFFFFFE00000000 as an int64


@triton.jit
def _bits(x):
    return x.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF


@triton.jit
def _pack_agg(a, b):
    """A chunk's aggregate map ``(A, B)`` as one int64 word: A's bits high, B's low. ``A`` is made a canonical NaN
    where it is NaN, so the high half is never one of the two marker patterns (negative NaNs with every payload bit
    set, which arithmetic does not produce)."""
    a = tl.where(a != a, float("nan"), a)
    return (_bits(a) << 32) | _bits(b)


@triton.jit
def _pack_inc(h):
    """An inclusive state as one int64 word: the marker high, the value's bits low."""
    return _INC_WORD | _bits(h)


@triton.jit
def _lo(w):
    return (w & 0xFFFFFFFF).to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _hi(w):
    return (w >> 32).to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _last_row(x, rows, CT: tl.constexpr):
    """Row ``CT - 1`` of a ``[BC, CT, VEC]`` tile (a sum inside each thread)."""
    return tl.sum(tl.where(rows[None, :, None] == CT - 1, x, 0.0), axis=1)


@triton.jit
def _rows(x):
    """A ``[CT]`` row vector broadcast against ``[BC, CT, VEC]`` tiles."""
    return x[None, :, None]


@triton.jit
def _chans(x):
    """A ``[BC, VEC]`` channel vector broadcast against ``[BC, CT, VEC]`` tiles."""
    return x[:, None, :]


@triton.jit
def _walk(w, todo, acc_a, acc_b, h_in, k, done, STEP: tl.constexpr):
    """One look-back step of every channel still walking (``todo``), on the word it loaded itself: an inclusive
    state ends its walk, an aggregate is composed and the walk moves one chunk back, an unwritten word is read
    again."""
    hi = (w >> 32) & 0xFFFFFFFF
    inc = todo & (hi == _INC)
    agg = todo & (hi != _INC) & (w != _NOT_READY)
    v = _lo(w)
    h_in = tl.where(inc, acc_a * v + acc_b, h_in)
    acc_b = tl.where(agg, acc_a * v + acc_b, acc_b)
    acc_a = tl.where(agg, acc_a * _hi(w), acc_a)
    k = tl.where(agg, k - STEP, k)
    done = tl.where(inc, 1, done)
    return acc_a, acc_b, h_in, k, done


@triton.jit
def _ws_chans(o_d, cid):
    """Workspace offsets of the ``[BC, VEC]`` channel vector of chunk ``cid >= 0``. With ``VEC > 2`` a thread's words
    span more than 16 bytes, which Triton's coalescing pass would split over two threads (``sizePerThread = [1,
    2]``) and convert to and from the tiles' layout through shared memory at every workspace access (sm_90, bf16
    16,256,2 scan1 tile: 17 barriers against 3). Multiplying by ``(cid + 1) // (cid + 1)``, a one that Triton's
    contiguity analysis cannot see (LLVM folds it), keeps each thread's words in its own registers: 64-bit
    accesses, no conversions. ``VEC <= 2`` is unchanged."""
    o_w = o_d
    if o_d.shape[1] > 2:
        o_w = o_d * ((cid + 1) // (cid + 1))
    return o_w


@triton.jit
def _carry_in(ws_ptr, cid, o_d, m_d, D, pre, STEP: tl.constexpr, EARLY: tl.constexpr, LBW: tl.constexpr = 1,
              lo=0, hi=0):
    """Carry-in of chunk ``cid``: compose the words of chunks ``cid - STEP, cid - 2 STEP, ...`` up to an inclusive
    one (``STEP = 1`` forward; ``-1`` backward, whose predecessors are the following chunks).

    Workspace layout: one row of ``D`` int64 words per chunk. A word is unwritten (all ones), the chunk's aggregate
    ``(A, B)`` (:func:`_pack_agg`), or, overwritten later by the same program, its inclusive state
    (:func:`_pack_inc`); each is one 64-bit store, so a reader sees a whole word and needs no fence. Every channel
    of the ``[BC, VEC]`` vector walks on its own on the word it loaded itself (a chunk's channels are published by
    one vector store, but a reader may see some channels' aggregate and others' inclusive state); the loop ends
    when a reduction over the vector says every channel has met an inclusive state. The vector is held once
    (``BC = 32 * num_warps``, checked in the sm_90 TTGIR by ``tests/kernels/test_gpu_compile.py``), so no thread
    uses a copy of a word that another thread tested. ``EARLY``: ``pre`` holds the preceding chunk's words, loaded
    with the tile (:func:`_early_poll`), and is the walk's first step.

    ``LBW > 1`` (a look-back window, CUB's warp-wide status window): each round trip loads the words of the next
    ``LBW`` chunks back (chunk ids ``lo..hi``, the sequence's own) in one vector load and consumes them in order, up
    to the first unwritten or inclusive word, so a walk over ``n`` aggregates costs ``ceil(n / LBW)`` round trips
    instead of ``n``. The same words composed in the same order: the same bits as ``LBW = 1``."""
    k = tl.zeros(o_d.shape, cid.dtype) + (cid - STEP)
    o_w = _ws_chans(o_d, cid)
    acc_a = tl.full(o_d.shape, 1.0, tl.float32)
    acc_b = tl.zeros(o_d.shape, tl.float32)
    h_in = tl.zeros(o_d.shape, tl.float32)
    done = tl.where(m_d, 0, 1)
    if EARLY:
        acc_a, acc_b, h_in, k, done = _walk(pre, done == 0, acc_a, acc_b, h_in, k, done, STEP)
    if LBW == 1:
        while tl.min(tl.min(done, axis=1), axis=0) == 0:
            todo = done == 0
            w = tl.load(ws_ptr + k * D + o_w, mask=todo, other=_NOT_READY, volatile=True)
            acc_a, acc_b, h_in, k, done = _walk(w, todo, acc_a, acc_b, h_in, k, done, STEP)
    else:
        iw = tl.arange(0, LBW)[None, None, :]
        while tl.min(tl.min(done, axis=1), axis=0) == 0:
            kw = k[:, :, None] - STEP * iw
            ok = (done == 0)[:, :, None] & (kw >= lo) & (kw <= hi)
            win = tl.load(ws_ptr + kw * D + o_w[:, :, None], mask=ok, other=_NOT_READY, volatile=True)
            k0 = k
            for i in tl.static_range(LBW):  # in order; a word is used only if every word before it was an aggregate
                w = tl.sum(tl.where(iw == i, win, 0), axis=2)
                todo = (done == 0) & (k == k0 - i * STEP)
                acc_a, acc_b, h_in, k, done = _walk(w, todo, acc_a, acc_b, h_in, k, done, STEP)
    return h_in


@triton.jit
def _early_poll(ws_ptr, cid, o_d, m_d, D, valid, STEP: tl.constexpr):
    """Words of the preceding chunk, loaded before the tile is scanned so that their round trip overlaps the
    tile's (``EARLY``)."""
    o_w = _ws_chans(o_d, cid)
    return tl.load(ws_ptr + (cid - STEP) * D + o_w, mask=m_d & valid, other=_NOT_READY, volatile=True)


@triton.jit
def _link(ca, cb, resets, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT: tl.constexpr, STEP: tl.constexpr,
          NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr, LBW: tl.constexpr = 1):
    """A scanned tile's place in the chain: publish its aggregate (its inclusive state when a sequence restarts inside
    it, ``resets``), take its carry-in from the look-back (:func:`_carry_in`) unless its first row restarts (or, in the
    backward, ``STEP = -1``, it is the last chunk), publish its inclusive state, and return the carry-in. Shared by
    every single-pass scan tile (scan1's and prefix attention's, forward and backward). ``LBW``: the look-back
    window (:func:`_carry_in`) over the sequence's chunks ``cid - j .. cid - j + NCH - 1``."""
    agg_a = _last_row(ca, rows, CT)
    agg_b = _last_row(cb, rows, CT)
    has_reset = tl.max(resets.to(tl.int32), axis=0)
    first_resets = tl.max((resets & (rows == 0)).to(tl.int32), axis=0)
    wbase = ws_ptr + cid * D
    o_w = _ws_chans(o_d, cid)
    if has_reset == 1:  # the chunk's end state does not depend on its carry-in
        tl.store(wbase + o_w, _pack_inc(agg_b), mask=m_d)
    else:
        tl.store(wbase + o_w, _pack_agg(agg_a, agg_b), mask=m_d)
    h_in = tl.zeros(o_d.shape, tl.float32)
    if STEP == 1:
        if first_resets == 0:
            h_in = _carry_in(ws_ptr, cid, o_d, m_d, D, pre, STEP, EARLY, LBW, cid - j, cid - j + NCH - 1)
    else:
        # chunks are numbered in scan order, the look-back walks to higher chunk ids: mirror the index
        if (first_resets == 0) & (j < NCH - 1):
            h_in = _carry_in(ws_ptr, cid, o_d, m_d, D, pre, STEP, EARLY, LBW, cid - j, cid - j + NCH - 1)
    if (has_reset == 0) & (not NO_INCLUSIVE):
        tl.store(wbase + o_w, _pack_inc(agg_a * h_in + agg_b), mask=m_d)
    return h_in


@triton.jit
def _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN: tl.constexpr, REVERSE: tl.constexpr):
    """Per row: sequence index, whether the row starts its sequence in scan order, whether it ends it."""
    if IS_VARLEN:
        seq = tl.load(seq_ptr + r, mask=m_t, other=0).to(tl.int64)
        first = tl.load(cu_ptr + seq, mask=m_t, other=0).to(tl.int64)
        last = tl.load(cu_ptr + seq + 1, mask=m_t, other=1).to(tl.int64) - 1
        if REVERSE:
            is_start = r == last
            is_end = r == first
        else:
            is_start = r == first
            is_end = r == last
    else:
        seq = tl.zeros_like(pl) + i_n
        is_start = pl == 0
        is_end = pl == L - 1
    return seq, is_start & m_t, is_end & m_t


@triton.jit
def _tile_of(t, nD, NSEQ, NCH, BACKWARD: tl.constexpr, I64: tl.constexpr):
    """Tile ``(channel block, sequence, chunk)`` of ticket ``t``, in launch order (chunk index slowest; the backward
    walks chunks from the last). Index arithmetic is int32 unless ``I64`` (tensors of >= 2**31 elements): 64-bit
    offsets cost the 32-step tile ~50 registers a thread (211 against 160, sm_90 ``ptxas -v``), and registers bound
    how many tiles an SM keeps in flight."""
    if I64:
        t = t.to(tl.int64)
    else:
        t = t.to(tl.int32)
    i_d = t % nD
    rest = t // nD
    i_n = rest % NSEQ
    j = rest // NSEQ
    if BACKWARD:
        j = NCH - 1 - j
    return i_d, i_n, j


@triton.jit
def _ticket(cnt_ptr, nD, NSEQ, NCH, BACKWARD: tl.constexpr, TICKET: tl.constexpr, I64: tl.constexpr):
    """The program's tile, in launch order (chunk index slowest). ``TICKET``: from an atomic counter, so a chunk
    only waits on chunks whose programs are already running whatever the scheduler does; else from the program
    id, which relies on blocks being dispatched in increasing index order, as CUB's single-pass ``DeviceScan``
    does, and saves one round trip to L2 per program."""
    if TICKET:
        t = tl.atomic_add(cnt_ptr, 1)
    else:
        t = tl.program_id(0)
    return _tile_of(t, nD, NSEQ, NCH, BACKWARD, I64)


@triton.jit
def _chan_coords(i_d, D, BC: tl.constexpr, VEC: tl.constexpr):
    """``[BC, VEC]`` channel indices of channel block ``i_d`` and their mask."""
    o_d = i_d * (BC * VEC) + tl.arange(0, BC)[:, None] * VEC + tl.arange(0, VEC)[None, :]
    return o_d, o_d < D


@triton.jit
def _fwd_coords(i_d, i_n, j, L, D, REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr):
    rows = tl.arange(0, CT)
    pl = j * CT + rows  # scan positions within the sequence (the whole packed axis when varlen)
    m_t = pl < L
    if REVERSE:
        r = i_n * L + L - 1 - pl
    else:
        r = i_n * L + pl
    o_d, m_d = _chan_coords(i_d, D, BC, VEC)
    offs = _rows(r) * D + _chans(o_d)
    mask = _rows(m_t) & _chans(m_d)
    return rows, pl, m_t, r, o_d, m_d, offs, mask


@triton.jit
def _stream_load(ptr, mask, other, HINTS: tl.constexpr):
    """A load of data read once (``HINTS`` bit 1: ``evict_first``, so it leaves L2 before the look-back
    workspace)."""
    if HINTS & 1:
        return tl.load(ptr, mask=mask, other=other, eviction_policy="evict_first")
    else:
        return tl.load(ptr, mask=mask, other=other)


@triton.jit
def _stream_store(ptr, x, mask, HINTS: tl.constexpr):
    """A store of data not read again by this kernel (``HINTS`` bit 2: ``.cs``, streaming)."""
    if HINTS & 2:
        tl.store(ptr, x, mask=mask, cache_modifier=".cs")
    else:
        tl.store(ptr, x, mask=mask)


@triton.jit
def _flat_ptrs(x_ptr, i_n, j, L, o_d, DK: tl.constexpr, REVERSE: tl.constexpr, CT: tl.constexpr,
               I64: tl.constexpr):
    """``[BC, CT, VEC]`` pointers of a full tile of ``[B, T, DK]`` rows (``FLAT``): one 64-bit base a thread and
    channel plus row offsets that are compile-time constants (``DK`` is the row stride as a constexpr), so loads and
    stores take immediate offsets instead of a 64-bit address computed per element."""
    t = tl.arange(0, CT)
    if REVERSE:
        row0 = i_n * L + L - 1 - j * CT
        toff = -(t * DK)
    else:
        row0 = i_n * L + j * CT
        toff = t * DK
    if I64:
        row0 = tl.cast(row0, tl.int64)
    return (x_ptr + row0 * DK + o_d)[:, None, :] + toff[None, :, None]


@triton.jit
def _fwd_loads(a_ptr, b_ptr, offs, mask, LOG_A: tl.constexpr, HINTS: tl.constexpr = 0):
    """The tile's raw ``a`` (or ``log a``) and ``b``, in their storage dtype (masked rows: identity steps)."""
    if LOG_A:
        a = _stream_load(a_ptr + offs, mask, 0.0, HINTS)
    else:
        a = _stream_load(a_ptr + offs, mask, 1.0, HINTS)
    b = _stream_load(b_ptr + offs, mask, 0.0, HINTS)
    return a, b


@triton.jit
def _opaque(x, ASM: tl.constexpr):
    """``x`` unchanged, through an inline-asm move the compiler cannot see through (``ASM``; plain ``x`` in the
    interpreter). The two-phase forward converts the raw tile again after the look-back from this copy, so the
    compiler cannot keep the first phase's float32 values alive across the look-back instead."""
    if ASM:
        if x.dtype.primitive_bitwidth == 16:
            return tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=x.dtype, is_pure=False, pack=2)
        else:
            return tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=x.dtype, is_pure=False, pack=1)
    else:
        return x


@triton.jit
def _fwd_inputs(a_raw, b_raw, is_start, seq, o_d, m_d, h0_ptr, D, LOG_A: tl.constexpr, HAS_H0: tl.constexpr):
    """The tile's float32 gates and inputs with sequence starts as resets (``a := 0``, ``b := b + a h0``)."""
    if LOG_A:
        a = exp_ftz(a_raw.to(tl.float32))
    else:
        a = a_raw.to(tl.float32)
    b = b_raw.to(tl.float32)
    if HAS_H0:
        h0 = tl.load(h0_ptr + _rows(seq) * D + _chans(o_d), mask=_rows(is_start) & _chans(m_d), other=0.0)
        b += a * h0.to(tl.float32)
    a = tl.where(_rows(is_start), 0.0, a)
    return a, b


@triton.jit
def _store_tile(x_ptr, x_flat, hs, r, o_d, offs, mask, D, OPAQUE: tl.constexpr, HINTS: tl.constexpr,
                FLAT: tl.constexpr):
    """Store a scanned forward tile in ``x_ptr``'s dtype: through the ``FLAT`` pointers (no mask), else at ``offs``
    (recomputed from an opaque copy of the rows under ``OPAQUE``, so the addresses are not held through the
    look-back)."""
    if FLAT:
        _stream_store(x_flat, hs.to(x_ptr.dtype.element_ty), None, HINTS)
    else:
        if OPAQUE:
            offs = _rows(_opaque(r, True)) * D + _chans(o_d)
        _stream_store(x_ptr + offs, hs.to(x_ptr.dtype.element_ty), mask, HINTS)


@triton.jit
def _store_final(hs, is_end, seq, rows, i_n, j, L, o_d, m_d, ht_ptr, D, CT: tl.constexpr, IS_VARLEN: tl.constexpr):
    """The final state from the rows that end a sequence. Dense: only the sequence's last chunk holds one, at row
    ``L - 1 - j CT``; selecting it by that index keeps the ``[BC, VEC]`` result cheap, where a mask built from the
    per-row ``is_end`` flags held the whole tile's worth of registers (sm_90a, 32x128x2 bf16 tile: 168 registers a
    thread against 96 without a final state, 96 with this form). Packed sequences keep the masked tile store."""
    if IS_VARLEN:
        tl.store(ht_ptr + _rows(seq) * D + _chans(o_d), hs, mask=_rows(is_end) & _chans(m_d))
    else:
        if (j + 1) * CT >= L:
            h_end = tl.sum(tl.where(_rows(rows == L - 1 - j * CT), hs, 0.0), 1)
            tl.store(ht_ptr + i_n * D + o_d, h_end, mask=m_d)


@triton.jit
def _fwd_tile(
    a_raw, b_raw, pre, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
    h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr, TWO: tl.constexpr,
    OPAQUE: tl.constexpr, HINTS: tl.constexpr = 0, h_flat=None, FLAT: tl.constexpr = 0, LBW: tl.constexpr = 1,
):
    """Scan one loaded tile, publish its aggregate, resolve its carry-in, publish its inclusive state, store h.

    ``TWO`` (two phases): the first scan only yields the aggregate; after the look-back the raw tile (still in its
    storage dtype) is converted again, the carry-in is folded into its first row and the tile scanned again. Only
    the raw tile then lives across the look-back (half the registers of the float32 scan results in bf16), so
    more tiles fit on an SM while their look-backs wait. ``OPAQUE`` (GPU only, :func:`_opaque`): the store
    addresses, and with ``TWO`` the second conversion, are computed after the look-back from values the compiler
    cannot see through, so it recomputes them instead of holding them across the look-back. sm_90 ``ptxas -v``,
    32x128x2 tile: bf16 197 registers a thread, 196 with ``OPAQUE``, 96 with both; float32 203, 163, 163."""
    cid = i_n * NCH + j
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, REVERSE)
    a, b = _fwd_inputs(a_raw, b_raw, is_start, seq, o_d, m_d, h0_ptr, D, LOG_A, HAS_H0)
    ca, cb = tl.associative_scan((a, b), 1, _combine)
    h_in = _link(ca, cb, is_start, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT, 1, NO_INCLUSIVE, EARLY, LBW)
    if TWO > 0:
        a2, b2 = _fwd_inputs(_opaque(a_raw, OPAQUE), _opaque(b_raw, OPAQUE), is_start, seq, o_d, m_d, h0_ptr,
                             D, LOG_A, HAS_H0)
        b2 += tl.where(_rows(rows == 0), a2 * _chans(h_in), 0.0)
        _, hs = tl.associative_scan((a2, b2), 1, _combine)
    else:
        hs = ca * _chans(h_in) + cb
    _store_tile(h_ptr, h_flat, hs, r, o_d, offs, mask, D, OPAQUE, HINTS, FLAT)
    if STORE_FINAL:
        _store_final(hs, is_end, seq, rows, i_n, j, L, o_d, m_d, ht_ptr, D, CT, IS_VARLEN)


@triton.jit
def _scan1_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
    TICKET: tl.constexpr, EARLY: tl.constexpr, I64: tl.constexpr, ABLATE: tl.constexpr = 0, TWO: tl.constexpr = 0,
    OPAQUE: tl.constexpr = 0, HINTS: tl.constexpr = 0, FLAT: tl.constexpr = 0, DK: tl.constexpr = 0,
    LBW: tl.constexpr = 1,
):
    """``FLAT`` (dense input, every tile full, ``DK = D``): pointers from :func:`_flat_ptrs`, no masks. ``LBW``: the
    look-back window (:func:`_carry_in`)."""
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, False, TICKET, I64)
    rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BC, VEC)
    h_flat = None
    if FLAT:
        a_raw = _stream_load(_flat_ptrs(a_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64), None, None, HINTS)
        b_raw = _stream_load(_flat_ptrs(b_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64), None, None, HINTS)
        h_flat = _flat_ptrs(h_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64)
    else:
        a_raw, b_raw = _fwd_loads(a_ptr, b_ptr, offs, mask, LOG_A, HINTS)
    if ABLATE == 0:
        pre = tl.zeros([BC, VEC], tl.int64)
        if EARLY:
            pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j > 0, 1)
        _fwd_tile(a_raw, b_raw, pre, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
                  h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
                  LOG_A, HAS_H0, STORE_FINAL, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, EARLY, TWO, OPAQUE, HINTS,
                  h_flat, FLAT, LBW)
    else:  # benchmark-only ablations (SEQLAB_SCAN1_ABLATE, see scan1_fwd): the same tiles with parts left out
        a = exp_ftz(a_raw.to(tl.float32)) if LOG_A else a_raw.to(tl.float32)
        if ABLATE == 1:  # the in-tile scan with carry-in zero: no workspace, no look-back
            _, hs = tl.associative_scan((a, b_raw.to(tl.float32)), 1, _combine)
        else:  # loads, one multiply, store: the ceiling of a one-tile-per-program kernel
            hs = a * b_raw.to(tl.float32)
        tl.store(h_ptr + offs, hs.to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_coords(i_d, i_n, j, L, D, REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr):
    rows = tl.arange(0, CT)
    pl = j * CT + CT - 1 - rows  # descending scan positions: tile row 0 is the chunk's last position
    m_t = pl < L
    if REVERSE:
        r = i_n * L + L - 1 - pl
        r_next = r - 1  # row of scan position p + 1
        r_prev = r + 1  # row of scan position p - 1
    else:
        r = i_n * L + pl
        r_next = r + 1
        r_prev = r - 1
    o_d, m_d = _chan_coords(i_d, D, BC, VEC)
    offs = _rows(r) * D + _chans(o_d)
    mask = _rows(m_t) & _chans(m_d)
    return rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask


@triton.jit
def _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A: tl.constexpr):
    """Raw ``h_{p-1}`` and (log gates) ``log a_p`` of a backward tile: loads that need neither the carry nor the
    sequence flags (rows outside the packed axis ``[0, NR)`` are masked; :func:`_bwd_tile` applies the flags)."""
    hp = tl.load(h_ptr + _rows(r_prev) * D + _chans(o_d), mask=mask & _rows((r_prev >= 0) & (r_prev < NR)), other=0.0)
    if LOG_A:
        a_here = tl.load(a_ptr + offs, mask=mask, other=0.0)
    else:
        a_here = hp
    return hp, a_here


@triton.jit
def _bwd_loads(a_ptr, do_ptr, r_next, offs, mask, o_d, NR, D):
    """Raw ``do`` and next-position gate of a backward tile (sequence boundaries applied by :func:`_bwd_tile`)."""
    do = tl.load(do_ptr + offs, mask=mask, other=0.0)
    gate = tl.load(a_ptr + _rows(r_next) * D + _chans(o_d), mask=mask & _rows((r_next >= 0) & (r_next < NR)),
                   other=0.0)
    return do, gate


@triton.jit
def _bwd_tile(
    do_raw, gate_raw, hp_raw, ah_raw, pre, i_n, j, rows, pl, m_t, r, r_prev, o_d, m_d, offs, mask,
    a_ptr, h0_ptr, h_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH, NR,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr,
    LATE_LOADS: tl.constexpr,
):
    """Reverse-scan one loaded backward tile (``g_p = do'_p + a'_{p+1} g_{p+1}``), publish, resolve the carry,
    store ``da`` (or ``d log a``), ``db`` and ``dh0``. ``LATE_LOADS``: ``hp_raw`` / ``ah_raw`` are placeholders and
    the state loads are issued after the scan (fewer live registers while it runs)."""
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, REVERSE)
    do = do_raw.to(tl.float32)
    if HAS_DHT:
        do += tl.load(dht_ptr + _rows(seq) * D + _chans(o_d), mask=_rows(is_end) & _chans(m_d), other=0.0)
    # gate of the next scan position; zero where this row ends its sequence (the next row is a reset)
    m_next = _rows(m_t & (is_end == 0)) & _chans(m_d)
    if LOG_A:
        gate = exp_ftz(gate_raw.to(tl.float32))
    else:
        gate = gate_raw.to(tl.float32)
    gate = tl.where(m_next, gate, tl.where(mask, 0.0, 1.0))
    cid = i_n * NCH + j
    ca, cb = tl.associative_scan((gate, do), 1, _combine)
    g_in = _link(ca, cb, is_end, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT, -1, NO_INCLUSIVE, EARLY)
    g = ca * _chans(g_in) + cb
    if LATE_LOADS:
        hp_raw, ah_raw = _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A)
    hp = tl.where(_rows(is_start), 0.0, hp_raw.to(tl.float32))
    m_s = _rows(is_start) & _chans(m_d)
    if HAS_H0:
        hp += tl.load(h0_ptr + _rows(seq) * D + _chans(o_d), mask=m_s, other=0.0).to(tl.float32)
    da = g * hp
    if LOG_A:
        a_here = exp_ftz(ah_raw.to(tl.float32))
        da = da * a_here
    tl.store(da_ptr + offs, da.to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, g.to(db_ptr.dtype.element_ty), mask=mask)
    if HAS_H0:
        if LOG_A:
            a_s = a_here
        else:
            a_s = tl.load(a_ptr + offs, mask=m_s, other=0.0).to(tl.float32)
        tl.store(dh0_ptr + _rows(seq) * D + _chans(o_d), a_s * g, mask=m_s)


@triton.jit
def _scan1_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr,
    L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
    TICKET: tl.constexpr, EARLY: tl.constexpr, I64: tl.constexpr,
):
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, True, TICKET, I64)
    NR = NSEQ * L
    rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask = _bwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BC, VEC)
    do_raw, gate_raw = _bwd_loads(a_ptr, do_ptr, r_next, offs, mask, o_d, NR, D)
    pre = tl.zeros([BC, VEC], tl.int64)
    hp_raw = do_raw
    ah_raw = do_raw
    if EARLY:  # everything that does not depend on the carry goes out before the scan
        pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j < NCH - 1, -1)
        hp_raw, ah_raw = _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A)
    _bwd_tile(do_raw, gate_raw, hp_raw, ah_raw, pre, i_n, j, rows, pl, m_t, r, r_prev, o_d, m_d, offs, mask,
              a_ptr, h0_ptr, h_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH, NR,
              LOG_A, HAS_H0, HAS_DHT, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, EARLY, not EARLY)
