"""The INT8 benchmark's report: one table over every saved model and size, each result's figures in its rows."""

from __future__ import annotations

import json

from benchmarks import int8_bccd


def _result(weights: str, imgsz: int, onnx_ms: float, int8_ms: float, command: str) -> dict:
    acc = {"mAP50": 0.8, "mAP50-95": 0.5}
    return {
        "weights": f"/somewhere/{weights}", "imgsz": imgsz, "calib_images": 100,
        "settings": {"method": "minmax", "per_channel": True}, "size_mb": {"pytorch": 14.3, "onnx": 28.2, "int8": 7.5},
        "accuracy": {"pytorch": acc, "onnx": acc, "int8": {"mAP50": 0.79, "mAP50-95": 0.49}},
        "agreement": {"float_matched": 0.95, "int8_matched": 0.97},
        "latency_ms": {"pytorch": 100.0, "onnx": onnx_ms, "int8": int8_ms},
        "latency": {"rounds": 5, "runs": 20, "threads": 2}, "cpu_features": ["avx512_vnni"], "onnxruntime": "1.x",
        "environment": {"cpu": "x86_64", "commit": "abc1234"}, "command": command,
    }  # fmt: skip


def test_the_table_covers_every_saved_result(tmp_path, monkeypatch):
    monkeypatch.setattr(int8_bccd, "RESULTS", tmp_path)
    (tmp_path / "b_640.json").write_text(json.dumps(_result("b.pt", 640, 64.0, 32.0, "cmd b")))
    (tmp_path / "a_320.json").write_text(json.dumps(_result("a.pt", 320, 10.0, 8.0, "cmd a")))
    (tmp_path / "a_320_calibration.json").write_text("{}")  # another table's: not read here
    results = int8_bccd.saved_results()
    assert [(r["weights"].split("/")[-1], r["imgsz"]) for r in results] == [("a.pt", 320), ("b.pt", 640)]
    text = int8_bccd.report(results)
    assert "| `a.pt` | 320 | ONNX INT8 | 7.5 | 0.490 | 0.790 | 8.0 | 1.25x |" in text
    assert "| `b.pt` | 640 | ONNX INT8 | 7.5 | 0.490 | 0.790 | 32.0 | 2.00x |" in text
    assert "| `b.pt` | 640 | PyTorch fp32 | 14.3 | 0.500 | 0.800 | 100.0 | 0.64x |" in text
    assert "`cmd a`; `cmd b`" in text and "`b.pt` at 640 px: 95.0% of float detections" in text
