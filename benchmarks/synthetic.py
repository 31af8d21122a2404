"""Synthetic probes of sequence mixers: MQAR, selective copying and parity, each block in a 2-layer backbone.

* MQAR, multi-query associative recall (Arora et al., 2023, "Zoology", Sec. 3 and App. E), with Zoology's
  recipe (HazyResearch/zoology: data ``zoology/data/associative_recall.py`` ``_mqar``; model
  ``zoology/model.py``; configs ``zoology/experiments/models_repo.py`` and
  ``mqar_example_configs/original_mqar_configs.py``; training ``zoology/train.py``):

  - data: vocabulary 8192, keys drawn without replacement from ``[1, V/2)``, values from ``[V/2, V)``,
    ``k1 v1 .. kN vN`` first, then every key queried once at gaps drawn without replacement from a power law
    ``p(g) ~ a g^(a-1)`` (``a = 0.01``), the label is the key's value at the query position, every other
    position is a random token (``random_non_queries``); a fixed training set (100k examples) seen for
    several epochs, and a test set of 3000 from another seed;
  - model: tied input/output embeddings (N(0, 0.02)), 2 layers; as Zoology's ``Hybrid`` mixer, layer 0's
    sequence mixer is ``BaseConv`` (``zoology/mixers/base_conv.py``: ``conv3(u) * linear(u) + u``) and layer
    1's is the block under test; each layer pre-norm with a SwiGLU MLP (``SequenceBackbone``);
  - training: AdamW (weight decay 0.01, torch's default as in Zoology), cosine schedule, an lr sweep (best lr
    per block is reported, every lr is kept in the JSON), early stop at 0.99 accuracy as Zoology's trainer.

  Deviations, for the time budget and stated in the output: a step budget instead of Zoology's 32-64 epochs;
  one short linear warm-up; gradient clipping at 1; no dropout; Zoology's per-family blocks (2 Mamba layers
  without ``BaseConv``) are replaced by the same layout for every block, so each block gets the same budget.
* Selective copying (Gu & Dao, 2023, "Mamba", Sec. 4.1.1): ``n_tokens`` data tokens scattered among noise
  tokens, followed by ``n_tokens`` markers at which the data tokens must be reproduced in order.
* Parity (Grazzi et al., 2025, "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues"):
  bits in, the running parity out at every position; trained at ``parity_train_len`` and tested at
  ``parity_test_len`` (length extrapolation). Chance is 0.5. Copy and parity use the plain 2-layer backbone
  of the block (both layers the block, untied head) and online batches.

Every block of a task gets the same model, optimiser, steps, batch and data. Causal tasks only take causal
blocks, so non-causal blocks (``bidirectional``) are listed as skipped. Rows run in one process, or with
``--parallel N`` as N worker processes sharing the device (each row is small and launch-bound, so a GPU
runs many at once); a global ``--total-budget`` caps the wall time: every worker stops training early
enough to evaluate before it. Usage::

    python benchmarks/synthetic.py --cpu-quick --json /tmp/synthetic_quick.json          # < 2 min, 2 cores
    python benchmarks/synthetic.py --preset cpu-mqar --blocks attention,deltanet,mamba,gla,lstm \\
        --json /tmp/synthetic_cpu_mqar.json                                              # ~7 min, 1 core
    python benchmarks/synthetic.py --preset gpu --device cuda --tasks mqar --parallel 12 \\
        --total-budget 330 --json $OUT/synthetic_mqar.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from seqlab.core import SequenceBackbone, get_block_class, list_blocks
from seqlab.core.layers.conv import ShortConvolution
from torch import nn

IGNORE = -100


@dataclass
class Config:
    d_model: int = 32
    n_layers: int = 2
    seed: int = 0
    tasks: list[str] = field(default_factory=lambda: ["mqar", "copy", "parity"])
    row_time_budget_s: float = 90.0  # training seconds per row (cap)
    # copy / parity: online batches, plain 2-layer backbone
    steps: int = 150
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    eval_batches: int = 4
    copy_len: int = 32
    copy_tokens: int = 4
    copy_vocab: int = 8
    parity_train_len: int = 32
    parity_test_len: int = 128
    parity_steps: int = 0  # 0: same as steps
    # MQAR, Zoology's recipe
    mqar_len: int = 64
    mqar_kv: int = 4
    mqar_vocab: int = 512
    mqar_power_a: float = 0.01
    mqar_train_examples: int = 4000
    mqar_test_examples: int = 256
    mqar_steps: int = 150
    mqar_batch: int = 32
    mqar_lrs: list[float] = field(default_factory=lambda: [3e-3])
    mqar_weight_decay: float = 0.01
    mqar_warmup_frac: float = 0.02
    mqar_conv_kernel: int = 3  # Zoology's BaseConv as layer 0's mixer; 0: the block in every layer
    mqar_eval_every: int = 100  # steps between early-stop checks (on up to 1024 test examples)
    mqar_early_stop: float = 0.99
    mqar_eval_batch: int = 256


PRESETS = {
    "cpu": Config(),
    # tiny: the whole table on 2 CPU cores in < 2 minutes (a harness check, not a measurement)
    "cpu-quick": Config(d_model=32, steps=20, batch=16, parity_train_len=16, parity_test_len=32, copy_len=16,
                        copy_tokens=2, mqar_len=32, mqar_kv=4, mqar_vocab=256, mqar_train_examples=2048,
                        mqar_test_examples=256, mqar_steps=100, mqar_batch=32, mqar_lrs=[1e-2],
                        mqar_eval_every=40, row_time_budget_s=20.0, eval_batches=2, tasks=["mqar", "parity"]),
    # MQAR only, one CPU process: attention, deltanet, mamba, gla and lstm x 2 lrs in ~7 minutes (403 s on a
    # shared 2-core machine). Small enough to finish, large enough for the recurrent rows to leave MQAR's loss
    # plateau: d_model 64 (at d_model 32, T 32, 4 pairs, deltanet / gla / mamba only reach 0.07-0.09 in
    # 800-1500 steps), T 32 with 4 pairs and vocab 128 (chance 2 / vocab = 1/64), Zoology's 100k training
    # examples (800 x 32 is a quarter epoch: no example repeats). The lrs are low on purpose: gla 0.25 at 1e-3,
    # 0.04 at 3e-3 and ~0.02 at 1e-2; mamba 0.19 / 0.14 / ~0.02 (1e-2 from a separate 800-step probe). Mamba's
    # CPU scan materialises [B, T, 2 d_model, d_state] and sets the wall time (~0.1-0.2 s a step).
    "cpu-mqar": Config(d_model=64, tasks=["mqar"], mqar_len=32, mqar_kv=4, mqar_vocab=128,
                       mqar_train_examples=100_000, mqar_test_examples=512, mqar_steps=800, mqar_batch=32,
                       mqar_lrs=[1e-3, 3e-3], mqar_eval_every=100, row_time_budget_s=400.0),
    # one H100 (16 cores): 11 MQAR rows x 2 lrs as parallel workers in < 6 minutes (docs/results.md, Blocks)
    "gpu": Config(d_model=128, steps=1500, batch=64, lr=2e-3, eval_batches=8, row_time_budget_s=600.0,
                  copy_len=256, copy_tokens=16, copy_vocab=16, parity_train_len=64, parity_test_len=256,
                  parity_steps=1500, mqar_len=256, mqar_kv=16, mqar_vocab=8192, mqar_train_examples=100_000,
                  mqar_test_examples=3000, mqar_steps=2000, mqar_batch=128, mqar_lrs=[2e-3, 6e-3],
                  mqar_eval_every=250),
}
# the GPU MQAR recipe of the third H200 run (docs/results.md, Blocks): lower lrs and 2x the steps, with which the
# recurrent rows leave the plateau (gla 0.957, mamba 0.052, lstm chance); everything else as ``gpu``
PRESETS["gpu-mqar"] = replace(PRESETS["gpu"], tasks=["mqar"], mqar_steps=4000, mqar_lrs=[5e-4, 1e-3])

# Zoology's MQAR settings per family (models_repo.py: 2 heads for the linear-attention mixers, 1 for MHA).
MQAR_KWARGS = {"attention": {"num_heads": 1}, "gla": {"num_heads": 2}, "deltanet": {"num_heads": 2},
               "retnet": {"num_heads": 2}}


def block_variants(cfg: Config) -> dict[str, tuple[str, dict]]:
    """Row name -> (block, kwargs): causal variants, PGN reading the whole training window."""
    rows: dict[str, tuple[str, dict]] = {}
    for name in list_blocks():
        kw: dict = {}
        if name == "fsmn":
            kw = {"causal": True}
        elif name == "pgn":
            kw = {"window": max(cfg.mqar_len, cfg.copy_len, cfg.parity_train_len)}
        elif name == "attention":
            kw = {"causal": True}
        rows[name] = (name, kw)
        if name == "deltanet":
            rows["deltanet_negeig"] = ("deltanet", {"allow_neg_eigval": True})
    return rows


def is_causal(name: str, kw: dict) -> bool:
    cls = get_block_class(name)
    if "causal" in kw:
        return bool(kw["causal"])
    return bool(getattr(cls, "causal", False))


# ---------------------------------------------------------------- data
def mqar_data(n: int, t: int, n_kv: int, vocab: int, power_a: float, seed: int, random_non_queries: bool = True,
              device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zoology's ``_mqar`` (``zoology/data/associative_recall.py``) in torch, seeded by ``seed``.

    Generated on ``device`` with its own generator (the same seed gives the same data on the same kind of
    device). Uniform draws without replacement are the top-k of uniform noise (a uniformly random ordered
    subset, as ``np.random.choice(replace=False)``); the power-law gaps use ``torch.multinomial`` without
    replacement (successive draws proportional to ``p``, as numpy's weighted ``choice``).

    Returns ``inputs [n, t]`` and, per example, the ``n_kv`` query positions ``pos [n, n_kv]`` (the key's
    position; the model must emit the value there) and their targets ``vals [n, n_kv]``. Zoology's dense
    labels are ``labels[i, pos[i, j]] = vals[i, j]``, -100 elsewhere (``dense_labels``).
    """
    if t % 2 or vocab <= t or 4 * n_kv > t:
        raise ValueError(f"mqar: need even T, vocab > T and 4 * n_kv <= T (T={t}, vocab={vocab}, n_kv={n_kv})")
    g = torch.Generator(device=device).manual_seed(seed)
    half, ctx = vocab // 2, 2 * n_kv
    space = (t - ctx) // 2
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    p = (p / p.sum()).float().to(device)
    xs, ps, vs = [], [], []
    for start in range(0, n, 4096):
        m = min(4096, n - start)
        keys = torch.rand(m, half - 1, generator=g, device=device).topk(n_kv, dim=1).indices + 1
        vals = torch.rand(m, vocab - half, generator=g, device=device).topk(n_kv, dim=1).indices + half
        gaps = torch.multinomial(p.expand(m, space).contiguous(), n_kv, generator=g)
        x = torch.zeros(m, t, dtype=torch.long, device=device)
        x[:, 0:ctx:2], x[:, 1:ctx:2] = keys, vals
        pos = ctx + 2 * gaps  # the query key; Zoology puts its value label one step later, then shifts by one
        x.scatter_(1, pos, keys)
        if random_non_queries:
            noise = torch.randint(vocab, (m, t), generator=g, device=device)
            x = torch.where(x == 0, noise, x)
        xs.append(x)
        ps.append(pos)
        vs.append(vals)
    return torch.cat(xs), torch.cat(ps), torch.cat(vs)


