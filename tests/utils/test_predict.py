"""utils/runners/predict.py: the settings detect.py and auto_label share, and the Predictor both run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from utils.boxes import scale_boxes
from utils.nms import non_max_suppression
from utils.runners.auto_label import AutoLabelConfig
from utils.runners.detect import DetectConfig
from utils.runners.predict import InferenceConfig, Predictor, add_inference_args

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "bccd_sample" / "images" / "val"
NAMES = ["RBC", "WBC", "Platelets"]


@pytest.fixture
def weights(random_bccd_weights) -> Path:
    return random_bccd_weights


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("imgsz", 0, "--imgsz must be >= 1, got 0"),
        ("conf_thres", 1.5, "--conf-thres must be >= 0 and <= 1, got 1.5"),
        ("iou_thres", -0.1, "--iou-thres must be >= 0 and <= 1, got -0.1"),
        ("max_det", 0, "--max-det must be >= 1, got 0"),
        ("vid_stride", 0, "--vid-stride must be >= 1, got 0"),
        ("weights", "", "--weights is required"),
        ("source", "", "--source is required"),
    ],
)
@pytest.mark.parametrize("cls", [DetectConfig, AutoLabelConfig])
def test_both_runners_refuse_the_same_bad_settings(cls, field, value, message):
    with pytest.raises(ValueError, match=f"^{message}".replace("[", r"\[").replace("]", r"\]")):
        cls(**{"weights": "w.pt", "source": "img.jpg", field: value})


def test_shared_flags_take_each_runners_defaults():
    for cls, project in [(DetectConfig, "runs/detect"), (AutoLabelConfig, "runs/auto_label")]:
        ns = add_inference_args(argparse.ArgumentParser(), cls).parse_args(["--conf-thres", "0.4"])
        assert (ns.project, ns.conf_thres, ns.imgsz, ns.vid_stride) == (project, 0.4, 640, 1)


def test_predictions_equal_model_plus_nms_scaled_to_the_original_image(weights):
    cfg = InferenceConfig(weights=str(weights), source=str(SAMPLE), imgsz=96, device="cpu", conf_thres=1e-4, max_det=7)
    predictor = Predictor(cfg)
    assert predictor.names == NAMES and predictor.stride == 32
    path, img, img0, _, _ = next(iter(predictor.images()))
    det = predictor(img, img0)
    assert det.shape[1] == 6 and 0 < len(det) <= 7 and det.dtype == torch.float32
    h0, w0 = img0.shape[:2]
    assert (det[:, [0, 2]] >= 0).all() and (det[:, [0, 2]] <= w0).all()
    assert (det[:, [1, 3]] >= 0).all() and (det[:, [1, 3]] <= h0).all()

    # the same image through the model and NMS by hand
    x = torch.from_numpy(img).float().unsqueeze(0) / 255
    with torch.no_grad():
        pred, _ = predictor.model(x)
    ref = non_max_suppression(pred, 1e-4, cfg.iou_thres, max_det=7)[0]
    ref[:, :4] = scale_boxes(x.shape[2:], ref[:, :4], (h0, w0))
    torch.testing.assert_close(det, ref)


def test_class_filter_keeps_only_the_given_ids(weights):
    cfg = InferenceConfig(weights=str(weights), source=str(SAMPLE), imgsz=96, device="cpu", conf_thres=1e-4)
    predictor = Predictor(cfg, classes=[1])
    _, img, img0, _, _ = next(iter(predictor.images()))
    det = predictor(img, img0)
    assert len(det) and set(det[:, 5].tolist()) == {1.0}
