import functools

import pytest
import torch
from omegaconf import OmegaConf
from seqlab.core.config import apply_overrides, instantiate, load_config
from seqlab.core.errors import ConfigError


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = """
seed: 1
model: {_target_: torch.nn.Linear, in_features: 4, out_features: "${data.width}"}
data: {width: 3}
task: {lr: 0.1}
trainer: {max_epochs: 1}
"""


def test_load_resolves_interpolation_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["data.width=5", "task.lr=1e-3"])
    assert cfg.model.out_features == 5
    assert cfg.task.lr == pytest.approx(1e-3)
    model = instantiate(cfg.model)
    assert isinstance(model, torch.nn.Linear) and model.out_features == 5


def test_instantiate_recursive_positional_partial():
    node = OmegaConf.create({
        "_target_": "torch.nn.Sequential",
        "_args_": [{"_target_": "torch.nn.Linear", "_args_": [2, 3]}, {"_target_": "torch.nn.ReLU"}],
    })
    seq = instantiate(node)
    assert isinstance(seq[0], torch.nn.Linear) and seq[0].in_features == 2 and isinstance(seq[1], torch.nn.ReLU)
    part = instantiate({"_target_": "torch.nn.Linear", "_partial_": True, "in_features": 2})
    assert isinstance(part, functools.partial) and part(out_features=7).out_features == 7
    assert instantiate({"a": [1, {"b": 2}]}) == {"a": [1, {"b": 2}]}


def test_instantiate_extra_kwargs_and_bad_arguments():
    lin = instantiate({"_target_": "torch.nn.Linear", "in_features": 2}, out_features=4)
    assert lin.out_features == 4
    with pytest.raises(ConfigError, match="torch.nn.Linear"):
        instantiate({"_target_": "torch.nn.Linear", "in_features": 2, "bogus": 1, "out_features": 1})


def test_allowlist_and_missing_target():
    with pytest.raises(ConfigError, match="not allowed"):
        instantiate({"_target_": "os.system", "_args_": ["true"]})
    with pytest.raises(ConfigError, match="does not exist"):
        instantiate({"_target_": "torch.nn.NoSuchLayer"})
    with pytest.raises(ConfigError, match="does not exist"):
        instantiate({"_target_": "seqlab.nosuchpackage.Thing"})


def test_override_rules(tmp_path):
    cfg = OmegaConf.create({"model": {"a": 1}, "trainer": {}})
    apply_overrides(cfg, ["model.a=2", "+model.b=[1, 2]", "trainer.devices=2"])
    assert cfg.model.a == 2 and list(cfg.model.b) == [1, 2] and cfg.trainer.devices == 2
    with pytest.raises(ConfigError, match="unknown key 'model.c'"):
        apply_overrides(cfg, ["model.c=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["model.a"])


def test_validation_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"YAML syntax error in .*bad.yaml:\d+"):
        load_config(write(tmp_path, "model: {a: 1\ndata: [", "bad.yaml"))
    with pytest.raises(ConfigError, match="unknown top-level section 'optimizer'"):
        load_config(write(tmp_path, BASE + "optimizer: {lr: 1}\n"))
    with pytest.raises(ConfigError, match="missing section 'task'"):
        load_config(write(tmp_path, "model: {}\ndata: {}\n"))
    with pytest.raises(ConfigError, match="model._target_ 'subprocess.run' is not allowed"):
        load_config(write(tmp_path, BASE.replace("torch.nn.Linear", "subprocess.run")))
    with pytest.raises(ConfigError, match="interpolation"):
        load_config(write(tmp_path, BASE.replace("${data.width}", "${data.nope}")))


def test_scientific_notation_is_float(tmp_path):
    cfg = load_config(write(tmp_path, BASE.replace("lr: 0.1", "lr: 1e-3")), ["data.width=2e1"])
    assert cfg.task.lr == pytest.approx(1e-3) and isinstance(cfg.task.lr, float)
    assert cfg.data.width == pytest.approx(20.0)


def test_locate_prefers_package_attribute_and_refuses_modules():
    from seqlab.core.config import locate

    assert locate("torch.nn.functional.relu") is torch.nn.functional.relu
    with pytest.raises(ConfigError, match="is a module"):
        locate("torch.nn.functional")
    with pytest.raises(ConfigError, match="does not exist"):
        locate("torch.nn.functional.nope")
