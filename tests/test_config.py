"""Layered configuration: unknown keys and names, type checks, layer order, and the CLI's exit code 2."""

from pathlib import Path

import pytest

from baselines import METHODS
from common import config, runner
from common.algorithm import Algorithm
from common.config import ConfigError

BASE = {"method": "finetuning", "benchmark": "synthetic"}


def resolve(**cli):
    return config.resolve({**BASE, **cli}, METHODS)


# --- errors ------------------------------------------------------------------------------------------------------


def test_unknown_key_names_it_and_suggests_a_close_one():
    with pytest.raises(ConfigError) as err:
        resolve(lrr="0.1")
    msg = str(err.value)
    assert "'lrr'" in msg
    assert "did you mean lr" in msg
    with pytest.raises(ConfigError, match=r"'sed'.*did you mean seed"):
        resolve(sed="1")


def test_unknown_key_of_another_method_is_rejected():
    # ewc_lambda is a hyperparameter of ewc only
    assert resolve(method="ewc", ewc_lambda="10")["ewc_lambda"] == 10.0
    with pytest.raises(ConfigError, match="ewc_lambda"):
        resolve(ewc_lambda="10")


def test_unknown_method_lists_registered_ones():
    with pytest.raises(ConfigError) as err:
        resolve(method="nosuchmethod")
    msg = str(err.value)
    assert "nosuchmethod" in msg
    for name in METHODS:
        assert name in msg


def test_missing_method_or_benchmark():
    with pytest.raises(ConfigError, match="method"):
        config.resolve({"benchmark": "synthetic"}, METHODS)
    with pytest.raises(ConfigError, match="benchmark"):
        config.resolve({"method": "finetuning"}, METHODS)


def test_unknown_benchmark_lists_available_ones():
    with pytest.raises(ConfigError) as err:
        resolve(benchmark="nosuchbench")
    msg = str(err.value)
    assert "nosuchbench" in msg
    for name in ("pmnist", "synthetic", "scifar100"):
        assert name in msg


@pytest.mark.parametrize("key, value", [
    ("seed", "abc"),
    ("seed", "1.5"),
    ("seed", "-1"),
    ("lr", "-1"),
    ("lr", "0"),
    ("lr", "fast"),
    ("batch_norm", "maybe"),
    ("batch_norm", "2"),
    ("num_tasks", "0"),
    ("references", "sometimes"),
    ("backbone", "vgg"),
    ("setting", "cil"),
])
def test_bad_values(key, value):
    with pytest.raises(ConfigError, match=key.split("_")[0]):
        resolve(**{key: value})


def test_negative_threads_rejected():
    with pytest.raises(ConfigError, match="threads"):
        resolve(threads="-1")


def test_cli_strings_are_parsed_by_type():
    cfg = resolve(lr="1e-3", seed="7", batch_norm="false", num_tasks="2", weight_decay="0", run_name="123")
    assert cfg["lr"] == 0.001 and type(cfg["lr"]) is float
    assert cfg["seed"] == 7 and type(cfg["seed"]) is int
    assert cfg["batch_norm"] is False
    assert cfg["num_tasks"] == 2
    assert cfg["weight_decay"] == 0.0 and type(cfg["weight_decay"]) is float  # an int is accepted for a float
    assert cfg["run_name"] == "123"  # a word key keeps the text
    assert resolve(lr="2.5E-4")["lr"] == 2.5e-4


def test_references_none_accepted():
    assert resolve(references="none")["references"] == "none"
    assert resolve()["references"] == "auto"


