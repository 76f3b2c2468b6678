"""Helpers shared by several test files."""

from types import SimpleNamespace


def spy_on_rates(algo, monkeypatch):
    """Wrap `apply_rates`: record the gradients before and after the adjustment and the rates, per step."""
    calls = []
    original = algo.apply_rates

    def spy(rates):
        before = [(l.weight.grad.clone(), l.bias.grad.clone()) for l in algo.layers]
        kept = [(w.clone(), b.clone()) for w, b in rates]
        original(rates)
        after = [(l.weight.grad.clone(), l.bias.grad.clone()) for l in algo.layers]
        calls.append(SimpleNamespace(before=before, rates=kept, after=after, capacity=algo.step_capacity(rates)))

    monkeypatch.setattr(algo, "apply_rates", spy)
    return calls


def tiny_cfg(method: str, methods: dict, tmp_path, **extra) -> dict:
    """The resolved configuration of a tiny run of `method` (synthetic data, 2 tasks, 1 epoch, no references)."""
    from common import config

    cli = {"method": method, "benchmark": "synthetic", "num_tasks": 2, "epochs": 1, "threads": 1,
           "out_dir": str(tmp_path), "references": "none", **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, methods)


def tiny_method(method_cls, cfg: dict, benchmark: str, num_tasks: int):
    """(tasks, the method built on them with the run's seed) for a configuration made by `tiny_cfg`."""
    import torch

    from common import benchmarks

    tasks = benchmarks.build_benchmark(benchmark, num_tasks, train_subset=cfg["train_subset"])
    torch.manual_seed(cfg["seed"])
    return tasks, method_cls(cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
