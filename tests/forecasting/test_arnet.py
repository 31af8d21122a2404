"""AR-Net, classic least-squares AR and the paper's synthetic AR data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from seqlab.core.registry import create_model
from seqlab.forecasting.data.synthetic_ar import (
    PAPER_SPARSE_AR,
    ar_process,
    ar_windows,
    coefficient_vector,
    is_stationary,
    random_ar_coefficients,
    sparse_ar_frame,
    sparse_ar_process,
    stpe,
)
from seqlab.forecasting.models.arnet import (
    ARNet,
    ClassicAR,
    ar_sparsity_penalty,
    ar_sparsity_terms,
    fit_arnet,
    fit_arnets,
    lambda_warmup,
    sparsity_lambda,
)
from seqlab.forecasting.models.arnet_experiment import (
    SCHEDULES,
    best_minimiser,
    coordinate_minimise,
    estimate_noise,
    format_table,
    least_squares,
    make_data,
    make_split,
    objective,
    run,
    summarise,
)


def test_penalty_matches_formula():
    w = torch.tensor([0.0, 0.001, -0.05, 0.3, -1.0, 4.0])
    want = np.mean([2.0 / (1.0 + math.exp(-3.0 * (abs(v) + 1e-12) ** (1 / 3))) - 1.0 for v in w.tolist()])
    assert ar_sparsity_penalty(w).item() == pytest.approx(want, rel=1e-6)
    assert ar_sparsity_penalty(torch.zeros(5)).item() == pytest.approx(0.0, abs=1e-3)
    # c1, c2 are used: a different pair gives a different value
    assert ar_sparsity_penalty(w, c1=2.0, c2=2.0).item() != pytest.approx(want, rel=1e-3)
    # finite gradient at zero
    z = torch.zeros(3, requires_grad=True)
    ar_sparsity_penalty(z).backward()
    assert torch.isfinite(z.grad).all()


def test_penalty_hand_values():
    """2 / (1 + exp(-3 |w|^(1/3))) - 1 = tanh(1.5 |w|^(1/3)); cube roots of 0.008, 0.125, 1, 8 are exact."""
    w = torch.tensor([0.008, -0.125, 1.0, 8.0], dtype=torch.float64)
    hand = [0.2913126124515909, 0.6351489523872873, 0.9051482536448664, 0.9950547536867305]  # tanh(.3, .75, 1.5, 3)
    assert ar_sparsity_terms(w).tolist() == pytest.approx(hand, abs=1e-9)
    assert ar_sparsity_penalty(w).item() == pytest.approx(sum(hand) / 4, abs=1e-9)
    # the 1e-12 guard: R(0) = tanh(1.5 * 1e-4), zero to 4 decimals
    assert ar_sparsity_terms(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(1.5e-4, rel=1e-6)
    # c1 = 2, c2 = 2 at w = 0.25: 2 / (1 + exp(-2 * 0.5)) - 1 = tanh(0.5)
    assert ar_sparsity_terms(torch.tensor([0.25], dtype=torch.float64), 2.0, 2.0).item() == pytest.approx(
        0.46211715726000974, abs=1e-9)


def test_stpe_hand_value():
    est, true = np.array([0.25, 0.0, 0.3, 0.1]), np.array([0.2, 0.0, 0.3, 0.0])
    # 100 * (0.05 + 0.1) / (0.65 + 0.5)
    assert stpe(est, true) == pytest.approx(100 * 0.15 / 1.15, rel=1e-6)
    assert stpe(true, true) == 0.0
    assert stpe(-true, true) == pytest.approx(100.0, rel=1e-6)


def test_lambda_and_warmup():
    assert sparsity_lambda(3 / 20) == pytest.approx(0.02 * (20 / 3 - 1))
    assert sparsity_lambda(3 / 20) == pytest.approx(0.1133333, abs=1e-7)  # 0.02 * 17 / 3
    assert sparsity_lambda(3 / 20, scale=0.1) == pytest.approx(17 / 30)
    assert sparsity_lambda(None) == 0.0 and sparsity_lambda(1.0) == 0.0
    with pytest.raises(ValueError, match="sparsity"):
        sparsity_lambda(0.0)
    assert [lambda_warmup(e, 4) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert lambda_warmup(0, 0) == 1.0


def test_regularization_loss_schedule():
    m = ARNet(n_lags=10, sparsity=0.2, lambda_delay_epochs=4)
    r = ar_sparsity_penalty(m.ar_weights).item()
    lam = 0.02 * (1 / 0.2 - 1)
    assert m.regularization_loss(epoch=0).item() == 0.0
    assert m.regularization_loss(epoch=2).item() == pytest.approx(lam * 0.5 * r, rel=1e-6)
    m.set_epoch(7)
    assert m.regularization_loss().item() == pytest.approx(lam * r, rel=1e-6)
    assert ARNet(n_lags=10).regularization_loss().item() == 0.0
    explicit = ARNet(n_lags=10, lambda_reg=0.5, sparsity=0.2)
    want = 0.5 * ar_sparsity_penalty(explicit.ar_weights).item()
    assert explicit.regularization_loss().item() == pytest.approx(want, rel=1e-6)


def test_shapes_and_coefficient_order():
    m = ARNet(n_lags=4, n_forecasts=3)
    x = torch.randn(5, 9, 2)
    assert m(x).shape == (5, 3, 2)
    assert m(x[..., 0]).shape == (5, 3, 1)
    with torch.no_grad():
        m.ar_weights.zero_()
        m.ar_weights[0, -1] = 0.7  # newest input -> lag 1
        m.ar_weights[0, 0] = -0.2  # oldest of 4 inputs -> lag 4
    coef = m.ar_coefficients
    assert coef.shape == (3, 4)
    assert coef[0].tolist() == pytest.approx([0.7, 0.0, 0.0, -0.2])
    out = m(x)
    assert torch.allclose(out[:, 0, :], 0.7 * x[:, -1, :] - 0.2 * x[:, -4, :], atol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_lags"):
        ARNet(n_lags=0)
    with pytest.raises(ValueError, match="sparsity"):
        ARNet(n_lags=3, sparsity=1.5)
    with pytest.raises(ValueError, match="n_lags=8"):
        ARNet(n_lags=8)(torch.randn(2, 5, 1))
    with pytest.raises(ValueError, match=r"\[B, L, C\]"):
        ARNet(n_lags=2)(torch.randn(2, 5, 1, 1))
    with pytest.raises(ValueError, match="linear"):
        _ = ARNet(n_lags=3, ar_layers=[8]).ar_coefficients
    with pytest.raises(ValueError, match="needs n_lags"):
        ClassicAR(n_lags=10, n_forecasts=2).fit(torch.randn(8))


def test_deep_ar_forward_and_reg():
    m = ARNet(n_lags=6, n_forecasts=2, ar_layers=[16, 8], sparsity=0.5)
    assert m(torch.randn(3, 6, 4)).shape == (3, 2, 4)
    assert m.ar_weights.shape == (16, 6)
    assert m.regularization_loss(epoch=1).item() > 0


def test_classic_ar_exact_on_noise_free_data():
    a = np.array([0.5, -0.3, 0.2])
    series = ar_process(300, a, noise_std=0.0, burn_in=0, seed=1, zero_mean=False)
    m = ClassicAR(n_lags=3).fit(torch.tensor(series))
    assert np.allclose(m.ar_coefficients[0].numpy(), a, atol=1e-6)
    # direct 2-step coefficients: y_{t+2} = a1 y_{t+1} + a2 y_t + a3 y_{t-1} with y_{t+1} substituted
    m2 = ClassicAR(n_lags=3, n_forecasts=2).fit(torch.tensor(series))
    two = np.array([a[0] * a[0] + a[1], a[0] * a[1] + a[2], a[0] * a[2]])
    assert np.allclose(m2.ar_coefficients[1].numpy(), two, atol=1e-6)
    x, y = ar_windows(series, 3, 2)
    pred = m2(torch.tensor(x, dtype=torch.float32)[..., None])[..., 0].numpy()
    assert np.allclose(pred, y, atol=1e-4)


def test_classic_ar_with_bias_and_channels():
    a = np.array([0.6, 0.0, -0.2])
    s = np.stack([ar_process(400, a, noise_std=0.0, burn_in=0, seed=k, zero_mean=False) for k in range(2)], -1)
    # x_t - mu = sum a_k (x_{t-k} - mu): intercept mu * (1 - sum a)
    m = ClassicAR(n_lags=3, bias=True).fit(torch.tensor(s + 2.0))
    assert np.allclose(m.ar_coefficients[0].numpy(), a, atol=1e-6)
    assert m.intercept.item() == pytest.approx(2.0 * (1 - a.sum()), abs=1e-5)


def test_arnet_recovers_sparse_coefficients():
    """Paper's sparse experiment at small scale: AR(3) at lags 1, 3, 10 inside p = 20."""
    series, true = sparse_ar_process(3000, PAPER_SPARSE_AR, n_lags=20, noise_std=1.0, seed=0)
    x, y = ar_windows(series, 20)
    torch.manual_seed(0)
    m = ARNet(n_lags=20, sparsity=3 / 20, lambda_delay_epochs=3)
    hist = fit_arnet(m, x, y, epochs=30, batch_size=64, lr=3e-3, lr_decay=0.9)
    assert hist[-1] < hist[0]
    est = m.ar_coefficients[0].numpy()
    assert np.allclose(est[[0, 2, 9]], [0.2, 0.3, -0.5], atol=0.06)
    others = np.delete(est, [0, 2, 9])
    assert np.abs(others).max() < 0.05
    ls = ClassicAR(n_lags=20).fit(torch.tensor(series)).ar_coefficients[0].numpy()
    assert stpe(est, true) < 8.0
    assert stpe(est, true) < stpe(ls, true)