def test_parse_cli_needs_key_value():
    assert config.parse_cli(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        config.parse_cli(["lr"])


# --- layer order: engine defaults/hparams < method YAML < benchmark YAML < study layer < CLI ---------------------


class Layered(Algorithm):
    name = "layered"
    hparams = {"alpha": 1.0, "beta": 1.0}

    @classmethod
    def yaml_defaults(cls):
        # the method YAML: sets keys that later layers override, and two no one else touches
        return {"alpha": 2.0, "weight_decay": 0.5, "epochs": 7, "lr": 0.7, "seed": 3, "batch_size": 3}


def test_layer_order():
    methods = {"layered": Layered}
    study = {"lr": 0.2, "seed": 4, "num_tasks": 2}
    cfg = config.resolve({"method": "layered", "benchmark": "synthetic", "seed": "5", "batch_size": "8"},
                         methods, study)
    # synthetic.yaml: num_tasks 3, epochs 2, batch_size 32, backbone mlp
    assert cfg["beta"] == 1.0            # class hparam default only
    assert cfg["alpha"] == 2.0           # method YAML over the class hparam default
    assert cfg["weight_decay"] == 0.5    # method YAML over the engine default
    assert cfg["epochs"] == 2            # benchmark YAML over method YAML
    assert cfg["backbone"] == "mlp"      # benchmark YAML over the engine default (None)
    assert cfg["num_tasks"] == 2         # study layer over benchmark YAML
    assert cfg["lr"] == 0.2              # study layer over method YAML
    assert cfg["seed"] == 5              # CLI over study layer over method YAML
    assert cfg["batch_size"] == 8        # CLI over benchmark YAML over method YAML
    assert cfg["eval_batch_size"] == 2000  # engine default


def test_real_method_yaml_then_cli():
    assert resolve()["batch_norm"] is True  # baselines/configs/finetuning.yaml
    assert resolve(batch_norm="false")["batch_norm"] is False
    assert config.resolve({"method": "independent", "benchmark": "synthetic"}, METHODS)["batch_norm"] is False
    assert resolve(method="lwf")["distill_gradient"] is False


STUDY = """
description: a test study
benchmarks: [synthetic]
seeds: [1]
settings: {epochs: 5, lr: 0.01, num_tasks: 2}
methods:
  finetuning: {lr: 0.03}
  ft_small: {method: finetuning, batch_size: 8}
"""


def write_study(package_dir, name, text):
    studies = package_dir / "configs" / "studies"
    studies.mkdir(parents=True, exist_ok=True)
    (studies / f"{name}.yaml").write_text(text)


def test_study_layer_between_benchmark_and_cli(tmp_path):
    write_study(tmp_path, "mine", STUDY)
    cli, layer = runner.apply_study(tmp_path, {**BASE, "study": "mine", "lr": "0.02"})
    cfg = config.resolve(cli, METHODS, layer)
    assert cfg["epochs"] == 5            # study settings over benchmark YAML (2)
    assert cfg["num_tasks"] == 2         # study settings over benchmark YAML (3)
    assert cfg["lr"] == 0.02             # CLI over the study's method entry (0.03) over its settings (0.01)
    assert cfg["batch_norm"] is True     # method YAML, untouched by the study
    assert cfg["study"] == "mine"
    cli, layer = runner.apply_study(tmp_path, {**BASE, "study": "mine"})
    assert config.resolve(cli, METHODS, layer)["lr"] == 0.03  # method entry over study settings
    # an entry named differently from its method becomes the run name
    cli, layer = runner.apply_study(tmp_path, {**BASE, "method": "ft_small", "study": "mine"})
    cfg = config.resolve(cli, METHODS, layer)
    assert cfg["method"] == "finetuning" and cfg["run_name"] == "ft_small" and cfg["batch_size"] == 8
    # the default study has no file and no settings; any other name must be a study file of the folder
    assert runner.apply_study(tmp_path, {**BASE, "study": "default"})[1] is None
    assert runner.apply_study(tmp_path, BASE)[1] is None
    with pytest.raises(ConfigError, match=r"unknown study 'nofile'.*mine"):
        runner.apply_study(tmp_path, {**BASE, "study": "nofile"})


# --- the command line: exit code 2 and one `error:` line ----------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["method=finetuning", "benchmark=synthetic", "lrr=0.1"], "lrr"),
    (["method=nosuchmethod", "benchmark=synthetic"], "registered methods"),
    (["method=finetuning", "benchmark=nosuchbench"], "nosuchbench"),
    (["method=finetuning", "benchmark=synthetic", "seed=abc"], "seed"),
    (["method=finetuning", "benchmark=synthetic", "lr=-1"], "lr"),
    (["method=finetuning", "benchmark=synthetic", "batch_norm=maybe"], "batch_norm"),
    (["method=finetuning", "benchmark=synthetic", "seed"], "key=value"),
    (["benchmark=synthetic"], "method"),
])
def test_main_exit_code_2(argv, needle, capsys, tmp_path):
    code = runner.main(argv + [f"out_dir={tmp_path}"], METHODS, Path("baselines"))
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert not any(tmp_path.iterdir())  # nothing was written


def test_main_bad_study_file_key(tmp_path, capsys):
    write_study(tmp_path / "pkg", "bad", "benchmarks: [synthetic]\nmethods:\n  finetuning: {epochz: 1}\n")
    code = runner.main(["method=finetuning", "benchmark=synthetic", "study=bad", f"out_dir={tmp_path / 'runs'}"],
                       METHODS, tmp_path / "pkg")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "epochz" in err and "study file" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_main_help(capsys):
    assert runner.main(["--help"], METHODS, Path("baselines")) == 0
    assert "finetuning" in capsys.readouterr().out
