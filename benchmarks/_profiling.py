"""torch.profiler kernel tables shared by the ``*_profile.py`` benchmark scripts, the CUDA-graph timer of the
sweep scripts, and the synchronised step timer of ``blocks.py`` and ``scan1_eager_order.py``."""
from __future__ import annotations

import statistics
import time

import torch


def step_ms(fn, warmup: int, reps: int, cuda: bool) -> float:
    """Median milliseconds of one synchronised call of ``fn`` after ``warmup`` calls: CUDA events around each call
    followed by a device sync (``cuda``), else wall-clock time."""
    for _ in range(warmup):
        fn()
    times = []
    if not cuda:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def kernel_table(step, reps: int = 5, top: int = 16, width: int = 80) -> list[dict]:
    """(kernel, calls per step, device us per step) of ``reps`` calls of ``step`` after 3 warm-up calls, largest
    first. Without CUDA the rows are CPU operators with their self CPU time (the scripts' smoke tests)."""
    cuda = torch.cuda.is_available()
    for _ in range(3):
        step()
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(reps):
            step()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", 0.0) if cuda else e.self_cpu_time_total
        if us > 0 and (not cuda or e.device_type == torch.autograd.DeviceType.CUDA):
            rows.append(dict(kernel=e.key[:width], calls=e.count // reps, us_per_step=us / reps))
    rows.sort(key=lambda r: -r["us_per_step"])
    return rows[:top]


def print_table(title: str, rows: list[dict]) -> None:
    """One markdown table of :func:`kernel_table` rows under ``title``."""
    print(f"\n{title}")
    print("| kernel | calls | us |\n|---|---|---|")
    for r in rows:
        print(f"| {r['kernel']} | {r['calls']} | {r['us_per_step']:.1f} |", flush=True)


def write_tables(path: str | None, tables: dict) -> None:
    """``{"device": ..., "tables": tables}`` as JSON at ``path`` (nothing when ``path`` is None)."""
    if path:
        import json

        with open(path, "w") as fh:
            json.dump(dict(device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                           tables=tables), fh, indent=1)


def graph_bench(smoke: bool):
    """``bench(fn) -> ms``: ``fn``'s time from CUDA graphs (``triton.testing.do_bench_cudagraph``, 100 ms of
    repeats after one warm call), or with ``smoke`` one call and ``nan`` (the sweeps' CPU interpreter checks). Prints
    the device name when timing."""
    if smoke:
        def bench(fn):
            fn()
            return float("nan")
        return bench
    from triton.testing import do_bench_cudagraph

    def bench(fn):
        fn()
        torch.cuda.synchronize()
        return do_bench_cudagraph(fn, rep=100)
    print(torch.cuda.get_device_name(), flush=True)
    return bench
