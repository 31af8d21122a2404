"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Follows the authors' TensorFlow code, kang205/SASRec ``model.py`` and ``modules.py``, read top to bottom:

1. ``e = E[item] * sqrt(d)`` with row 0 (padding) fixed at zero (``embedding(..., zero_pad=True, scale=True)``),
   plus a learned positional embedding over the ``max_len`` slots of the left-padded window;
   dropout; multiply by the timeline mask (padding positions are zero vectors).
2. ``num_blocks`` times: ``q = LN(x)``; ``x = q + Attn(Q=q, K=x, V=x)`` (only the query is layer-normed and the
   residual is taken from the normed query, ``multihead_attention(queries=normalize(seq), keys=seq)``);
   ``x = FFN(LN(x))`` where the point-wise feed-forward (two kernel-size-1 convolutions, ReLU, dropout) adds its own
   input back (``feedforward`` ends with ``outputs += inputs``); multiply by the timeline mask.
   Attention is causal, keys at padding positions are masked, rows of padding queries are zeroed,
   and dropout acts on the attention weights, all as in ``modules.multihead_attention``.
3. A final LayerNorm; the score of item ``i`` at position ``t`` is ``<h_t, E[i]>`` with the shared item table.

Options from later work: ``norm_first=True`` gives the usual pre-LN block (Q = K = V = LN(x), residual on x), as in
pmixer/SASRec.pytorch ``--norm_first``; ``num_heads > 1`` splits d into heads; ``encoder="<block name>"`` puts
any registered core block (``seqlab.core.create_block``) in place of the attention sublayer, keeping the embedding,
the feed-forward, the norms and the head. Core blocks run on right-aligned-to-left sequences (real items first), so
their causal state never sees padding and outputs at real positions do not depend on how much padding there is.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from seqlab.core.registry import create_block, register_model
from torch import nn

_MASK_VALUE = -(2.0**32) + 1  # the value kang205/SASRec writes into masked attention logits (finite: no NaN rows)


class PointWiseFeedForward(nn.Module):
    """Two kernel-size-1 convolutions with ReLU and dropout, plus the residual (kang205 ``modules.feedforward``)."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        y = self.dropout(F.relu(self.conv1(x.transpose(1, 2))))
        y = self.dropout(self.conv2(y)).transpose(1, 2)
        return x + y


class CausalSelfAttention(nn.Module):
    """Causal multi-head attention with key masking, query masking and attention-weight dropout.

    Mirrors kang205 ``modules.multihead_attention``: biased linear Q/K/V projections, scaled dot product, padded keys
    and future keys masked with ``-2**32 + 1``, softmax, padding query rows zeroed, dropout, weighted sum.
    It does not add the residual (the block does) and has no output projection (neither has the original).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attend ``queries`` [B, T, D] over ``keys`` [B, T, D]; ``mask`` [B, T] is True at real items."""
        B, T, D = queries.shape
        H = self.num_heads
        q = self.q(queries).view(B, T, H, D // H).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k(keys).view(B, T, H, D // H).transpose(1, 2)
        v = self.v(keys).view(B, T, H, D // H).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(D // H)  # [B, H, T, T]
        causal = torch.ones(T, T, dtype=torch.bool, device=queries.device).tril()
        allowed = causal & mask[:, None, None, :]  # future keys and padded keys are masked
        logits = logits.masked_fill(~allowed, _MASK_VALUE)
        weights = logits.softmax(dim=-1) * mask[:, None, :, None]  # query masking
        out = self.dropout(weights) @ v  # [B, H, T, Dh]
        return out.transpose(1, 2).reshape(B, T, D)


class _CoreMixer(nn.Module):
    """Runs a registered core block (a SequenceMixer) on left-padded input without letting it see the padding."""

    def __init__(self, name: str, d_model: int, dropout: float, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.block = create_block(name, d_model, **kwargs)
        if not getattr(self.block, "causal", True):
            raise ValueError(f"encoder={name!r} is not causal; SASRec needs a causal sequence mixer")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        pad = (~mask).sum(dim=1, keepdim=True)  # [B, 1] left-padding length
        t = torch.arange(T, device=x.device)[None, :]
        to_front = ((t + pad) % T)[..., None].expand_as(x)  # real items first, padding after
        y, _ = self.block(torch.gather(x, 1, to_front))
        back = ((t - pad) % T)[..., None].expand_as(x)
        return self.dropout(torch.gather(y, 1, back)) * mask[..., None]


class SASRecBlock(nn.Module):
    """One SASRec layer: sequence mixer sublayer then point-wise feed-forward, with SASRec or pre-LN norms."""

    def __init__(self, d_model: int, num_heads: int, dropout: float, norm_first: bool,
                 encoder: str, encoder_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn_norm = nn.LayerNorm(d_model, eps=1e-8)
        self.ffn_norm = nn.LayerNorm(d_model, eps=1e-8)
        if encoder == "attention":
            self.mixer: nn.Module = CausalSelfAttention(d_model, num_heads, dropout)
        else:
            self.mixer = _CoreMixer(encoder, d_model, dropout, encoder_kwargs)
        self.ffn = PointWiseFeedForward(d_model, dropout)

    def _mix(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if isinstance(self.mixer, CausalSelfAttention):
            return self.mixer(queries, keys, mask)
        return self.mixer(queries, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, D] (zero at padding), ``mask`` [B, T] True at real items."""
        q = self.attn_norm(x)
        if self.norm_first:
            x = x + self._mix(q, q, mask)
        else:  # kang205: Q = LN(x), K = V = x, residual on the normed query
            x = q + self._mix(q, x, mask)
        x = self.ffn(self.ffn_norm(x))  # the FFN adds its (normed) input back, as in kang205
        return x * mask[..., None]


