"""AR-Net (Triebe et al. 2019, "AR-Net: A simple Auto-Regressive Neural Network for time-series") and
classic least-squares AR.

AR-Net is an AR(p) process written as a one-layer linear network trained by SGD, with a sparsity-inducing
regulariser on its weights (paper Section 3.3.1 "Sparse AR-Net"; ``ourownstory/AR-Net/training.py``
``train_batch`` and NeuralProphet 0.2-era ``utils.reg_func_ar``; later NeuralProphet releases changed the
constants to c1 = c2 = 2 and ``reg_lambda = 1e-4 * ar_reg``, which is not the paper's):

    R(theta) = 1/p * sum_i ( 2 / (1 + exp(-c1 * |theta_i|^(1/c2))) - 1 ),   c1 = 3, c2 = 3,

weighted by ``lambda = 0.02 * (1/s - 1)`` for an expected sparsity ``s`` (fraction of non-zero lags;
``utils.intelligent_regularization``) and warmed up linearly over the first ``lambda_delay_epochs`` epochs
(``lam * epoch / lambda_delay``). Like NeuralProphet's AR module it predicts ``n_forecasts`` steps at once
(one output unit per step) and may stack hidden layers (``ar_layers``); the regulariser always acts on the
first layer, whose weights are the AR coefficients of the linear model.

Inputs are ``[B, L, C]`` with ``L >= n_lags`` (the last ``n_lags`` steps are used, oldest first) and outputs
``[B, n_forecasts, C]``; channels share the AR weights (channel-independent).

Training contract: :meth:`ARNet.regularization_loss` returns the already weighted term
``lambda(epoch) * R(theta)`` to add to the data loss. ``ForecastingTask`` adds it when a model has this
method (``getattr(model, "regularization_loss", None)``) and passes ``epoch=self.current_epoch``;
:func:`fit_arnet` is the paper's plain PyTorch training loop (Adam, ``StepLR`` per epoch, shuffled
mini-batches, the last partial batch kept, as ``training.py`` ``train`` with a ``DataLoader(shuffle=True)``)
and :func:`fit_arnets` its exact batched twin for many seeds at once (used by
:mod:`~seqlab.forecasting.models.arnet_experiment`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from seqlab.core.registry import register_model
from torch import Tensor, nn


def ar_sparsity_terms(weights: Tensor, c1: float = 3.0, c2: float = 3.0) -> Tensor:
    """Per-weight terms ``2 / (1 + exp(-c1 |w|^(1/c2))) - 1`` of the AR-Net regulariser (same shape as ``weights``).

    ``ourownstory/AR-Net`` ``training.py`` ``train_batch`` (``torch.div(2.0, 1.0 + torch.exp(-3.0 *
    abs_weights.pow(1.0 / 3.0))) - 1.0``); the later fastai version names the constants ``c1``, ``c2``
    (``arnet/fastai_mods.py`` ``SparsifyAR``: "implementation in paper used c1 = 3.0, c2 = 3.0").
    ``1e-12`` inside the root keeps the gradient finite at 0 (as in NeuralProphet ``reg_func_ar``).
    """
    z = (weights.abs() + 1e-12).pow(1.0 / c2)
    return 2.0 / (1.0 + torch.exp(-c1 * z)) - 1.0


def ar_sparsity_penalty(weights: Tensor, c1: float = 3.0, c2: float = 3.0) -> Tensor:
    """The AR-Net regulariser ``R = mean(2 / (1 + exp(-c1 |w|^(1/c2))) - 1)`` (c1 = c2 = 3 in the paper).

    It is 0 at ``w = 0``, tends to 1 for large ``|w|`` and is steep near zero (its slope behaves like
    ``|w|^(1/c2 - 1)``), so small weights are pushed to zero while large ones are barely penalised. The mean
    over the ``p`` weights is the paper's ``1/p * sum`` (``torch.mean`` in ``training.py``).

    Args:
        weights: any shape; averaged over all entries.
        c1: steepness.
        c2: root order.
    """
    return ar_sparsity_terms(weights, c1, c2).mean()


def sparsity_lambda(sparsity: float | None, scale: float = 0.02) -> float:
    """Regularisation strength from an expected sparsity ``s`` in (0, 1]: ``scale * (1/s - 1)``.

    ``s`` is the fraction of lags with non-zero coefficients (3/20 in the paper's sparse experiment); ``None``
    or ``1`` means no regularisation (``ourownstory/AR-Net`` ``utils.intelligent_regularization``).

    Raises:
        ValueError: ``s`` outside (0, 1].
    """
    if sparsity is None:
        return 0.0
    if not 0.0 < sparsity <= 1.0:
        raise ValueError(f"sparsity must be in (0, 1], got {sparsity}")
    return scale * (1.0 / sparsity - 1.0)


def lambda_warmup(epoch: int, lambda_delay_epochs: int) -> float:
    """Linear warm-up factor ``min(1, epoch / lambda_delay_epochs)`` (1 when the delay is 0)."""
    if lambda_delay_epochs <= 0:
        return 1.0
    return min(1.0, max(0, epoch) / float(lambda_delay_epochs))


def _check_input(x: Tensor, n_lags: int, name: str) -> Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(-1)
    if x.dim() != 3:
        raise ValueError(f"{name}: x must be [B, L, C] (or [B, L]), got shape {tuple(x.shape)}")
    if x.shape[1] < n_lags:
        raise ValueError(f"{name}: x has {x.shape[1]} steps but n_lags={n_lags} are needed")
    return x


class ARNet(nn.Module):
    """AR-Net: a (sparse) AR(p) model as a linear network with multi-step outputs.

    Args:
        n_lags: AR order ``p`` (inputs used per window).
        n_forecasts: steps predicted at once (NeuralProphet ``n_forecasts``).
        ar_layers: hidden widths of an optional MLP (NeuralProphet "deep AR"); empty = linear AR-Net.
        bias: learn an intercept (the paper's AR processes are zero-mean: off).
        sparsity: expected fraction of non-zero lags; sets ``lambda = 0.02 * (1/s - 1)``.
        lambda_reg: explicit regularisation strength (overrides ``sparsity``).
        lambda_delay_epochs: linear warm-up of lambda over this many epochs (0 = full from the start).
        c1: regulariser steepness (paper: 3).
        c2: regulariser root order (paper: 3).

    Raises:
        ValueError: non-positive sizes, negative lambda, sparsity outside (0, 1].
    """

    def __init__(self, n_lags: int, n_forecasts: int = 1, ar_layers: list[int] | tuple[int, ...] = (),
                 bias: bool = False, sparsity: float | None = None, lambda_reg: float | None = None,
                 lambda_delay_epochs: int = 0, c1: float = 3.0, c2: float = 3.0) -> None:
        super().__init__()
        if n_lags < 1 or n_forecasts < 1:
            raise ValueError(f"n_lags and n_forecasts must be >= 1, got {n_lags} and {n_forecasts}")
        if any(int(h) < 1 for h in ar_layers):
            raise ValueError(f"ar_layers must hold positive widths, got {list(ar_layers)}")
        if lambda_reg is not None and lambda_reg < 0:
            raise ValueError(f"lambda_reg must be >= 0, got {lambda_reg}")
        self.n_lags, self.n_forecasts = n_lags, n_forecasts
        self.pred_len = n_forecasts  # checked against the data by ForecastingTask.setup
        self.lambda_reg = float(lambda_reg) if lambda_reg is not None else sparsity_lambda(sparsity)
        self.lambda_delay_epochs = int(lambda_delay_epochs)
        self.c1, self.c2 = c1, c2
        self.epoch = 0
        widths = [n_lags, *[int(h) for h in ar_layers], n_forecasts]
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1], bias=bias))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """NeuralProphet init: Kaiming-uniform weights; zero biases."""
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def ar_weights(self) -> Tensor:
        """First-layer weights ``[out, n_lags]`` in input order (oldest lag first): the regularised ones."""
        return self.net[0].weight

    @property
    def ar_coefficients(self) -> Tensor:
        """Learned AR coefficients ``[n_forecasts, n_lags]``, column ``k-1`` for lag ``k`` (detached).

        Row ``h`` gives the direct ``h+1``-step-ahead coefficients: ``y_{t+h+1} = sum_k a[h, k-1] x_{t+1-k}``.

        Raises:
            ValueError: for a model with hidden layers (no linear AR coefficients exist).
        """
        if len(self.net) != 1:
            raise ValueError("ar_coefficients exist only for the linear AR-Net (ar_layers=())")
        return self.ar_weights.detach().flip(-1)

    def set_epoch(self, epoch: int) -> None:
        """Record the current epoch for the lambda warm-up (used when ``regularization_loss`` gets none)."""
        self.epoch = int(epoch)

    def regularization_loss(self, epoch: int | None = None) -> Tensor:
        """``lambda * warmup(epoch) * R(ar_weights)``, to be added to the training loss.

        Args:
            epoch: current (0-based) epoch; default the one stored by :meth:`set_epoch`.

        Returns:
            scalar tensor (zero when no regularisation is configured).
        """
        if self.lambda_reg == 0.0:
            return self.ar_weights.new_zeros(())
        factor = lambda_warmup(self.epoch if epoch is None else epoch, self.lambda_delay_epochs)
        return self.lambda_reg * factor * ar_sparsity_penalty(self.ar_weights, self.c1, self.c2)

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        """Forecast ``[B, n_forecasts, C]`` from ``x [B, L, C]`` (extra arguments such as marks are ignored)."""
        x = _check_input(x, self.n_lags, "ARNet")
        lags = x[:, -self.n_lags:, :].transpose(1, 2)  # [B, C, p]
        return self.net(lags).transpose(1, 2)  # [B, H, C]


class ClassicAR(nn.Module):
    """Classic AR(p) fitted by ordinary least squares in closed form (the paper's comparison).

    One regression per horizon step (direct multi-step): ``y_{t+h} ~ x_{t-p+1..t}``, solved with
    ``torch.linalg.lstsq``. Call :meth:`fit` before use; the model has no trainable parameters.

    Args:
        n_lags: AR order ``p``.
        n_forecasts: steps predicted at once.
        bias: fit an intercept.
    """

    def __init__(self, n_lags: int, n_forecasts: int = 1, bias: bool = False) -> None:
        super().__init__()
        if n_lags < 1 or n_forecasts < 1:
            raise ValueError(f"n_lags and n_forecasts must be >= 1, got {n_lags} and {n_forecasts}")
        self.n_lags, self.n_forecasts, self.bias = n_lags, n_forecasts, bias
        self.pred_len = n_forecasts
        self.register_buffer("weight", torch.zeros(n_forecasts, n_lags))  # input order, oldest first
        self.register_buffer("intercept", torch.zeros(n_forecasts))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def ar_coefficients(self) -> Tensor:
        """Least-squares AR coefficients ``[n_forecasts, n_lags]``, column ``k-1`` for lag ``k``."""
        return self.weight.flip(-1)

    @torch.no_grad()
    def fit(self, series: Tensor) -> ClassicAR:
        """Fit on a series ``[T]``, ``[T, C]`` or ``[N, T, C]`` (channels and batches pooled).

        Raises:
            ValueError: series too short for one window or with too few windows to identify the fit.
        """
        s = torch.as_tensor(series, dtype=torch.float64)
        if s.dim() == 1:
            s = s[None, :, None]
        elif s.dim() == 2:
            s = s[None]
        if s.dim() != 3:
            raise ValueError(f"ClassicAR.fit: series must be [T], [T, C] or [N, T, C], got {tuple(s.shape)}")
        span = self.n_lags + self.n_forecasts
        if s.shape[1] < span:
            raise ValueError(f"ClassicAR.fit: series has {s.shape[1]} steps, needs n_lags + n_forecasts = {span}")
        win = s.permute(0, 2, 1).unfold(-1, span, 1).reshape(-1, span)  # [N*C*W, p+h]
        x, y = win[:, : self.n_lags], win[:, self.n_lags:]
        if self.bias:
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        if x.shape[0] < x.shape[1]:
            raise ValueError(f"ClassicAR.fit: {x.shape[0]} windows cannot identify {x.shape[1]} coefficients")
        sol = torch.linalg.lstsq(x, y).solution  # [p(+1), h]
        self.weight.copy_(sol[: self.n_lags].T.to(self.weight.dtype))
        if self.bias:
            self.intercept.copy_(sol[self.n_lags].to(self.intercept.dtype))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        """Forecast ``[B, n_forecasts, C]`` from ``x [B, L, C]``."""
        x = _check_input(x, self.n_lags, "ClassicAR")
        lags = x[:, -self.n_lags:, :].transpose(1, 2)  # [B, C, p]
        out = lags @ self.weight.to(x.dtype).T + self.intercept.to(x.dtype)
        return out.transpose(1, 2)


def fit_arnet(model: ARNet, x: Tensor, y: Tensor, *, epochs: int = 10, batch_size: int = 128,
              lr: float = 2e-4, lr_decay: float = 0.9, seed: int | None = 0) -> list[float]:
    """The AR-Net paper's training loop in plain PyTorch (``ourownstory/AR-Net/training.py``).

    Adam, a per-epoch ``StepLR(gamma=lr_decay)``, MSE plus ``model.regularization_loss(epoch)``, shuffled
    mini-batches.

    Args:
        model: the AR-Net to train (in place).
        x: inputs ``[N, n_lags]`` or ``[N, L, C]``.
        y: targets ``[N, n_forecasts]`` or ``[N, n_forecasts, C]``.
        epochs: passes over the data.
        batch_size: windows per step.
        lr: Adam learning rate.
        lr_decay: multiplicative learning-rate decay per epoch.
        seed: seed of the shuffling generator.

    Returns:
        mean training loss per epoch.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.float32)
    if x.dim() == 2:
        x = x.unsqueeze(-1)
    if y.dim() == 2:
        y = y.unsqueeze(-1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"fit_arnet: x has {x.shape[0]} windows but y has {y.shape[0]}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=lr_decay)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    history = []
    model.train()
    for epoch in range(epochs):
        model.set_epoch(epoch)
        perm = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i: i + batch_size]
            loss = nn.functional.mse_loss(model(x[idx]), y[idx]) + model.regularization_loss(epoch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        sched.step()
        history.append(total / x.shape[0])
    model.eval()
    return history


def fit_arnets(models: list[ARNet], x: Tensor, y: Tensor, *, epochs: int = 10, batch_size: int = 128,
               lr: float = 2e-4, lr_decay: float = 0.9, seeds: list[int] | None = None) -> list[list[float]]:
    """Train several linear AR-Nets at once, each exactly as :func:`fit_arnet` would train it alone.

    The fast twin of :func:`fit_arnet` for experiments over seeds: model ``s`` sees only ``x[s], y[s]``,
    its own shuffling generator (seeded with ``seeds[s]``), its own regularisation strength
    (``models[s].lambda_reg``) and its own Adam state; the per-model losses are summed, so every model gets
    the gradient it would get on its own (Adam and ``StepLR`` act element-wise). Parameters are stacked
    into ``[S, ...]`` tensors for the run and copied back into the models at the end.

    Args:
        models: linear AR-Nets (``ar_layers=()``) with equal ``n_lags``, ``n_forecasts``, bias setting,
            ``lambda_delay_epochs``, ``c1`` and ``c2``.
        x: inputs ``[S, N, n_lags]`` (oldest lag first).
        y: targets ``[S, N, n_forecasts]``.
        epochs, batch_size, lr, lr_decay: as :func:`fit_arnet`.
        seeds: shuffling seeds per model (default ``0 .. S-1``).

    Returns:
        mean training loss per epoch, one list per model.

    Raises:
        ValueError: models that differ in the shared settings, hidden layers, or mismatched shapes.
    """
    if not models:
        raise ValueError("fit_arnets: no models")
    ref = models[0]
    shared = lambda m: (m.n_lags, m.n_forecasts, m.net[0].bias is not None, m.lambda_delay_epochs,
                        m.c1, m.c2, len(m.net))
    if any(shared(m) != shared(ref) for m in models) or len(ref.net) != 1:
        raise ValueError("fit_arnets: models must be linear AR-Nets with equal n_lags, n_forecasts, bias, "
                         "lambda_delay_epochs, c1 and c2")
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.float32)
    n_models, n_lags, n_out = len(models), ref.n_lags, ref.n_forecasts
    if y.dim() == 2:
        y = y.unsqueeze(-1)
    if x.shape[0] != n_models or x.shape[2] != n_lags or y.shape[:2] != x.shape[:2] or y.shape[2] != n_out:
        raise ValueError(f"fit_arnets: need x [S={n_models}, N, {n_lags}] and y [S, N, {n_out}], got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    seeds = list(range(n_models)) if seeds is None else list(seeds)
    if len(seeds) != n_models:
        raise ValueError(f"fit_arnets: {len(seeds)} seeds for {n_models} models")
    weight = torch.stack([m.net[0].weight.detach().clone() for m in models]).requires_grad_()  # [S, F, p]
    params = [weight]
    bias = None
    if ref.net[0].bias is not None:
        bias = torch.stack([m.net[0].bias.detach().clone() for m in models]).requires_grad_()  # [S, F]
        params.append(bias)
    lam = torch.tensor([m.lambda_reg for m in models], dtype=torch.float32)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=lr_decay)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    rows = torch.arange(n_models)[:, None]
    n = x.shape[1]
    history: list[list[float]] = [[] for _ in models]
    for epoch in range(epochs):
        factor = lambda_warmup(epoch, ref.lambda_delay_epochs)
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens])  # [S, N]
        totals = torch.zeros(n_models, dtype=torch.float64)
        for i in range(0, n, batch_size):
            idx = perms[:, i: i + batch_size]
            xb, yb = x[rows, idx], y[rows, idx]  # [S, B, p], [S, B, F]
            pred = torch.einsum("sbp,sfp->sbf", xb, weight)
            if bias is not None:
                pred = pred + bias[:, None, :]
            mse = (pred - yb).square().mean(dim=(1, 2))  # [S]
            loss = mse
            if bool((lam > 0).any()):
                loss = loss + lam * factor * ar_sparsity_terms(weight, ref.c1, ref.c2).mean(dim=(1, 2))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            totals += loss.detach().double() * idx.shape[1]
        sched.step()
        for s in range(n_models):
            history[s].append(float(totals[s]) / n)
    with torch.no_grad():
        for s, m in enumerate(models):
            m.net[0].weight.copy_(weight[s])
            if bias is not None:
                m.net[0].bias.copy_(bias[s])
            m.set_epoch(epochs - 1)
            m.eval()
    return history


@register_model("forecasting.arnet")
def build_arnet(seq_len: int, pred_len: int = 1, n_vars: int = 1, **kwargs: Any) -> ARNet:
    """Registered builder with the forecasters' common signature: ``n_lags = seq_len``,
    ``n_forecasts = pred_len``; channels share the AR weights, so ``n_vars`` only documents the data."""
    return ARNet(n_lags=seq_len, n_forecasts=pred_len, **kwargs)


@register_model("forecasting.classic_ar")
def build_classic_ar(seq_len: int, pred_len: int = 1, n_vars: int = 1, **kwargs: Any) -> ClassicAR:
    """Registered builder of :class:`ClassicAR` (``n_lags = seq_len``, ``n_forecasts = pred_len``)."""
    return ClassicAR(n_lags=seq_len, n_forecasts=pred_len, **kwargs)
