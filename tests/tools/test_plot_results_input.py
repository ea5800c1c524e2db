"""tools/plot_results.py on bad input: unwritable --out, results.csv that is not text, malformed rows."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from tools.plot_results import main as plot_main
from utils.cli import run_main

HEADER = "epoch,train/box_loss,metrics/mAP_0.5,metrics/mAP_0.5:0.95\n"


def _run(folder: Path, rows: int = 3, tail: str = "") -> Path:
    folder.mkdir(parents=True)
    lines = [f"{e},{0.1 / (e + 1):.4f},{0.1 * e:.4f},{0.05 * e:.4f}\n" for e in range(rows)]
    (folder / "results.csv").write_text(HEADER + "".join(lines) + tail)
    return folder


def _exit_2(argv: list[str], caplog) -> str:
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(plot_main, argv)
    assert e.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    return errors[0]


def test_out_onto_an_existing_file_is_a_one_line_error(tmp_path, caplog):
    run = _run(tmp_path / "a")
    target = tmp_path / "taken.png"
    target.write_bytes(b"x")
    target.chmod(0o444)
    message = _exit_2([str(run), "--out", str(target)], caplog)
    assert str(target) in message and "is a file, not a folder" in message


def test_out_in_a_read_only_folder_is_a_one_line_error(tmp_path, caplog, monkeypatch):
    run = _run(tmp_path / "a")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anyway: make the folder refuse as a read-only mount does
        real_mkdir = Path.mkdir

        def refuse(self, *a, **kw):
            if self.is_relative_to(locked):
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            return real_mkdir(self, *a, **kw)

        monkeypatch.setattr(Path, "mkdir", refuse)
    message = _exit_2([str(run), "--out", str(locked / "cmp")], caplog)
    assert f"--out {locked / 'cmp'}: cannot write" in message


def test_a_results_csv_that_is_not_utf8_is_named(tmp_path, caplog):
    run = _run(tmp_path / "a")
    (run / "results.csv").write_bytes(HEADER.encode() + b"0,\xff\xfe,0.1,0.1\n")
    message = _exit_2([str(run), "--out", str(tmp_path / "cmp")], caplog)
    assert str(run / "results.csv") in message and "not UTF-8" in message


@pytest.mark.parametrize("tail", ["3,0.02\n", "garbage appended by hand\n", "3,0.02,oops,0.1\n", "nan,0.1,0.1,0.1\n"])
def test_a_malformed_appended_row_is_skipped_with_a_warning(tail, tmp_path, caplog):
    run = _run(tmp_path / "a", rows=3, tail=tail)
    with caplog.at_level(logging.WARNING):
        rows, files = plot_main([str(run), "--out", str(tmp_path / "cmp")])
    assert rows[0].epochs == 3 and rows[0].best_map50 == pytest.approx(0.2)
    assert f"{run / 'results.csv'}:5: malformed row" in caplog.text
    assert files["figure"].is_file()