def test_synthetic_generators():
    a = random_ar_coefficients(3, seed=0)
    assert a.shape == (3,) and is_stationary(a)
    assert not is_stationary([1.2])
    s, coef = sparse_ar_process(500, {2: 0.4}, n_lags=5, seed=3)
    assert s.shape == (500,) and coef.tolist() == [0.0, 0.4, 0.0, 0.0, 0.0]
    assert abs(s.mean()) < 1e-9
    assert coefficient_vector([0.1, 0.2], 4).tolist() == [0.1, 0.2, 0.0, 0.0]
    with pytest.raises(ValueError, match="exceeds"):
        coefficient_vector({5: 0.1}, 3)
    x, y = ar_windows(np.arange(10.0), 3, 2)
    assert x.shape == (6, 3) and y.shape == (6, 2) and x[0].tolist() == [0, 1, 2] and y[0].tolist() == [3, 4]
    with pytest.raises(ValueError, match="shorter"):
        ar_windows(np.arange(4.0), 3, 2)
    assert stpe(np.array([0.2, 0.0]), np.array([0.2, 0.0])) == pytest.approx(0.0)
    assert stpe(np.array([0.0, 0.1]), np.array([0.1, 0.0])) == pytest.approx(100.0, rel=1e-6)
    df = sparse_ar_frame(n=100)
    assert list(df.columns) == ["date", "value"] and len(df) == 100


