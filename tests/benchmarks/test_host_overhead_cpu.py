"""benchmarks/host_overhead_cpu.py times both call paths and leaves the real kernels in place afterwards."""
import torch

from seqlab.kernels import prefix_attention, scan1
from tests._bench import load_benchmark

P = load_benchmark("host_overhead_cpu", "bench_host_overhead_cpu")


def test_prints_both_paths_and_restores_the_kernels(capsys):
    assert P.main(rounds=1, n=3) == 0
    out = capsys.readouterr().out
    assert "eager twin" in out and "custom op" in out
    assert "prefix_attention lookback" in out and "prefix_attention scan" in out and "scan inline" in out
    a, b = torch.rand(1, 20, 32), torch.randn(1, 20, 32)
    torch.testing.assert_close(scan1(a, b, backend="triton")[0], scan1(a, b, backend="torch")[0])
    s, v = torch.randn(1, 20, 2), torch.randn(1, 20, 2, 8)
    torch.testing.assert_close(prefix_attention(s, v, backend="triton")[0], prefix_attention(s, v, backend="torch")[0])
