import pytest
import torch
import torch.nn.functional as F
from seqlab.core.errors import ConfigError
from seqlab.forecasting import create_forecaster, list_forecasters
from seqlab.forecasting.models import TPGN, DLinear, SeasonalNaiveForecaster
from seqlab.forecasting.models.tpgn import GroupedConv1d


def _tpgn(**kw):
    args = {"seq_len": 96, "pred_len": 48, "n_vars": 3, "d_model": 8, "period": 24, "n_time_features": 4}
    args.update(kw)
    return TPGN(**args)


def test_tpgn_shapes_and_parameter_layout():
    torch.manual_seed(0)
    m = _tpgn()
    y = m(torch.randn(5, 96, 3), torch.rand(5, 96, 4) - 0.5)
    assert y.shape == (5, 48, 3)
    # the authors' parameter shapes (Water2sea/TPGN models/TPGN.py): grouped per variable
    assert m.long.hie.weight.shape == (3 * 8, 1 + 4, 96 // 24 - 1)
    assert m.long.gate.weight.shape == (3 * 2 * 8, 1 + 4 + 8, 1)
    assert m.long.fc.weight.shape == (3 * 8, 8, 4)
    assert m.short.fc_row.weight.shape == (3 * 8, 1 + 4, 24)
    assert m.head.weight.shape == (3 * 2, 2 * 8, 1)
    assert _tpgn(short_term=False)(torch.randn(2, 96, 3), torch.zeros(2, 96, 4)).shape == (2, 48, 3)


def test_tpgn_rejects_non_multiples_and_bad_inputs():
    with pytest.raises(ValueError, match="multiples of period=24"):
        TPGN(seq_len=100, pred_len=48, period=24)
    with pytest.raises(ValueError, match="multiples of period=24"):
        TPGN(seq_len=96, pred_len=50, period=24)
    with pytest.raises(ValueError, match="at least two rows"):
        TPGN(seq_len=24, pred_len=24, period=24)
    m = _tpgn()
    with pytest.raises(ValueError, match=r"x must have shape \[B, 96, 3\]"):
        m(torch.randn(2, 95, 3), torch.zeros(2, 95, 4))
    with pytest.raises(ValueError, match="pass x_mark"):
        m(torch.randn(2, 96, 3))
    with pytest.raises(ValueError, match="x_mark must have shape"):
        m(torch.randn(2, 96, 3), torch.zeros(2, 96, 3))


def test_hie_sees_only_earlier_rows():
    torch.manual_seed(0)
    m = _tpgn(n_vars=1)
    z = torch.randn(2, 4, 24, 1, 5)
    h = m.long._hie(z)
    z2 = z.clone()
    z2[:, 2] += 1.0  # change row 2
    h2 = m.long._hie(z2)
    assert torch.equal(h[:, :3], h2[:, :3])  # rows 0..2 depend on rows < r only
    assert not torch.allclose(h[:, 3], h2[:, 3])
    assert torch.allclose(h[:, 0], m.long.hie.bias.view(1, 1, 1, -1).expand_as(h[:, 0]))  # row 0: zero history


def test_tpgn_variables_are_independent_groups():
    torch.manual_seed(0)
    m = _tpgn()
    x, xm = torch.randn(2, 96, 3), torch.rand(2, 96, 4)
    x2 = x.clone()
    x2[..., 0] += 3.0
    y, y2 = m(x, xm), m(x2, xm)
    assert torch.allclose(y[..., 1:], y2[..., 1:]) and not torch.allclose(y[..., 0], y2[..., 0])


def test_tpgn_window_norm_is_affine_equivariant():
    torch.manual_seed(0)
    m = _tpgn(norm=True).double()
    x, xm = torch.randn(2, 96, 3, dtype=torch.float64), torch.rand(2, 96, 4, dtype=torch.float64)
    y = m(x, xm)
    y2 = m(5.0 * x + 7.0, xm)
    assert torch.allclose(y2, 5.0 * y + 7.0, atol=1e-3)


def test_grouped_conv_equals_conv1d():
    torch.manual_seed(0)
    for g, cin, cout, k, t in [(3, 5, 4, 3, 7), (1, 2, 6, 1, 1), (2, 3, 3, 4, 4)]:
        c = GroupedConv1d(g * cin, g * cout, k, groups=g)
        x = torch.randn(5, g * cin, t)
        torch.testing.assert_close(c(x), F.conv1d(x, c.weight, c.bias, groups=g))


def test_seasonal_naive_and_naive():
    x = torch.arange(10.0).view(1, 10, 1)
    m = SeasonalNaiveForecaster(seq_len=10, pred_len=7, season_length=3)
    assert m(x).flatten().tolist() == [7, 8, 9, 7, 8, 9, 7]
    assert create_forecaster("naive", seq_len=10, pred_len=3)(x).flatten().tolist() == [9, 9, 9]
    with pytest.raises(ValueError, match="season_length"):
        SeasonalNaiveForecaster(seq_len=4, pred_len=2, season_length=5)


def test_dlinear_matches_manual_decomposition():
    torch.manual_seed(0)
    m = DLinear(seq_len=30, pred_len=6, n_vars=2, kernel_size=5)
    x = torch.randn(3, 30, 2)
    padded = torch.cat([x[:, :1].repeat(1, 2, 1), x, x[:, -1:].repeat(1, 2, 1)], dim=1)
    trend = torch.stack([padded[:, i:i + 5].mean(1) for i in range(30)], dim=1)
    season = x - trend
    want = (m.linear_seasonal[0](season.transpose(1, 2)) + m.linear_trend[0](trend.transpose(1, 2))).transpose(1, 2)
    torch.testing.assert_close(m(x), want)
    ind = DLinear(seq_len=30, pred_len=6, n_vars=2, individual=True)
    assert len(ind.linear_seasonal) == 2 and ind(x).shape == (3, 6, 2)
    with pytest.raises(ValueError, match="odd"):
        DLinear(30, 6, kernel_size=4)


def test_dlinear_learns_a_linear_trend():
    torch.manual_seed(0)
    m = DLinear(seq_len=24, pred_len=4, n_vars=1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    t = torch.arange(200.0)
    series = torch.sin(t / 3.0)
    xs = torch.stack([series[i:i + 24] for i in range(150)]).unsqueeze(-1)
    ys = torch.stack([series[i + 24:i + 28] for i in range(150)]).unsqueeze(-1)
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(m(xs), ys)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3


def test_block_forecaster_and_registry():
    assert {"tpgn", "dlinear", "naive", "seasonal_naive", "block_forecaster"} <= set(list_forecasters())
    m = create_forecaster("block_forecaster", seq_len=48, pred_len=12, block="lstm", n_vars=2, d_model=16,
                          n_layers=1, patch_len=8, stride=4)
    assert m(torch.randn(3, 48, 2)).shape == (3, 12, 2)
    with pytest.raises(ConfigError, match="unknown block"):
        create_forecaster("block_forecaster", seq_len=48, pred_len=12, block="nope")
    with pytest.raises(ConfigError, match="unknown model"):
        create_forecaster("nope")
    with pytest.raises(ValueError, match="x must have shape"):
        m(torch.randn(3, 47, 2))
