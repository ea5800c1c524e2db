"""Model construction: parameter counts, state-dict layout, output shapes, decoding, fusing."""

from __future__ import annotations

import pytest
import torch

from models.probe import probe_outputs
from models.yolo import Model

# Upstream YOLOv5 v6.0 parameter counts for each yaml and class count.
UPSTREAM_PARAMS = {
    "n": {80: 1_872_157, 3: 1_767_976, 1: 1_765_270},
    "s": {80: 7_235_389, 3: 7_027_720, 1: 7_022_326},
    "m": {80: 21_190_557, 3: 20_879_400, 1: 20_871_318},
    "l": {80: 46_563_709, 3: 46_149_064, 1: 46_138_294},
    "x": {80: 86_749_405, 3: 86_231_272, 1: 86_217_814},
}
UPSTREAM_KEYS = {"n": 349, "s": 349, "m": 481, "l": 613, "x": 745}


@pytest.mark.parametrize("size", list(UPSTREAM_PARAMS))
def test_parameter_counts_and_key_counts_match_upstream(size):
    for nc, expected in UPSTREAM_PARAMS[size].items():
        model = Model(f"yolov5{size}.yaml", nc=nc)
        assert sum(p.numel() for p in model.parameters()) == expected, (size, nc)
        assert len(model.state_dict()) == UPSTREAM_KEYS[size]


def test_state_dict_naming():
    keys = Model("yolov5n.yaml", nc=3).state_dict()
    for key in ("model.0.conv.weight", "model.0.bn.running_var", "model.2.m.0.cv1.conv.weight", "model.9.cv2.bn.bias"):
        assert key in keys
    assert keys["model.24.anchors"].shape == (3, 3, 2)
    assert keys["model.24.m.0.weight"].shape == (3 * 8, 64, 1, 1)
    assert "model.24.stride" not in keys  # stride is measured, not stored


def test_strides_anchors_and_batchnorm_settings():
    model = Model("yolov5n.yaml", nc=3)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    # anchors are kept in stride units: P3's first anchor (10, 13) px at stride 8
    assert torch.allclose(model.detect.anchors[0, 0], torch.tensor([10 / 8, 13 / 8]))
    bn = model.model[0].bn
    assert bn.eps == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.03)


def test_train_and_eval_outputs():
    model = Model("yolov5n.yaml", nc=2)
    x = torch.rand(2, 3, 64, 96)
    raw = model.train()(x)
    assert [tuple(r.shape) for r in raw] == [(2, 3, 8, 12, 7), (2, 3, 4, 6, 7), (2, 3, 2, 3, 7)]
    with torch.no_grad():
        pred, raw_eval = model.eval()(x)
    assert pred.shape == (2, 3 * (8 * 12 + 4 * 6 + 2 * 3), 7)
    assert len(raw_eval) == 3
    scores = pred[..., 4:]
    assert scores.min() >= 0 and scores.max() <= 1


def test_decoding_formula_on_one_cell():
    """Check the documented decoding by hand for one anchor of one cell."""
    model = Model("yolov5n.yaml", nc=1).eval()
    with torch.no_grad():
        pred, raw = model(torch.rand(1, 3, 64, 64))
    level, a, gy, gx = 1, 2, 1, 3  # stride 16, grid 4x4
    t = raw[level][0, a, gy, gx]
    stride = 16.0
    anchor_px = model.detect.anchors[level, a] * stride
    cx = (torch.sigmoid(t[0]) * 2 - 0.5 + gx) * stride
    cy = (torch.sigmoid(t[1]) * 2 - 0.5 + gy) * stride
    wh = (torch.sigmoid(t[2:4]) * 2) ** 2 * anchor_px
    row = 3 * 8 * 8 + (a * 4 + gy) * 4 + gx  # level 0 has 3*8*8 rows, then anchor-major order
    expected = torch.cat((torch.stack((cx, cy)), wh, torch.sigmoid(t[4:])))
    assert torch.allclose(pred[0, row], expected, atol=1e-5)


def test_bias_priors():
    model = Model("yolov5n.yaml", nc=3)
    bias = model.detect.m[2].bias.view(3, -1)  # stride 32
    # conv biases start near 0 (uniform init) plus the priors; the mean over anchors is close to the prior
    assert abs(bias[:, 4].mean().item() - torch.log(torch.tensor(8 / (640 / 32) ** 2)).item()) < 0.2
    assert abs(bias[:, 5:].mean().item() - torch.log(torch.tensor(0.6 / (3 - 0.99))).item()) < 0.2


def _randomise_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_fused_matches_unfused():
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3).eval()
    _randomise_bn(model)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        pred, raw = model(x)
        model.fuse()
        assert model.is_fused()
        pred_f, raw_f = model(x)
    for a, b in zip(raw, raw_f, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(pred, pred_f, atol=1e-4, rtol=1e-5)
    assert not torch.equal(raw[0], torch.zeros_like(raw[0]))


def test_info_reports_params_and_flops():
    info = Model("yolov5n.yaml", nc=80).info(img_size=640)
    assert info["parameters"] == 1_872_157
    assert info["gflops"] == pytest.approx(4.5, abs=0.2)  # upstream reports 4.5 GFLOPs for yolov5n at 640


def test_nc_and_anchor_overrides_do_not_modify_the_input_dict():
    from models.config import load_model_yaml

    cfg, _ = load_model_yaml("yolov5n")
    model = Model(
        cfg, nc=7, anchors=[[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319], [400, 400, 500, 500, 600, 600]]
    )
    assert cfg["nc"] == 80
    assert model.nc == 7 and model.yaml["nc"] == 7
    assert torch.allclose(model.detect.anchors[1, 0] * 16, torch.tensor([81.0, 82.0]))


def test_detect_reads_the_features_of_the_layers_it_names():
    model = Model("yolov5n.yaml", nc=3)
    outs = probe_outputs(model, torch.rand(1, 3, 64, 64), [*model.detect.f, model.detect.i], lambda y: y)
    _, raw = outs[model.detect.i]
    assert model.detect.f == [17, 20, 23]
    assert [outs[i].shape[-2:] for i in model.detect.f] == [r.shape[2:4] for r in raw]