def test_registered_builders():
    m = create_model("forecasting.arnet", seq_len=12, pred_len=3, n_vars=2, sparsity=0.25)
    assert isinstance(m, ARNet) and m.n_lags == 12 and m.pred_len == 3
    c = create_model("forecasting.classic_ar", seq_len=12, pred_len=3)
    assert isinstance(c, ClassicAR) and c(torch.randn(2, 12, 1)).shape == (2, 3, 1)


def test_forecasting_task_adds_the_regulariser(tmp_path):
    import lightning as L
    from seqlab.forecasting import ForecastingDataModule, ForecastingTask

    dm = ForecastingDataModule(frame=sparse_ar_frame(n=400, seed=1), target="value", features="S", seq_len=20,
                               pred_len=1, split="ratio", ratios=(0.8, 0.1, 0.1), scale=False, batch_size=64)
    model = ARNet(n_lags=20, sparsity=0.15, lambda_delay_epochs=2)
    task = ForecastingTask(model, lr=1e-7, lr_schedule="none", patience=None, baselines=False)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                        default_root_dir=tmp_path)
    trainer.fit(task, datamodule=dm)
    reg = trainer.callback_metrics["train/reg"].item()  # last step of epoch 1: warm-up factor 1/2
    assert reg == pytest.approx(0.5 * sparsity_lambda(0.15) * ar_sparsity_penalty(model.ar_weights).item(), rel=1e-3)


