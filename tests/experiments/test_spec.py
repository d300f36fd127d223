"""Spec validation: every user error is one ConfigError line naming the spec file and the key."""

import pytest

from mlplab.errors import ConfigError
from mlplab.experiments.spec import builtin_names, from_dict, load_spec
from mlplab.config import read_toml


def test_builtins_listed_and_valid():
    names = builtin_names()
    for n in ("two-hidden-layers", "ovr-logistic", "relu-softmax-full-batch", "mnist-best"):
        assert n in names
    for n in names:
        spec = load_spec(n)
        assert spec.name == n
        load_spec(n, quick=True)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.update(bogus=1), "unknown key 'bogus'"),
    (lambda r: r["training"].update(lrr=0.1), "unknown key 'lrr' in [training]"),
    (lambda r: r["training"].update(lr=-1), "training.lr = -1"),
    (lambda r: r["training"].update(epochs=0), "training.epochs = 0"),
    (lambda r: r["split"].update(kind="random"), "split.kind = 'random'"),
    (lambda r: r["model"].update(hidden=[0]), "model.hidden"),
    (lambda r: r.update(protocol="faithful"), "protocol = 'faithful'"),
    (lambda r: r.update(runner="nope"), "runner"),
    (lambda r: r.update(sweep={"training.nope": [1]}), "unknown key 'nope'"),
    (lambda r: r.update(sweep={"training.lr": [0.1, "x"]}), "sweep.training.lr value 'x'"),
    (lambda r: r.update(sweep={"lr": [0.1]}), "sweep key 'lr'"),
    (lambda r: r.update(quick={"trainin": {}}), "unknown key 'trainin' in [quick]"),
    (lambda r: r["report"].update(extra=1), "unknown key 'extra' in [report]"),
])
def test_bad_specs_name_file_and_key(tiny_spec, mutate, fragment):
    raw = read_toml(tiny_spec)
    raw.setdefault("report", {})
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        from_dict(raw, origin=str(tiny_spec), quick=True)
    msg = str(info.value)
    assert str(tiny_spec) in msg
    assert fragment in msg
    assert "\n" not in msg


def test_options_checked_by_runner(tmp_path):
    p = tmp_path / "o.toml"
    p.write_text('name = "x"\nrunner = "ovr-logistic"\n[options]\nthreshold = 2\n')
    with pytest.raises(ConfigError, match=r"o\.toml: options\.threshold = 2"):
        load_spec(p)


def test_unknown_experiment_lists_builtins():
    with pytest.raises(ConfigError, match="two-hidden-layers"):
        load_spec("no-such-experiment")


def test_quick_and_overrides_merge(tiny_spec):
    raw = read_toml(tiny_spec)
    raw["quick"] = {"training": {"epochs": 1}}
    spec = from_dict(raw, origin="x.toml", quick=True, overrides={"data": {"data_dir": "/d"}})
    assert spec.sections["training"]["epochs"] == 1
    assert spec.sections["data"]["data_dir"] == "/d"
    assert spec.sweep["training.lr"] == [0.05, 0.2]
