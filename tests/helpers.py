"""Helpers shared by the HAT-family tests."""

from types import SimpleNamespace


def spy_on_rates(algo, monkeypatch):
    """Wrap `apply_rates`: record the gradients before and after the adjustment and the rates, per step."""
    calls = []
    original = algo.apply_rates

    def spy(rates):
        before = [(l.weight.grad.clone(), l.bias.grad.clone()) for l in algo.layers]
        kept = [(w.clone(), b.clone()) for w, b in rates]
        capacity = original(rates)
        after = [(l.weight.grad.clone(), l.bias.grad.clone()) for l in algo.layers]
        calls.append(SimpleNamespace(before=before, rates=kept, after=after, capacity=capacity))
        return capacity

    monkeypatch.setattr(algo, "apply_rates", spy)
    return calls
