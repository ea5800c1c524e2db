"""utils.cli.run_main: exit statuses, and the collector's settings changed only for a program's own run."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from utils.cli import YOUNG_OBJECTS_PER_COLLECTION, run_main

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import atexit, gc, sys
from utils.cli import YOUNG_OBJECTS_PER_COLLECTION, run_main
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
def main(argv):
    print("threshold", gc.get_threshold()[0], flush=True)
    if sys.argv[1] == "bad":
        raise ValueError("--x 3: not allowed")
    with open(sys.argv[2], "w") as f:
        f.write("done\\n")
run_main(main)
"""


def test_the_command_line_ends_with_the_collector_frozen_and_its_files_written(tmp_path):
    out = tmp_path / "out.txt"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, "good", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "frozen True" in proc.stdout
    assert f"threshold {YOUNG_OBJECTS_PER_COLLECTION}" in proc.stdout
    assert out.read_text() == "done\n"


def test_bad_input_on_the_command_line_still_ends_in_one_line_with_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROGRAM, "bad", str(tmp_path / "x")], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "error: --x 3: not allowed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_main_called_with_argv_changes_nothing_in_the_collector():
    before, threshold = gc.get_freeze_count(), gc.get_threshold()
    seen = []
    run_main(lambda argv: seen.append((argv, gc.get_threshold())), ["--flag"])
    assert seen == [(["--flag"], threshold)]
    assert gc.get_freeze_count() == before and gc.get_threshold() == threshold
    with pytest.raises(SystemExit) as e:
        run_main(lambda argv: (_ for _ in ()).throw(ValueError("bad")), ["--x"])
    assert e.value.code == 2
    assert gc.get_freeze_count() == before