def test_fit_arnets_is_exact_batched_twin_of_fit_arnet():
    """Each model of the batched run ends where fit_arnet alone would take it (own data, seed, lambda).

    The two differ only in float32 summation order (1-ulp gradients); near the regulariser's cusp at 0 Adam
    amplifies such differences over many steps, so the comparison uses 3 epochs (15 steps).
    """
    rng = np.random.default_rng(0)
    xs = torch.tensor(rng.normal(size=(3, 70, 6)), dtype=torch.float32)
    ys = torch.tensor(rng.normal(size=(3, 70, 2)), dtype=torch.float32)
    lams, seeds = [0.0, 0.05, 0.3], [4, 5, 6]

    def build(i):
        torch.manual_seed(10 + i)
        return ARNet(6, n_forecasts=2, bias=True, lambda_reg=lams[i], lambda_delay_epochs=3)

    alone = [build(i) for i in range(3)]
    hist_alone = [fit_arnet(m, xs[i], ys[i], epochs=3, batch_size=16, lr=1e-2, lr_decay=0.8, seed=seeds[i])
                  for i, m in enumerate(alone)]
    batched = [build(i) for i in range(3)]
    hist = fit_arnets(batched, xs, ys, epochs=3, batch_size=16, lr=1e-2, lr_decay=0.8, seeds=seeds)
    for a, b, ha, hb in zip(alone, batched, hist_alone, hist, strict=True):
        assert torch.allclose(a.net[0].weight, b.net[0].weight, atol=1e-5)
        assert torch.allclose(a.net[0].bias, b.net[0].bias, atol=1e-5)
        assert ha == pytest.approx(hb, rel=1e-4)
    # the models moved, and the regularised ones differently from the plain one
    assert not torch.allclose(batched[0].net[0].weight, build(0).net[0].weight)
    with pytest.raises(ValueError, match="equal n_lags"):
        fit_arnets([ARNet(6), ARNet(5)], xs[:2], ys[:2])
    with pytest.raises(ValueError, match="need x"):
        fit_arnets(batched, xs[:2], ys[:2])


