import pytest
import torch
from seqlab.core.registry import list_blocks
from seqlab.recsys import SASRec
from seqlab.recsys.models.sasrec import CausalSelfAttention


def _model(**kw):
    torch.manual_seed(0)
    return SASRec(30, d_model=16, num_blocks=2, max_len=12, dropout=0.0, **kw).eval()


def test_import_without_lightning():
    import subprocess
    import sys

    code = "import sys; from seqlab.recsys import SASRec; assert 'lightning' not in sys.modules, 'lightning loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shapes_and_scores():
    m = _model()
    seq = torch.randint(1, 31, (3, 12))
    h = m(seq)
    assert h.shape == (3, 12, 16)
    assert m.score_all(h[:, -1]).shape == (3, 31)
    assert m.score(h, torch.randint(1, 31, (3, 12, 4))).shape == (3, 12, 4)
    torch.testing.assert_close(m.score(h[:, -1], torch.arange(31).expand(3, 31)), m.score_all(h[:, -1]))


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"num_heads": 2}, {"encoder": "lstm"}])
def test_causal(kw):
    m = _model(**kw)
    seq = torch.randint(1, 31, (2, 12))
    h = m(seq)
    t = 6
    changed = seq.clone()
    changed[:, t + 1:] = torch.randint(1, 31, (2, 12 - t - 1))
    h2 = m(changed)
    torch.testing.assert_close(h[:, : t + 1], h2[:, : t + 1])
    assert not torch.allclose(h[:, t + 1:], h2[:, t + 1:])


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"encoder": "lstm"}])
def test_left_padding_does_not_change_real_positions(kw):
    m = _model(**kw)
    items = torch.randint(1, 31, (1, 5))
    short = torch.cat([torch.zeros(1, 2, dtype=torch.long), items], 1)  # T=7
    long = torch.cat([torch.zeros(1, 7, dtype=torch.long), items], 1)  # T=12
    torch.testing.assert_close(m(short)[:, -5:], m(long)[:, -5:], rtol=1e-5, atol=1e-5)


def test_padding_embedding_and_outputs():
    m = _model()
    assert torch.count_nonzero(m.item_emb.weight[0]) == 0
    seq = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    m(seq).sum().backward()
    assert torch.count_nonzero(m.item_emb.weight.grad[0]) == 0


def test_query_only_layernorm_structure():
    """kang205: Q = LN(x), K = V = x (un-normed), residual on the normed query."""
    m = _model()
    block = m.blocks[0]
    seen = {}
    block.mixer.register_forward_hook(lambda mod, args, out: seen.update(q=args[0], k=args[1], out=out))
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    y = block(x, mask)
    torch.testing.assert_close(seen["q"], block.attn_norm(x))
    torch.testing.assert_close(seen["k"], x)
    mid = block.attn_norm(x) + seen["out"]
    torch.testing.assert_close(y, block.ffn(block.ffn_norm(mid)))
    assert isinstance(block.mixer, CausalSelfAttention)
    assert sum(isinstance(mod, torch.nn.LayerNorm) for mod in m.modules()) == 2 * 2 + 1


def test_pre_norm_uses_normed_keys():
    m = _model(norm_first=True)
    block = m.blocks[0]
    seen = {}
    block.mixer.register_forward_hook(lambda mod, args, out: seen.update(q=args[0], k=args[1]))
    x = torch.randn(2, 12, 16)
    block(x, torch.ones(2, 12, dtype=torch.bool))
    torch.testing.assert_close(seen["k"], block.attn_norm(x))


def test_embedding_scaled_by_sqrt_d():
    m = SASRec(30, d_model=16, num_blocks=0, max_len=4, dropout=0.0).eval()
    seq = torch.tensor([[0, 1, 2, 3]])
    with torch.no_grad():
        m.pos_emb.weight.zero_()
    expected = m.item_emb(seq) * 4.0
    torch.testing.assert_close(m(seq)[0, 1:], m.last_norm(expected)[0, 1:])


@pytest.mark.parametrize("bad", [torch.tensor([[31, 1]]), torch.tensor([[-1, 1]])])
def test_out_of_range_items_raise(bad):
    with pytest.raises(ValueError, match="outside"):
        _model()(bad)


def test_bad_shapes_raise():
    m = _model()
    with pytest.raises(ValueError, match="max_len"):
        m(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="\\[B, T\\]"):
        m(torch.ones(13, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        m(torch.ones(1, 3))
    with pytest.raises(ValueError, match="divisible"):
        SASRec(30, d_model=10, num_heads=3)


def test_recommend_excludes_seen():
    m = _model()
    seq = torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    items, _ = m.recommend(seq, k=5)
    assert items.shape == (1, 5) and not set(items[0].tolist()) & set(range(11))


@pytest.mark.parametrize("name", [b for b in ("lstm", "gla", "mamba", "deltanet") if b in list_blocks()])
def test_core_block_encoders(name):
    kw = {"num_heads": 1} if name in ("gla", "deltanet") else {}
    torch.manual_seed(0)
    m = SASRec(20, d_model=16, num_blocks=1, max_len=6, dropout=0.0, encoder=name, encoder_kwargs=kw)
    seq = torch.tensor([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])
    h = m(seq)
    assert h.shape == (2, 6, 16) and torch.isfinite(h).all()
    h.sum().backward()
    changed = seq.clone()
    changed[:, -1] = 11
    torch.testing.assert_close(m(changed)[:, :-1], h[:, :-1])
