"""Exported files are written whole or not at all: a full disk or a read-only folder gives a one-line error
naming the file and leaves an earlier export intact; --out-dir chooses the folder."""

from __future__ import annotations

import errno
import logging
import os
import runpy
from pathlib import Path

import pytest
import torch

from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.export import ExportConfig, run_export

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    return save_checkpoint(make_checkpoint(model, ["RBC", "WBC", "Platelets"]), tmp_path / "n.pt")


def _cli(argv: list[str], caplog) -> str:
    main = runpy.run_path(str(REPO / "export.py"))["main"]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(main, argv)
    assert e.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    return errors[0]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_full_disk_keeps_the_previous_export_and_names_the_file(weights, tmp_path, monkeypatch, caplog, fmt):
    run_export(ExportConfig(weights=str(weights), include=[fmt], imgsz=64, check=False))
    target = weights.with_suffix(f".{fmt}")
    good = target.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("utils.files.os.fsync", full)
    message = _cli(["--weights", str(weights), "--include", fmt, "--imgsz", "64", "--no-check"], caplog)
    assert message == f"error: no space left on the device writing {target}; the previous {target.name} is intact"
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["n.pt", target.name])  # no temporary file left


def test_read_only_folder_is_a_one_line_error(weights, tmp_path, caplog):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop writes")
        message = _cli(["--weights", str(weights), "--include", "onnx", "--imgsz", "64", "--out-dir", str(out)],
                       caplog)  # fmt: skip
        assert f"cannot write {out / 'n.onnx'}" in message and "is not writable" in message
    finally:
        out.chmod(0o755)


def test_out_dir_is_created_and_holds_the_files(weights, tmp_path):
    out = tmp_path / "exports" / "v1"
    result = run_export(ExportConfig(weights=str(weights), include=["onnx", "torchscript"], imgsz=64, out_dir=str(out)))
    assert result.ok and result.files == {"onnx": out / "n.onnx", "torchscript": out / "n.torchscript"}
    assert not weights.with_suffix(".onnx").exists()


def test_out_dir_that_is_a_file_is_refused(weights, tmp_path):
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run_export(ExportConfig(weights=str(weights), include=["onnx"], imgsz=64, out_dir=str(weights)))
