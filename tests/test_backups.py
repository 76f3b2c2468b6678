"""Backup backbones of AmnesiacHAT (`amnesiachat/backups.py`, `spec/algorithms.md` §5.3, §5.4, §5.6 step 3)."""

import copy

import pytest
import torch
from torch import nn

from amnesiachat.backups import (
    backup_key_map,
    compensate,
    compensation_selector,
    load_weights,
    make_backup,
    overlap,
    routed_forward,
    save_state,
)
from common.hat import MaskedMLP, MaskedResNet18

pytestmark = pytest.mark.usefixtures("one_thread")


def small_mlp():
    torch.manual_seed(0)
    return MaskedMLP(input_dim=12, hidden=(10, 8), output_dim=6)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return MaskedResNet18(in_channels=3)


def inputs(main):
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32) if isinstance(main, MaskedResNet18) else torch.randn(2, 3, 4)


def soft_masks(main):
    return main.gates(2.0)


def random_binary(main, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, generator=gen) > 0.5).float() for n in main.units]


def constant(main, value):
    return [torch.full((n,), value) for n in main.units]


def with_backup_weights(main, backup):
    """A copy of `main` whose weighted layers and projection shortcuts carry the backup's weights."""
    state = save_state(backup)
    twin = copy.deepcopy(main)
    missing = twin.load_state_dict({m: state[b] for m, b in backup_key_map(main).items()}, strict=False)
    assert not missing.unexpected_keys
    return twin


# ----- creation and loading ------------------------------------------------------------------------------------------
def test_make_backup_mirrors_shapes_with_fresh_weights(resnet):
    for main in (small_mlp(), resnet):
        backup = make_backup(main)
        assert [l.weight.shape for l in backup.layers] == [l.weight.shape for l in main.weighted_layers]
        assert not any(torch.equal(b.weight, m.weight) for b, m in zip(backup.layers, main.weighted_layers))
        assert not any(p.requires_grad is False for p in backup.parameters())
    kinds = [type(s) for s in make_backup(resnet).shortcuts]
    assert kinds == [type(s) for s in resnet.shortcuts] and kinds.count(nn.Conv2d) == 3
    assert len(make_backup(small_mlp()).shortcuts) == 0


def test_make_backup_rejects_batch_norm():
    with pytest.raises(NotImplementedError, match="batch_norm"):
        make_backup(MaskedMLP(input_dim=4, hidden=(3,), output_dim=2, bn_mode="shared"))


def test_key_map_covers_aliases_and_skips_embeddings(resnet):
    keys = backup_key_map(resnet)
    assert keys["stem.weight"] == keys["convs.0.weight"] == "layers.0.weight"
    assert keys["convs.3.weight"] == "layers.3.weight" and keys["shortcuts.2.weight"] == "shortcuts.2.weight"
    assert "shortcuts.0.weight" not in keys and not any(k.startswith("embeddings") for k in keys)
    assert set(keys.values()) == set(make_backup(resnet).state_dict())
    assert backup_key_map(small_mlp())["fc.1.bias"] == "layers.1.bias"


def test_load_weights_is_non_strict_and_checks_shapes():
    main = small_mlp()
    backup = make_backup(main)
    tensors = {k: v + 1 for k, v in main.state_dict().items()}
    assert load_weights(backup, tensors) == []  # embeddings ignored, everything else loaded
    assert torch.equal(backup.layers[2].bias, main.fc[2].bias + 1)
    assert load_weights(backup, {"fc.0.weight": main.fc[0].weight, "embeddings.0": torch.zeros(10)}) == [
        "layers.0.bias", "layers.1.bias", "layers.1.weight", "layers.2.bias", "layers.2.weight"]
    with pytest.raises(ValueError, match="shape"):
        load_weights(backup, {"fc.0.bias": torch.zeros(3)})


# ----- routed forward ------------------------------------------------------------------------------------------------
def test_zero_backup_masks_give_main_forward(resnet):
    for main in (small_mlp(), resnet):
        x, mt = inputs(main), soft_masks(main)
        routed = routed_forward(main, make_backup(main), x, constant(main, 0.0), mt)
        assert torch.equal(routed, main(x, mt))


def test_one_backup_masks_give_backup_weights_everywhere(resnet):
    for main in (small_mlp(), resnet):
        backup, x, mt = make_backup(main), inputs(main), soft_masks(main)
        routed = routed_forward(main, backup, x, constant(main, 1.0), mt)
        assert torch.equal(routed, with_backup_weights(main, backup)(x, mt))
        assert not torch.allclose(routed, main(x, mt))
        load_weights(backup, main.state_dict())
        assert torch.equal(routed_forward(main, backup, x, constant(main, 1.0), mt), main(x, mt))


