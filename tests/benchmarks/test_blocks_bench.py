"""benchmarks/blocks.py: pairs share settings, fla import failures are reported, autotune sharding."""
import importlib.util
import sys

import pytest
import torch
from tests._bench import load_benchmark


B = load_benchmark("blocks", "bench_blocks")


def test_every_row_has_a_spec_and_pairs_share_settings():
    for name in B.DEFAULT_ROWS + B.EXTRA_ROWS:
        builder, _, settings = B.row_spec(name, 1024, 8)
        assert builder.split(":")[0] in ("ours", "fla", "loop") and settings
    for ours, peer in [("ours gla", "fla GatedLinearAttention"), ("ours deltanet", "fla DeltaNet"),
                       ("ours retnet", "fla MultiScaleRetention")]:
        _, ko, so = B.row_spec(ours, 1024, 8)
        _, kp, sp = B.row_spec(peer, 1024, 8)
        shared = {k for k in ko if k in kp}
        assert {"num_heads", "expand_k", "expand_v"} <= shared
        assert all(ko[k] == kp[k] for k in shared), (ours, peer)
        assert sp.startswith(so.split(", chunk")[0])
    _, ko, _ = B.row_spec("ours mamba2", 1024, 8)
    _, kp, _ = B.row_spec("fla Mamba2", 1024, 8)
    assert (ko["d_state"], ko["headdim"], ko["expand"], ko["ngroups"], ko["d_conv"]) == \
        (kp["state_size"], kp["head_dim"], kp["expand"], kp["n_groups"], kp["conv_kernel"])
    with pytest.raises(SystemExit, match="unknown row"):
        B.row_spec("nope", 1024, 8)


def test_ours_rows_build_with_the_stated_sizes():
    mod, notes = B.build_row("ours gla", 64, 2)
    assert notes == {} and mod.num_heads == 2 and mod.key_dim == 32 and mod.value_dim == 64
    mod, _ = B.build_row("ours mamba2", 64, 2)
    assert mod.nheads == 2 and mod.d_state == 128
    loop, _ = B.build_row("torch-loop mamba", 32, 2)
    x = torch.randn(1, 5, 32)
    assert torch.allclose(loop(x)[0], loop.m(x)[0], atol=1e-5)  # the loop is the same layer


@pytest.mark.skipif(importlib.util.find_spec("fla") is not None, reason="fla installed here")
def test_missing_fla_is_an_import_error_not_a_crash():
    with pytest.raises(ImportError, match="fla is not installed"):
        B.import_fla_layer("gla", "GatedLinearAttention")
    assert not any(m == "fla" or m.startswith("fla.") for m in sys.modules)


def test_autotune_shard_and_bench_patch():
    pytest.importorskip("triton")
    from triton.runtime.autotuner import Autotuner

    saved = {k: Autotuner.__dict__[k] for k in ("prune_configs", "do_bench")}
    note = B.patch_autotuner()
    assert note == "patched"
    fake = Autotuner.__new__(Autotuner)
    fake.configs = list(range(7))
    fake.early_config_prune = None
    fake.perf_model = None
    fake.configs_top_k = 1.0
    try:
        B._SHARD[0] = (1, 3)
        assert fake.prune_configs({}) == [1, 4]
        B._SHARD[0] = (2, 9)
        assert fake.prune_configs({}) == [2]
        B._SHARD[0] = (8, 9)
        assert fake.prune_configs({}) == [0]  # an empty share falls back to the first config
        B._SHARD[0] = None
        assert fake.prune_configs({}) == list(range(7))
        B._BENCH[0] = B.compile_only_bench
        calls = []
        assert fake.do_bench(lambda: calls.append(1), quantiles=(0.5,)) == [1.0, 1.0, 1.0] and calls == [1]
    finally:
        B._SHARD[0] = None
        B._BENCH[0] = None
        for k, v in saved.items():  # leave Triton as it was for the rest of the session
            setattr(Autotuner, k, v)
        if "_seqlab_patched" in Autotuner.__dict__:
            del Autotuner._seqlab_patched


def test_compiled_rows_wrap_the_same_layer():
    plain, _ = B.build_row("ours deltanet", 64, 2)
    comp, _ = B.build_row("ours deltanet (compiled)", 64, 2)
    assert isinstance(comp, B._Compiled) and type(comp.inner) is type(plain)
    assert sum(p.numel() for p in comp.parameters()) == sum(p.numel() for p in plain.parameters())
    assert B.row_spec("ours deltanet (compiled)", 1024, 8)[2].endswith("torch.compile(fullgraph=True)")
    assert ("ours deltanet (compiled)", "fla DeltaNet") in B.PAIRS
    with pytest.raises(SystemExit, match="unknown row"):
        B.row_spec("fla DeltaNet (compiled)", 1024, 8)
