"""Synthetic probes of sequence mixers: MQAR, selective copying and parity, each block in a 2-layer backbone.

* MQAR, multi-query associative recall (Arora et al., 2023, "Zoology", Sec. 3; HazyResearch/zoology
  ``zoology/data/associative_recall.py``): ``k1 v1 k2 v2 ...`` then the keys queried again later in the
  sequence; the model must emit each key's value. Accuracy over the queried positions.
* Selective copying (Gu & Dao, 2023, "Mamba", Sec. 4.1.1): ``n_tokens`` data tokens scattered among noise
  tokens, followed by ``n_tokens`` markers at which the data tokens must be reproduced in order.
* Parity (Grazzi et al., 2025, "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues"):
  bits in, the running parity out at every position; trained at ``parity_train_len`` and tested at
  ``parity_test_len`` (length extrapolation). Chance is 0.5.

Every block gets the same model (embedding, ``SequenceBackbone`` of 2 layers with SwiGLU, linear head),
the same optimiser, steps, batch and data. Causal tasks only take causal blocks, so non-causal blocks
(``bidirectional``) are listed as skipped. Usage::

    python benchmarks/synthetic.py --preset cpu --json runs/synthetic_cpu.json
    python benchmarks/synthetic.py --preset gpu --device cuda --json $OUT/synthetic_gpu.json
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from seqlab.core import SequenceBackbone, get_block_class, list_blocks
from torch import nn

IGNORE = -100


@dataclass
class Config:
    d_model: int = 32
    n_layers: int = 2
    steps: int = 150
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    eval_batches: int = 4
    row_time_budget_s: float = 90.0
    mqar_len: int = 32
    mqar_kv: int = 4
    mqar_vocab: int = 64
    copy_len: int = 32
    copy_tokens: int = 4
    copy_vocab: int = 8
    parity_train_len: int = 32
    parity_test_len: int = 128
    parity_steps: int = 0  # 0: same as steps
    seed: int = 0
    tasks: list[str] = field(default_factory=lambda: ["mqar", "copy", "parity"])


PRESETS = {
    "cpu": Config(),
    "gpu": Config(d_model=128, steps=1500, batch=64, lr=2e-3, eval_batches=8, row_time_budget_s=20.0,
                  mqar_len=256, mqar_kv=16, mqar_vocab=256, copy_len=256, copy_tokens=16, copy_vocab=16,
                  parity_train_len=64, parity_test_len=256, parity_steps=1500),
}

# Per-block kwargs for the probes: causal variants, PGN reading the whole training window.
def block_variants(cfg: Config) -> dict[str, tuple[str, dict]]:
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
def mqar_batch(b: int, t: int, n_kv: int, vocab: int, g: torch.Generator):
    """Zoology MQAR: inputs ``[b, t]`` and labels (value at each query-key position, else -100)."""
    seq = torch.zeros(b, t + 1, dtype=torch.long)
    half = vocab // 2
    keys = torch.stack([torch.randperm(half - 1, generator=g)[:n_kv] + 1 for _ in range(b)])
    vals = torch.randint(half, vocab, (b, n_kv), generator=g)
    seq[:, 0:2 * n_kv:2], seq[:, 1:2 * n_kv:2] = keys, vals
    # queries at distinct even offsets of the remaining span (key at p, value at p + 1)
    span = (t + 1 - 2 * n_kv) // 2
    if span < n_kv:
        raise ValueError(f"mqar: sequence length {t} too short for {n_kv} key-value pairs")
    labels = torch.full((b, t + 1), IGNORE, dtype=torch.long)
    for i in range(b):
        slots = torch.randperm(span, generator=g)[:n_kv] * 2 + 2 * n_kv
        order = torch.randperm(n_kv, generator=g)
        seq[i, slots], seq[i, slots + 1] = keys[i, order], vals[i, order]
        labels[i, slots + 1] = vals[i, order]
    return seq[:, :-1], labels[:, 1:]


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
class LM(nn.Module):
    def __init__(self, vocab: int, d_model: int, n_layers: int, block: str, kw: dict) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        self.backbone = SequenceBackbone(d_model, block, n_layers=n_layers, block_kwargs={block: kw})
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.emb(x))[0])


def run_row(task: str, block: str, kw: dict, cfg: Config, device: str) -> dict:
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if task == "mqar":
        vocab = cfg.mqar_vocab
        make = lambda b, gen: mqar_batch(b, cfg.mqar_len, cfg.mqar_kv, vocab, gen)
        make_test = make
    elif task == "copy":
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
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    t0, done, loss_v = time.perf_counter(), 0, float("nan")
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
        done, loss_v = step + 1, loss.item()
        if time.perf_counter() - t0 > cfg.row_time_budget_s:
            break
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
    return {"task": task, "block": block, "kwargs": kw, "accuracy": correct / max(total, 1), "steps": done,
            "planned_steps": steps, "final_loss": loss_v, "train_seconds": round(train_s, 2), "params": n_params}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--device", default="cpu")
    p.add_argument("--blocks", default="", help="comma-separated row names (default: all causal blocks)")
    p.add_argument("--tasks", default="", help="comma-separated subset of mqar,copy,parity")
    p.add_argument("--steps", type=int)
    p.add_argument("--row-time-budget", type=float, help="seconds of training per row (cap)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="write results here")
    a = p.parse_args(argv)
    cfg = Config(**asdict(PRESETS[a.preset]))
    if a.steps:
        cfg.steps = a.steps
        cfg.parity_steps = a.steps
    if a.row_time_budget:
        cfg.row_time_budget_s = a.row_time_budget
    if a.tasks:
        cfg.tasks = a.tasks.split(",")
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = block_variants(cfg)
    names = a.blocks.split(",") if a.blocks else list(rows)
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise SystemExit(f"synthetic.py: unknown rows {unknown}; known: {sorted(rows)}")
    results, skipped = [], []
    for task in cfg.tasks:
        for row in names:
            block, kw = rows[row]
            if not is_causal(block, kw):
                skipped.append({"task": task, "row": row, "why": "non-causal block on a causal task"})
                continue
            r = run_row(task, block, kw, cfg, a.device)
            r["row"] = row
            results.append(r)
            if a.json:
                _dump(a, cfg, results, skipped)
            print(f"{task:7s} {row:16s} acc={r['accuracy']:.3f} loss={r['final_loss']:.3f} "
                  f"steps={r['steps']}/{r['planned_steps']} {r['train_seconds']:.1f}s params={r['params']}",
                  flush=True)
    print()
    by_row: dict[str, dict[str, float]] = {}
    for r in results:
        by_row.setdefault(r["row"], {})[r["task"]] = r["accuracy"]
    header = "| block | " + " | ".join(cfg.tasks) + " |"
    print(header)
    print("|" + "---|" * (len(cfg.tasks) + 1))
    for row, accs in by_row.items():
        print(f"| {row} | " + " | ".join(f"{accs[t]:.3f}" if t in accs else "-" for t in cfg.tasks) + " |")
    for s in skipped:
        print(f"skipped {s['row']} on {s['task']}: {s['why']}")
    if a.json:
        _dump(a, cfg, results, skipped)
    return 0


def _dump(a: argparse.Namespace, cfg: Config, results: list, skipped: list) -> None:
    """Write the JSON after every row, so a run cut short keeps what it measured."""
    meta = {"preset": a.preset, "device": a.device, "config": asdict(cfg), "torch": torch.__version__,
            "python": platform.python_version(), "argv": sys.argv, "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name() if a.device.startswith("cuda") else platform.processor()}
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "results": results, "skipped": skipped}, f, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