def test_random_masks_route_unit_by_unit():
    """Layer by layer against a hand-written loop: backup rows where m^b = 1, main rows elsewhere."""
    main = small_mlp()
    backup, x, mt, mb = make_backup(main), inputs(main), soft_masks(main), random_binary(main)
    h = x.flatten(1)
    for l, layer in enumerate(main.fc):
        z = torch.where(mb[l].bool(), backup.layers[l](h), layer(h))
        h = torch.relu(mt[l] * z)
    assert torch.allclose(routed_forward(main, backup, x, mb, mt), h, atol=1e-6)


def assert_rows_zero(grad, rows):
    assert grad is not None and rows.any()
    assert torch.equal(grad[rows], torch.zeros_like(grad[rows]))


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_gradients_follow_the_routing(kind, resnet):
    main = small_mlp() if kind == "mlp" else copy.deepcopy(resnet)
    backup, x = make_backup(main), inputs(main)
    mb = random_binary(main)
    mb[0] = torch.ones_like(mb[0])  # layer 0 entirely on the backup side
    routed_forward(main, backup, x, mb, main.gates(2.0)).pow(2).sum().backward()
    first = main.weighted_layers[0]
    assert first.weight.grad is None or not first.weight.grad.any()
    for l in range(1, len(mb)):
        main_grad, backup_grad = main.weighted_layers[l].weight.grad, backup.layers[l].weight.grad
        assert_rows_zero(main_grad, mb[l] == 1)
        assert_rows_zero(backup_grad, mb[l] == 0)
        assert main_grad[mb[l] == 0].any() and backup_grad[mb[l] == 1].any()
    assert backup.layers[0].weight.grad.any()
    assert all(e.grad is not None and e.grad.any() for e in main.embeddings)  # the soft mask keeps its gradient
    if kind == "resnet":  # block 2's projection shortcut follows the m^b of conv 6, the block's last conv
        rows = mb[6] == 1
        assert_rows_zero(main.shortcuts[2].weight.grad, rows)
        assert_rows_zero(backup.shortcuts[2].weight.grad, ~rows)


def test_main_forward_sends_no_gradient_to_backup():
    main = small_mlp()
    backup, x = make_backup(main), inputs(main)
    main(x, soft_masks(main)).sum().backward()
    assert all(p.grad is None for p in backup.parameters())


# ----- compensation --------------------------------------------------------------------------------------------------
def test_overlap_is_the_unit_intersection():
    got = overlap([torch.tensor([1.0, 1, 0, 0])], [torch.tensor([1.0, 0, 1, 0])])
    assert torch.equal(got[0], torch.tensor([1.0, 0, 0, 0]))


def test_selector_and_compensation_on_a_hand_built_network():
    torch.manual_seed(0)
    main = MaskedMLP(input_dim=3, hidden=(4,), output_dim=2)  # fc.0: 4x3, fc.1: 2x4
    units = [torch.tensor([1.0, 0, 1, 0]), torch.tensor([0.0, 1])]
    w0 = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)  # first layer: row only
    w1 = torch.tensor([[0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)  # unit 1 of fc.1 AND units 0, 2 of fc.0
    expected = [(w0, units[0].bool()), (w1, units[1].bool())]
    selector = compensation_selector(units, main.weighted_layers)
    assert all(torch.equal(s, e) for pair, pair_e in zip(selector, expected) for s, e in zip(pair, pair_e))

    before = copy.deepcopy(main.state_dict())
    state = {k: torch.full_like(v, 100.0) for k, v in save_state(make_backup(main)).items()}
    assert compensate(main, state, units) == 6 + 2 + 2 + 1
    for l, (sel_w, sel_b) in enumerate(expected):
        for name, sel in (("weight", sel_w), ("bias", sel_b)):
            want = torch.where(sel, torch.tensor(100.0), before[f"fc.{l}.{name}"])
            assert torch.equal(getattr(main.fc[l], name), want)
    assert all(torch.equal(e, before[f"embeddings.{l}"]) for l, e in enumerate(main.embeddings))


def test_compensation_leaves_resnet_shortcuts_alone(resnet):
    main = copy.deepcopy(resnet)
    before = copy.deepcopy(main.state_dict())
    state = {k: v + 1 for k, v in save_state(make_backup(main)).items()}
    compensate(main, state, constant(main, 1.0))
    assert all(torch.equal(c.weight, state[f"layers.{l}.weight"]) for l, c in enumerate(main.convs))
    for k, s in enumerate(main.shortcuts):
        if isinstance(s, nn.Conv2d):
            assert torch.equal(s.weight, before[f"shortcuts.{k}.weight"])