def test_coordinate_minimiser_limits_and_objective():
    x, y, true = make_data(seed=3, n_train=400, n_lags=12)
    assert x.shape == (400, 12) and y.shape == (400,)
    assert np.flatnonzero(true).tolist() == [0, 2, 9] and true[[0, 2, 9]].tolist() == [0.2, 0.3, -0.5]
    ls = least_squares(x, y)
    # lambda = 0: the exact minimiser is least squares (to the grid step)
    assert np.allclose(coordinate_minimise(x, y, lam=0.0, sweeps=200), ls, atol=2e-4)
    # a huge lambda: every coefficient at exactly zero
    assert not coordinate_minimise(x, y, lam=50.0).any()
    # restricted least squares has zeros off the support and matches lstsq on it
    oracle = least_squares(x, y, (1, 3))
    assert np.delete(oracle, [0, 2]).tolist() == [0.0] * 10
    assert np.allclose(oracle[[0, 2]], np.linalg.lstsq(x[:, ::-1][:, [0, 2]], y, rcond=None)[0])
    # objective = MSE + lambda * mean penalty, by hand for w = 0
    assert objective(np.zeros(12), x, y, lam=0.4) == pytest.approx(np.mean(y**2) + 0.4 * 1.5e-4, rel=1e-6)
    # the minimiser does not do worse than least squares on its own objective
    lam = 0.3
    w = coordinate_minimise(x, y, lam)
    assert objective(w, x, y, lam) <= objective(ls, x, y, lam) + 1e-9
    # a start on the grid that is already a fixed point stays put; best_minimiser is no worse than any start
    assert np.array_equal(coordinate_minimise(x, y, lam, start=w), w)
    wb, which = best_minimiser(x, y, lam)
    assert which in ("zero", "oracle", "least_squares")
    for start in (None, oracle, ls):
        assert objective(wb, x, y, lam) <= objective(coordinate_minimise(x, y, lam, start=start), x, y, lam) + 1e-12


def test_paper_schedules_follow_the_authors_example():
    """example.py: 10 epochs x 782 batches of 128 at lr 2e-4, x0.9 per epoch, ramp over all epochs."""
    a = SCHEDULES["authors_steps"]
    steps_paper = 10 * math.ceil(100_000 / 128)
    steps_ours = a["epochs"] * math.ceil(1000 / a["batch_size"])
    assert abs(steps_ours - steps_paper) / steps_paper < 0.01
    assert a["lr_decay"] ** a["epochs"] == pytest.approx(0.9**10, rel=1e-9)
    assert a["lambda_delay_epochs"] == a["epochs"] and a["lr"] == 2e-4


def test_example_verbatim_schedule_is_the_authors_train_config():
    """ourownstory/AR-Net example.py train_config: lr 2e-4, lr_decay 0.9, 10 epochs, batch 128, lambda_delay 10."""
    assert SCHEDULES["example_verbatim"] == {"epochs": 10, "batch_size": 128, "lr": 2e-4, "lr_decay": 0.9,
                                             "lambda_delay_epochs": 10}


def test_make_split_follows_init_ar_dataset():
    """data_loader.init_ar_dataset: n_samples = n_train / 0.8 windows from one (n_samples + p)-step draw
    (zero state, no burn-in), zero-mean over the whole draw, first 80 % of the windows train."""
    d = make_split(seed=7, n_train=1000, n_lags=20)
    assert d["x_train"].shape == (1000, 20) and d["y_train"].shape == (1000,)
    assert d["x_test"].shape == (250, 20) and d["y_test"].shape == (250,)
    # rebuild the 1270-step series as the authors do (statsmodels ArmaProcess.from_coeffs(...).generate_sample,
    # burnin=0), fed with the same innovations, then demean
    a = np.zeros(20)
    a[[0, 2, 9]] = [0.2, 0.3, -0.5]
    arma = pytest.importorskip("statsmodels.tsa.arima_process").ArmaProcess.from_coeffs(a, [], nobs=1270)
    series = arma.generate_sample(1270, scale=1.0, distrvs=np.random.default_rng(7).standard_normal)
    by_hand = lfilter([1.0], np.r_[1.0, -a], np.random.default_rng(7).normal(0.0, 1.0, size=1270))
    assert np.allclose(series, by_hand)
    series = series - series.mean()
    assert np.allclose(d["x_train"][0], series[:20]) and d["y_train"][0] == pytest.approx(series[20])
    assert np.allclose(d["x_test"][-1], series[1249:1269]) and d["y_test"][-1] == pytest.approx(series[1269])
    assert d["y_train"][-1] == pytest.approx(d["x_test"][0][-1])  # test windows continue the training ones
    assert d["true"].tolist() == a.tolist()
    # make_data is the training part; noise_std scales the series (the sTPE of least squares is scale-free)
    x, y, true = make_data(seed=7)
    assert np.array_equal(x, d["x_train"]) and np.array_equal(y, d["y_train"])
    d01 = make_split(seed=7, noise_std=0.1)
    assert np.allclose(d01["x_train"], 0.1 * d["x_train"])
    assert np.allclose(least_squares(d01["x_train"], d01["y_train"]), least_squares(x, y))
    with pytest.raises(ValueError, match="n_samples"):
        make_split(seed=0, n_train=1001)