def dense_labels(t: int, pos: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """Zoology's label layout: ``[n, t]`` with the values at the query positions, -100 elsewhere."""
    y = torch.full((pos.shape[0], t), IGNORE, dtype=torch.long, device=pos.device)
    return y.scatter_(1, pos, vals)


def copy_batch(b: int, t: int, n: int, vocab: int, g: torch.Generator):
    """Selective copying: ``t`` positions with ``n`` data tokens among noise (0), then ``n`` markers."""
    marker = vocab - 1
    data = torch.randint(1, vocab - 1, (b, n), generator=g)
    x = torch.zeros(b, t + n, dtype=torch.long)
    for i in range(b):
        pos = torch.randperm(t, generator=g)[:n].sort().values
        x[i, pos] = data[i]
    x[:, t:] = marker
    labels = torch.full_like(x, IGNORE)
    labels[:, t:] = data
    return x, labels


def parity_batch(b: int, t: int, g: torch.Generator):
    """Bits and their running parity at every position."""
    x = torch.randint(0, 2, (b, t), generator=g)
    return x, x.cumsum(1) % 2


# ---------------------------------------------------------------- model
class BaseConv(nn.Module):
    """Zoology's ``BaseConv`` (``zoology/mixers/base_conv.py``, ``use_act=False``): ``conv(u) * proj(u) + u``.

    ``conv`` is a causal depthwise convolution with bias (kernel 3 in the MQAR configs). Used as a
    sequence mixer: ``forward(x, state) -> (y, None)``; training only (no step).
    """

    causal = True

    def __init__(self, d_model: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.d_model = d_model
        self.projection = nn.Linear(d_model, d_model)
        self.conv = ShortConvolution(d_model, kernel_size, bias=True)

    def forward(self, u: torch.Tensor, state=None):
        c, _ = self.conv(u)
        return c * self.projection(u) + u, None


class LM(nn.Module):
    """Embedding, ``SequenceBackbone`` (SwiGLU MLPs), head.

    ``conv_kernel > 0``: layer 0's sequence mixer is ``BaseConv`` and the block fills the other layers
    (Zoology's ``Hybrid`` alternation with 2 layers). ``tie``: the head is the embedding matrix (Zoology's
    ``LanguageModel``), initialised N(0, 0.02).
    """

    def __init__(self, vocab: int, d_model: int, n_layers: int, block: str, kw: dict, conv_kernel: int = 0,
                 tie: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        self.backbone = SequenceBackbone(d_model, block, n_layers=n_layers, block_kwargs={block: kw})
        if conv_kernel > 0:
            self.backbone.layers[0].mixer = BaseConv(d_model, conv_kernel)
        self.tie = tie
        if tie:
            nn.init.normal_(self.emb.weight, std=0.02)
            self.head = None
        else:
            self.head = nn.Linear(d_model, vocab)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.emb.weight.t() if self.tie else self.head(h)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]``, or only at ``pos [B, Q]`` -> ``[B, Q, V]`` (the loss positions)."""
        h = self.backbone(self.emb(x))[0]
        if pos is not None:
            h = h.gather(1, pos[..., None].expand(-1, -1, h.shape[-1]))
        return self.logits(h)


def _cosine(step: int, total: int, warm: int) -> float:
    return min(1.0, (step + 1) / max(warm, 1)) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------- rows
def run_mqar(block: str, kw: dict, cfg: Config, device: str, lr: float, deadline: float | None) -> dict:
    """One MQAR row (one lr): Zoology data and model, AdamW + cosine, early stop at ``mqar_early_stop``."""
    t_begin = time.perf_counter()
    kw = {**MQAR_KWARGS.get(block, {}), **kw}
    xtr, ptr, vtr = mqar_data(cfg.mqar_train_examples, cfg.mqar_len, cfg.mqar_kv, cfg.mqar_vocab,
                              cfg.mqar_power_a, cfg.seed, device=device)
    xte, pte, vte = mqar_data(cfg.mqar_test_examples, cfg.mqar_len, cfg.mqar_kv, cfg.mqar_vocab,
                              cfg.mqar_power_a, cfg.seed + 10, device=device)  # Zoology: test seed = seed + 10
    data_s = time.perf_counter() - t_begin
    torch.manual_seed(cfg.seed)
    model = LM(cfg.mqar_vocab, cfg.d_model, cfg.n_layers, block, kw, cfg.mqar_conv_kernel, tie=True).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.mqar_weight_decay)
    steps = cfg.mqar_steps
    warm = max(int(cfg.mqar_warmup_frac * steps), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, warm))
    order_g = torch.Generator().manual_seed(cfg.seed + 1)

    def evaluate(n_max: int | None = None) -> float:
        model.eval()
        n = xte.shape[0] if n_max is None else min(n_max, xte.shape[0])
        correct = torch.zeros((), device=device)
        with torch.no_grad():
            for s in range(0, n, cfg.mqar_eval_batch):
                e = min(s + cfg.mqar_eval_batch, n)
                pred = model(xte[s:e], pte[s:e]).argmax(-1)
                correct += (pred == vte[s:e]).sum()
        model.train()
        return correct.item() / (n * cfg.mqar_kv)

    cap = t_begin + cfg.row_time_budget_s
    if deadline is not None:
        cap = min(cap, deadline)
    t0 = time.perf_counter()
    done, loss_v, first_step_s, stopped_by, curve = 0, float("nan"), None, "steps", []
    perm, cursor = torch.randperm(xtr.shape[0], generator=order_g).to(device), 0
    model.train()
    for step in range(steps):
        if cursor + cfg.mqar_batch > perm.numel():  # next epoch (Zoology: shuffled DataLoader)
            perm, cursor = torch.randperm(xtr.shape[0], generator=order_g).to(device), 0
        idx = perm[cursor:cursor + cfg.mqar_batch]
        cursor += cfg.mqar_batch
        logits = model(xtr[idx], ptr[idx])
        loss = F.cross_entropy(logits.float().reshape(-1, cfg.mqar_vocab), vtr[idx].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        done = step + 1
        if first_step_s is None:
            _sync(device)
            first_step_s = time.perf_counter() - t0  # kernel compilation and autotuning land here
        if done % cfg.mqar_eval_every == 0 or done == steps:
            loss_v = loss.item()
            acc = evaluate(1024)
            curve.append([done, round(acc, 4), round(loss_v, 4), round(time.perf_counter() - t0, 1)])
            print(f"  mqar {block} lr={lr:g} step {done}: loss {loss_v:.3f} acc(1024) {acc:.3f}", flush=True)
            if acc >= cfg.mqar_early_stop:
                stopped_by = "early_stop"
                break
        if time.perf_counter() > cap:
            stopped_by = "time"
            break
    loss_v = loss.item()
    _sync(device)
    train_s = time.perf_counter() - t0
    acc = evaluate()
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda") else None
    return {"task": "mqar", "block": block, "kwargs": kw, "lr": lr, "accuracy": acc, "steps": done,
            "planned_steps": steps, "stopped_by": stopped_by, "final_loss": loss_v,
            "train_seconds": round(train_s, 2), "first_step_seconds": round(first_step_s or 0.0, 2),
            "data_seconds": round(data_s, 2), "examples_seen": done * cfg.mqar_batch,
            "epochs": round(done * cfg.mqar_batch / cfg.mqar_train_examples, 2), "curve": curve,
            "params": n_params, "peak_gib": peak}


def run_online(task: str, block: str, kw: dict, cfg: Config, device: str, deadline: float | None) -> dict:
    """A copy or parity row: fresh batches every step, plain backbone, AdamW + cosine."""
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if task == "copy":
        vocab = cfg.copy_vocab
        make = lambda b, gen: copy_batch(b, cfg.copy_len, cfg.copy_tokens, vocab, gen)
        make_test = make
    else:
        vocab = 2
        make = lambda b, gen: parity_batch(b, cfg.parity_train_len, gen)
        make_test = lambda b, gen: parity_batch(b, cfg.parity_test_len, gen)
    steps = cfg.parity_steps if (task == "parity" and cfg.parity_steps) else cfg.steps
    model = LM(vocab, cfg.d_model, cfg.n_layers, block, kw).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    warm = max(steps // 20, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, warm))
    t0 = time.perf_counter()
    cap = t0 + cfg.row_time_budget_s if deadline is None else min(t0 + cfg.row_time_budget_s, deadline)
    done, loss_v, stopped_by = 0, float("nan"), "steps"
    model.train()
    for step in range(steps):
        x, y = make(cfg.batch, g)
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        done = step + 1
        if time.perf_counter() > cap:
            stopped_by = "time"
            break
    loss_v = loss.item()
    train_s = time.perf_counter() - t0
    model.eval()
    gt = torch.Generator().manual_seed(cfg.seed + 1000)
    correct = total = 0
    with torch.no_grad():
        for _ in range(cfg.eval_batches):
            x, y = make_test(cfg.batch, gt)
            x, y = x.to(device), y.to(device)
            pred = model(x).argmax(-1)
            mask = y != IGNORE
            correct += (pred[mask] == y[mask]).sum().item()
            total += mask.sum().item()
    return {"task": task, "block": block, "kwargs": kw, "lr": cfg.lr, "accuracy": correct / max(total, 1),
            "steps": done, "planned_steps": steps, "stopped_by": stopped_by, "final_loss": loss_v,
            "train_seconds": round(train_s, 2), "params": n_params}


def run_job(job: dict, cfg: Config, device: str, deadline: float | None) -> dict:
    """Run one (task, row, lr) job; errors are returned as a row with ``error`` (never hidden)."""
    block, kw = job["block"], job["kwargs"]
    t0 = time.perf_counter()
    try:
        if job["task"] == "mqar":
            r = run_mqar(block, kw, cfg, device, job["lr"], deadline)
        else:
            r = run_online(job["task"], block, kw, cfg, device, deadline)
    except Exception as exc:  # noqa: BLE001  (recorded in the table)
        msg = str(exc).splitlines()[0][:300] if str(exc) else ""
        r = {"task": job["task"], "block": block, "kwargs": kw, "lr": job.get("lr"),
             "error": f"{type(exc).__name__}: {msg}"}
    r["row"] = job["row"]
    r["wall_seconds"] = round(time.perf_counter() - t0, 2)
    r["device_name"] = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    return r


# ---------------------------------------------------------------- orchestration
def _worker_main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(1)
    if spec["device"].startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = Config(**spec["config"])
    # the deadline is wall-clock (time.time) across processes; convert to this process's perf_counter
    deadline = None
    if spec.get("deadline") is not None:
        deadline = time.perf_counter() + (spec["deadline"] - time.time())
    r = run_job(spec["job"], cfg, spec["device"], deadline)
    with open(spec["out"], "w") as f:
        json.dump(r, f)
    return 0


def run_parallel(jobs: list[dict], cfg: Config, device: str, n_par: int, wall_deadline: float | None,
                 eval_reserve: float, grace: float, on_result) -> None:
    """Run jobs as worker processes, at most ``n_par`` at once; kill a worker past the deadline + grace."""
    tmp = tempfile.mkdtemp(prefix="synthetic_")
    pending = list(enumerate(jobs))
    running: dict[int, tuple[subprocess.Popen, dict, str, str, float]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < n_par:
            i, job = pending.pop(0)
            out, log, spec_path = (os.path.join(tmp, f"job{i}.{ext}") for ext in ("json", "log", "spec.json"))
            train_deadline = None if wall_deadline is None else wall_deadline - eval_reserve
            with open(spec_path, "w") as f:
                json.dump({"job": job, "config": asdict(cfg), "device": device, "deadline": train_deadline,
                           "out": out}, f)
            logf = open(log, "w")  # noqa: SIM115  (closed with the process)
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", spec_path],
                                 stdout=logf, stderr=subprocess.STDOUT, env=env)
            logf.close()
            running[i] = (p, job, out, log, time.time())
        time.sleep(0.5)
        for i in list(running):
            p, job, out, log, started = running[i]
            killed = False
            if p.poll() is None:
                if wall_deadline is None or time.time() < wall_deadline + grace:
                    continue
                p.kill()  # our own worker, past the hard deadline
                p.wait()
                killed = True
            del running[i]
            if os.path.exists(out):
                with open(out) as f:
                    r = json.load(f)
            else:
                with open(log) as f:
                    tail = f.read()[-600:]
                why = "killed at the time budget" if killed else f"worker exited with code {p.returncode}"
                r = {"task": job["task"], "block": job["block"], "kwargs": job["kwargs"], "lr": job.get("lr"),
                     "row": job["row"], "error": f"{why}; log tail: {tail}"}
            r["worker_seconds"] = round(time.time() - started, 1)
            on_result(r)


def _gpu_exclusive() -> bool:
    """True when nvidia-smi reports an exclusive compute mode (then processes cannot share the GPU)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "exclusive" in out.lower()


def _best_rows(results: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (task, row): the lr with the highest accuracy (ties: more steps, then smaller lr)."""
    best: dict[tuple[str, str], dict] = {}
    for r in results:
        key = (r["task"], r["row"])
        acc = r.get("accuracy", -1.0)
        cur = best.get(key)
        if cur is None or acc > cur.get("accuracy", -1.0):
            best[key] = r
    return best


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--worker":
        return _worker_main(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--cpu-quick", action="store_true", help="tiny CPU run of the whole table (< 2 min)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--blocks", default="", help="comma-separated row names (default: all causal blocks)")
    p.add_argument("--tasks", default="", help="comma-separated subset of mqar,copy,parity")
    p.add_argument("--steps", type=int, help="steps per row (all tasks)")
    p.add_argument("--lrs", default="", help="MQAR learning rates, comma-separated (the sweep)")
    p.add_argument("--row-time-budget", type=float, help="seconds of training per row (cap)")
    p.add_argument("--total-budget", type=float, help="wall seconds for the whole run (workers stop in time)")
    p.add_argument("--eval-reserve", type=float, default=20.0, help="seconds kept for evaluation and exit")
    p.add_argument("--parallel", type=int, default=0, help="worker processes sharing the device (0: in-process)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (in-process runs)")
    p.add_argument("--json", help="write results here")
    a = p.parse_args(argv)
    t_start = time.time()
    preset = "cpu-quick" if a.cpu_quick else a.preset
    cfg = Config(**asdict(PRESETS[preset]))
    if a.steps:
        cfg.steps = cfg.parity_steps = cfg.mqar_steps = a.steps
    if a.row_time_budget:
        cfg.row_time_budget_s = a.row_time_budget
    if a.tasks:
        cfg.tasks = a.tasks.split(",")
    if a.lrs:
        cfg.mqar_lrs = [float(x) for x in a.lrs.split(",")]
    torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rows = block_variants(cfg)
    names = a.blocks.split(",") if a.blocks else list(rows)
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise SystemExit(f"synthetic.py: unknown rows {unknown}; known: {sorted(rows)}")
    jobs, skipped = [], []
    for task in cfg.tasks:
        for row in names:
            block, kw = rows[row]
            if not is_causal(block, kw):
                skipped.append({"task": task, "row": row, "why": "non-causal block on a causal task"})
                continue
            for lr in (cfg.mqar_lrs if task == "mqar" else [cfg.lr]):
                jobs.append({"task": task, "row": row, "block": block, "kwargs": kw, "lr": lr})
    if a.cpu_quick and a.total_budget is None:  # keep the quick run inside its 2 minutes on a loaded machine
        a.total_budget, a.eval_reserve = 100.0, 3.0
    wall_deadline = None if a.total_budget is None else t_start + a.total_budget
    results: list[dict] = []

    def on_result(r: dict) -> None:
        results.append(r)
        if "error" in r:
            print(f"{r['task']:7s} {r['row']:16s} lr={r.get('lr')} ERROR {r['error'][:300]}", flush=True)
        else:
            print(f"{r['task']:7s} {r['row']:16s} lr={r['lr']:g} acc={r['accuracy']:.3f} "
                  f"loss={r['final_loss']:.3f} steps={r['steps']}/{r['planned_steps']} ({r['stopped_by']}) "
                  f"{r['train_seconds']:.1f}s params={r['params']}", flush=True)
        if a.json:
            _dump(a, cfg, preset, results, skipped, t_start)

    if a.parallel > 1 and a.device.startswith("cuda") and _gpu_exclusive():
        print("synthetic.py: the GPU is in an exclusive compute mode; running one worker at a time", flush=True)
        a.parallel = 1
    if a.parallel > 0:
        run_parallel(jobs, cfg, a.device, a.parallel, wall_deadline, a.eval_reserve, grace=15.0,
                     on_result=on_result)
    else:
        for job in jobs:
            dl = None
            if wall_deadline is not None:
                dl = time.perf_counter() + (wall_deadline - a.eval_reserve - time.time())
            on_result(run_job(job, cfg, a.device, dl))
    print()
    print(f"wall {time.time() - t_start:.1f} s; preset {preset}; best lr per row (MQAR sweep {cfg.mqar_lrs})")
    best = _best_rows([r for r in results if "error" not in r])
    print("| task | block | accuracy | lr | steps | stopped by | train s |")
    print("|---|---|---|---|---|---|---|")
    for task in cfg.tasks:
        for row in names:
            r = best.get((task, row))
            if r is not None:
                print(f"| {task} | {row} | {r['accuracy']:.3f} | {r['lr']:g} | {r['steps']}/{r['planned_steps']} "
                      f"| {r['stopped_by']} | {r['train_seconds']:.1f} |")
    for r in results:
        if "error" in r:
            print(f"error {r['task']} {r['row']} lr={r.get('lr')}: {r['error'][:200]}")
    for s in skipped:
        print(f"skipped {s['row']} on {s['task']}: {s['why']}")
    if a.json:
        _dump(a, cfg, preset, results, skipped, t_start)
    return 0


def _dump(a: argparse.Namespace, cfg: Config, preset: str, results: list, skipped: list, t_start: float) -> None:
    """Write the JSON after every row, so a run cut short keeps what it measured."""
    meta = {"preset": preset, "device": a.device, "config": asdict(cfg), "torch": torch.__version__,
            "python": platform.python_version(), "argv": sys.argv, "parallel": a.parallel,
            "total_budget": a.total_budget, "wall_seconds": round(time.time() - t_start, 1),
            # from the workers: the parent never opens a CUDA context (it would hold the GPU in exclusive mode)
            "device_name": next((r["device_name"] for r in results if "device_name" in r), None)}
    best = {f"{k[0]}/{k[1]}": {"accuracy": r["accuracy"], "lr": r["lr"]}
            for k, r in _best_rows([r for r in results if "error" not in r]).items()}
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "best": best, "results": results, "skipped": skipped}, f, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
