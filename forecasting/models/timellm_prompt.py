"""Prompt-as-Prefix of Time-LLM (Jin et al., ICLR 2024, Section 3.1; ``KimMeen/Time-LLM`` models/TimeLLM.py).

Each (normalised) input series gets a text prefix with a dataset description, the task, and input
statistics: min, max, median, the sign of the summed first differences ("upward"/"downward") and the top-5
lags of the FFT autocorrelation. The string is built exactly as the repository's ``forecast`` does,
including its markers ``<|start_prompt|>`` / ``<|<end_prompt>|>`` and the missing space between the
description and "Task description".
"""
from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_DESCRIPTION = ("The Electricity Transformer Temperature (ETT) is a crucial indicator in the electric "
                       "power long-term deployment.")
"""The repository's fallback description (used when ``--prompt_domain`` is 0)."""

ETT_DESCRIPTION = (
    "The Electricity Transformer Temperature (ETT) is a crucial indicator in the electric power long-term "
    "deployment. This dataset consists of 2 years data from two separated counties in China. To explore the "
    "granularity on the Long sequence time-series forecasting (LSTF) problem, different subsets are created, "
    "{ETTh1, ETTh2} for 1-hour-level and ETTm1 for 15-minutes-level. Each data point consists of the target "
    "value \u201doil temperature\u201d and 6 power load features. The train/val/test is 12/4/4 months.")
"""``dataset/prompt_bank/ETT.txt`` of the repository (used with ``--prompt_domain 1``)."""


def top_lags(x: Tensor, top_k: int = 5) -> Tensor:
    """Top-``k`` lags of the circular autocorrelation computed with the FFT (repository ``calcute_lags``).

    Args:
        x: series ``[B, T, 1]`` (or ``[B, T, C]``: the correlation is averaged over channels).
        top_k: number of lags.

    Returns:
        lag indices ``[B, top_k]`` in decreasing correlation order (lag 0 comes first for any non-zero series).
    """
    if x.dim() != 3:
        raise ValueError(f"top_lags: x must be [B, T, C], got shape {tuple(x.shape)}")
    if top_k > x.shape[1]:
        raise ValueError(f"top_lags: top_k={top_k} exceeds the series length {x.shape[1]}")
    f = torch.fft.rfft(x.permute(0, 2, 1).contiguous().float(), dim=-1)
    corr = torch.fft.irfft(f * torch.conj(f), dim=-1)  # [B, C, T'] (T' = 2*(T//2))
    return torch.topk(corr.mean(dim=1), top_k, dim=-1).indices


def input_statistics(x: Tensor, top_k: int = 5) -> dict[str, Tensor]:
    """Min, max, median, trend (sum of first differences) and top lags of ``x [B, T, 1]``, per row."""
    return {
        "min": torch.min(x, dim=1).values[:, 0],
        "max": torch.max(x, dim=1).values[:, 0],
        "median": torch.median(x, dim=1).values[:, 0],
        "trend": x.diff(dim=1).sum(dim=1)[:, 0],
        "lags": top_lags(x, top_k),
    }


def build_prompts(x: Tensor, pred_len: int, seq_len: int, description: str = DEFAULT_DESCRIPTION,
                  top_k: int = 5) -> list[str]:
    """The Prompt-as-Prefix strings for a batch of univariate series ``x [B, T, 1]``.

    Numbers are Python ``str`` of the float32 values (``tensor.tolist()``), as in the repository.
    """
    stats = input_statistics(x.detach(), top_k)
    mins, maxs, meds = stats["min"].tolist(), stats["max"].tolist(), stats["median"].tolist()
    trends, lags = stats["trend"].tolist(), stats["lags"].tolist()
    prompts = []
    for b in range(x.shape[0]):
        prompts.append(
            f"<|start_prompt|>Dataset description: {description}"
            f"Task description: forecast the next {pred_len} steps given the previous {seq_len} steps "
            "information; "
            "Input statistics: "
            f"min value {mins[b]}, "
            f"max value {maxs[b]}, "
            f"median value {meds[b]}, "
            f"the trend of input is {'upward' if trends[b] > 0 else 'downward'}, "
            f"top {top_k} lags are : {lags[b]}<|<end_prompt>|>"
        )
    return prompts
