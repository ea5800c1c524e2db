"""Writing checkpoints when the disk is full, read-only, or the target is a directory: a clear error, and the
previous file intact. The disk faults are simulated by a file object that fails like the OS does (the same
``OSError`` torch then wraps in its own ``RuntimeError``)."""

from __future__ import annotations

import errno
import io
import logging
import os
import signal

import pytest
import torch

import utils.checkpoint
import utils.files
from models.yolo import Model
from tools.convert_checkpoint import main as convert_main
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.files import increment_path


class _FailingFile(io.FileIO):
    """A file that raises ``OSError(code)`` once more than ``limit`` bytes were written."""

    def __init__(self, path, mode, code: int, limit: int):
        super().__init__(path, mode)
        self.code, self.limit, self.written = code, limit, 0

    def write(self, b):
        self.written += len(b)
        if self.written > self.limit:
            raise OSError(self.code, __import__("os").strerror(self.code))
        return super().write(b)


def _fail_writes(monkeypatch, code: int, limit: int = 4096) -> None:
    monkeypatch.setattr(utils.files, "open", lambda p, m: _FailingFile(p, m, code, limit), raising=False)


@pytest.fixture(scope="module")
def ckpt() -> dict:
    return make_checkpoint(Model("yolov5n.yaml", nc=2), ["a", "b"], epoch=3)


def test_disk_full_mid_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, ckpt):
    path = save_checkpoint({"epoch": 1, "t": torch.ones(3)}, tmp_path / "last.pt")
    before = path.read_bytes()
    _fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(
        CheckpointError, match=r"no space left on the device writing .*last.pt; the previous last.pt is"
    ):
        save_checkpoint(ckpt, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_disk_full_without_a_previous_file_says_so(tmp_path, monkeypatch, ckpt):
    _fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(CheckpointError, match=r"best.pt; no earlier best.pt existed"):
        save_checkpoint(ckpt, tmp_path / "best.pt")


def test_read_only_run_directory(tmp_path, monkeypatch, ckpt):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    def read_only(p, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(p))

    monkeypatch.setattr(utils.files, "open", read_only, raising=False)
    monkeypatch.setattr(utils.checkpoint.Path, "unlink", read_only)  # cleanup fails too, as on a real ro mount
    with pytest.raises(CheckpointError, match=r"cannot write .*last.pt: Read-only file system.*previous last.pt is"):
        save_checkpoint(ckpt, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_a_directory_as_target_is_refused(tmp_path, ckpt):
    (tmp_path / "out.pt").mkdir()
    with pytest.raises(CheckpointError, match=r"out.pt: it is a directory"):
        save_checkpoint(ckpt, tmp_path / "out.pt")


def _exit_status(main, argv) -> int:
    with pytest.raises(SystemExit) as e:
        run_main(main, argv)
    return e.value.code


def test_convert_checkpoint_reports_output_problems_in_one_line(tmp_path, monkeypatch, ckpt, caplog):
    src = save_checkpoint(ckpt, tmp_path / "src.pt")
    (tmp_path / "outdir").mkdir()
    with caplog.at_level(logging.ERROR):
        assert _exit_status(convert_main, ["--weights", str(src), "--out", str(tmp_path / "outdir")]) == 2
    assert "outdir: it is a directory" in caplog.text
    caplog.clear()
    _fail_writes(monkeypatch, errno.EROFS, limit=0)
    with caplog.at_level(logging.ERROR):
        assert _exit_status(convert_main, ["--weights", str(src), "--out", str(tmp_path / "new.pt")]) == 2
    assert "new.pt: Read-only file system" in caplog.text


def test_run_directory_under_a_file_or_read_only_mount(tmp_path, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"--project: cannot create the run directory .*afile is a file"):
        increment_path(blocker / "exp", mkdir=True)

    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(utils.files.Path, "mkdir", read_only)
    with pytest.raises(ValueError, match=r"--project: cannot create the run directory .*: Read-only file system"):
        increment_path(tmp_path / "ro" / "exp", mkdir=True)


class _InterruptedFile(io.FileIO):
    """A file that sends this process SIGINT (Ctrl-C) once, after its first write."""

    def write(self, b):
        n = super().write(b)
        if not getattr(self, "interrupted", False):
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)
        return n


def test_ctrl_c_during_a_write_is_raised_after_the_checkpoint_is_complete(tmp_path, monkeypatch, ckpt):
    monkeypatch.setattr(utils.files, "open", lambda p, m: _InterruptedFile(p, m), raising=False)
    path = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ckpt, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3  # written whole despite the interrupt
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