def test_summarise_hand_values():
    s = summarise([1.0, 2.0, 3.0, 4.0, 10.0])
    assert s["mean"] == pytest.approx(4.0) and s["median"] == pytest.approx(3.0)
    assert s["sem"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1) / math.sqrt(5))
    assert s["p10"] == pytest.approx(1.4) and s["p90"] == pytest.approx(7.6)
    assert (s["min"], s["max"]) == (1.0, 10.0)


def test_run_rows_and_table_small():
    """Two seeds, the authors' verbatim schedule only: row layout, test MSE against the noise floor."""
    res = run([0, 1], schedules=("example_verbatim",), c_lambdas=(), exact=(0.02,), log=lambda *_: None)
    names = [r["kind"] for r in res["rows"]]
    assert names == ["least_squares", "oracle", "arnet", "coordinate_minimiser"]
    assert res["n_train"] == 1000 and res["n_test"] == 250 and res["noise_std"] == 1.0
    ls, oracle, arnet, exact = res["rows"]
    # least squares and the oracle predict the test windows at about the noise variance (1.0)
    for r in (ls, oracle):
        assert 0.8 < np.mean(r["test_mse"]) < 1.25
    assert oracle["stpe_mean"] < ls["stpe_mean"]
    # example.py's train_config gives 80 Adam steps at lr 2e-4 on 1000 windows: the weights barely leave their
    # random init, far from least squares
    assert arnet["stpe_mean"] > 60 and np.mean(arnet["test_mse"]) > np.mean(ls["test_mse"]) + 0.1
    assert exact["stpe_summary"]["min"] <= exact["stpe_mean"] <= exact["stpe_summary"]["max"]
    text = format_table(res)
    assert "example_verbatim" in text and "1000 training / 250 test windows" in text


def test_estimate_noise_and_noise_scaled_rows():
    """ourownstory/AR-Net v1.0: est_noise = mean |x_t - x_{t-1}| of the series; lambda = 0.02 est_noise (1/s - 1)
    (v1_0/example_ar_net.ipynb prints reg lam 0.005949 for est_noise 0.12748 and s = 0.3)."""
    assert estimate_noise(np.array([0.0, 1.0, -1.0, -1.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        estimate_noise(np.array([1.0]))
    assert sparsity_lambda(0.3, scale=0.02) * 0.1274848566033341 == pytest.approx(0.005949293308155593)
    d = make_split(seed=3)
    series = np.r_[d["x_train"][0], d["y_train"], d["y_test"]]  # the whole 1270-step draw
    assert d["est_noise"] == pytest.approx(estimate_noise(series))
    res = run([0, 1], schedules=(), c_lambdas=(), exact=(), noise_scaled=("example_verbatim",),
              log=lambda *_: None)
    kinds = [r["kind"] for r in res["rows"]]
    assert kinds == ["least_squares", "oracle", "arnet_noise_scaled", "coordinate_minimiser_noise_scaled"]
    arnet, exact = res["rows"][2:]
    noise = [make_split(s)["est_noise"] for s in (0, 1)]
    assert arnet["est_noise"] == pytest.approx(noise) and all(1.0 < e < 1.5 for e in noise)
    # the objective column is evaluated at each series' own lambda
    d0 = make_split(0)
    lam0 = sparsity_lambda(3 / 20, scale=0.02) * noise[0]
    ref = best_minimiser(d0["x_train"], d0["y_train"], lam0)[0]
    assert exact["objective"][0] == pytest.approx(objective(ref, d0["x_train"], d0["y_train"], lam0))
    assert "est_noise" in format_table(res)
