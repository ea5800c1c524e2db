"""The dry-run probe of layer outputs: right values, no hooks left behind, modes and statistics unchanged."""

from __future__ import annotations

import pytest
import torch

from models.probe import probe_outputs
from models.yolo import Model


@pytest.fixture
def model() -> Model:
    torch.manual_seed(0)
    return Model("yolov5n.yaml", nc=3)


def _hook_count(model: Model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_outputs_of_the_chosen_layers(model):
    x = torch.rand(1, 3, 64, 64)
    shapes = probe_outputs(model, x, [0, 17, 20, 23], lambda y: tuple(y.shape))
    assert shapes == {0: (1, 16, 32, 32), 17: (1, 64, 8, 8), 20: (1, 128, 4, 4), 23: (1, 256, 2, 2)}

    model.eval()
    with torch.no_grad():
        first_two = model.model[1](model.model[0](x))
        decoded, _ = model(x)
    values = probe_outputs(model, x, [1, 24], lambda y: y)
    torch.testing.assert_close(values[1], first_two)
    torch.testing.assert_close(values[24][0], decoded)  # Detect in eval mode: (decoded [1, N, 5 + nc], raw)
    assert values[24][0].shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8)


def test_hooks_are_removed_and_modes_restored(model):
    model.train()
    model.model[2].eval()  # a frozen block stays frozen
    bn = model.model[0].bn
    stats = bn.running_mean.clone()
    probe_outputs(model, torch.zeros(1, 3, 64, 64), range(len(model.model)), lambda y: None)
    assert _hook_count(model) == 0
    assert model.training and model.model[0].bn.training
    assert not any(m.training for m in model.model[2].modules())
    torch.testing.assert_close(bn.running_mean, stats)  # eval mode: batch-norm statistics untouched

    model.eval()
    probe_outputs(model, torch.zeros(1, 3, 64, 64), [0], lambda y: None)
    assert not any(m.training for m in model.modules())


def test_hooks_are_removed_when_the_pass_fails(model):
    model.train()

    def fail(_y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        probe_outputs(model, torch.zeros(1, 3, 64, 64), [3, 5], fail)
    assert _hook_count(model) == 0
    assert all(m.training for m in model.modules())


def test_a_layer_outside_the_model_is_named(model):
    with pytest.raises(ValueError, match="layer index 25 is not a layer of the model"):
        probe_outputs(model, torch.zeros(1, 3, 64, 64), [4, 25], lambda y: y)
    assert _hook_count(model) == 0