class SASRec(nn.Module):
    """SASRec next-item model; plain ``nn.Module``, usable without Lightning.

    Item ids are ``1..num_items``; 0 is padding. Inputs are left-padded ``[B, T]`` id tensors with
    ``T <= max_len``; positions are counted from the right end of the window (slot ``max_len - 1`` is the most
    recent item), which is what kang205's left-padded ``maxlen`` window gives.

    Args:
        num_items: number of real items (the embedding has ``num_items + 1`` rows).
        d_model: hidden size (paper: 50).
        num_blocks: number of layers (paper: 2).
        num_heads: attention heads (paper: 1).
        max_len: window length (paper: 200 for MovieLens, 50 for sparse data).
        dropout: dropout rate (paper: 0.2 for MovieLens, 0.5 for sparse data).
        norm_first: pre-LN blocks instead of the paper's query-only LayerNorm.
        encoder: ``"attention"`` (the paper) or the name of a registered core block (e.g. ``"mamba"``, ``"gla"``,
            ``"deltanet"``, ``"lstm"``; see ``seqlab.core.list_blocks()``).
        encoder_kwargs: extra keyword arguments for ``create_block``.
    """

    def __init__(self, num_items: int, d_model: int = 50, num_blocks: int = 2, num_heads: int = 1,
                 max_len: int = 200, dropout: float = 0.2, norm_first: bool = False,
                 encoder: str = "attention", encoder_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.num_items = num_items
        self.d_model = d_model
        self.max_len = max_len
        self.encoder = encoder
        self.item_emb = nn.Embedding(num_items + 1, d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(d_model, num_heads, dropout, norm_first, encoder, dict(encoder_kwargs or {}))
            for _ in range(num_blocks)
        )
        self.last_norm = nn.LayerNorm(d_model, eps=1e-8)
        self._init_weights()

    def _init_weights(self) -> None:
        """Glorot-uniform tables and projections with zero biases (TF1's default in kang205); core blocks keep theirs."""
        core = {id(m) for blk in self.blocks if isinstance(blk.mixer, _CoreMixer) for m in blk.mixer.block.modules()}
        for m in self.modules():
            if id(m) not in core and isinstance(m, nn.Linear | nn.Conv1d | nn.Embedding):
                nn.init.xavier_uniform_(m.weight)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def check_items(self, items: torch.Tensor, name: str = "seq") -> None:
        """Raise ValueError if ``items`` holds ids outside ``[0, num_items]`` or is not an integer tensor."""
        if items.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"{name} must be an integer tensor of item ids, got dtype {items.dtype}")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) > self.num_items):
            raise ValueError(f"{name} holds item ids outside [0, {self.num_items}] (0 is padding): "
                             f"min {int(items.min())}, max {int(items.max())}")

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, T, D]`` for left-padded item ids ``seq`` ``[B, T]``; h_t depends on items <= t only."""
        if seq.dim() != 2:
            raise ValueError(f"seq must be [B, T] item ids, got shape {tuple(seq.shape)}")
        T = seq.shape[1]
        if T > self.max_len:
            raise ValueError(f"seq has length {T} > max_len={self.max_len}; keep the last max_len items")
        self.check_items(seq)
        seq = seq.long()
        mask = seq != 0  # timeline mask [B, T]
        x = self.item_emb(seq) * self.d_model**0.5
        pos = torch.arange(self.max_len - T, self.max_len, device=seq.device)
        x = self.emb_dropout(x + self.pos_emb(pos)[None]) * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return self.last_norm(x)

    def score(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``<hidden, E[items]>``: ``hidden`` [..., D], ``items`` [..., K] -> [..., K]."""
        return torch.einsum("...d,...kd->...k", hidden, self.item_emb(items))

    def score_all(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every id ``0..num_items`` for ``hidden`` [..., D] -> [..., num_items + 1] (id 0 is padding)."""
        return hidden @ self.item_emb.weight.t()

    @torch.no_grad()
    def recommend(self, seq: torch.Tensor, k: int = 10, exclude_seen: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` next items for each left-padded history in ``seq`` [B, T].

        Returns:
            ``(items, scores)``, both ``[B, k]``; padding and (by default) the items in ``seq`` are never returned.
        """
        if not 1 <= k <= self.num_items:
            raise ValueError(f"k must be in [1, num_items={self.num_items}], got {k}")
        scores = self.score_all(self(seq)[:, -1])
        scores[:, 0] = float("-inf")
        if exclude_seen:
            scores.scatter_(1, seq.long(), float("-inf"))
        top = scores.topk(k, dim=1)
        return top.indices, top.values


@register_model("recsys.sasrec")
def sasrec(num_items: int, **kwargs: Any) -> SASRec:
    """Registered builder: ``create_model("recsys.sasrec", num_items=..., **SASRec kwargs)``."""
    return SASRec(num_items, **kwargs)
