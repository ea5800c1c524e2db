"""utils.torch_utils: the fused copy that validation runs."""

from __future__ import annotations

import torch
from torch import nn

from models.yolo import Model
from utils.torch_utils import fused_copy


def test_fused_copy_matches_the_model_and_leaves_it_untouched():
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    for m in model.modules():  # BatchNorm statistics away from the identity, so that folding them matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fused_copy(model)
    assert fused.is_fused() and not model.is_fused()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0], model(x)[0], rtol=1e-4, atol=1e-3)


def test_a_model_without_fuse_is_copied_as_it_is():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    copied = fused_copy(net)
    assert copied is not net and isinstance(copied[1], nn.BatchNorm2d)
    assert torch.equal(copied[0].weight, net[0].weight)
