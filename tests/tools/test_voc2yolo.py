"""End-to-end runs of tools/voc2yolo.py as a program, started from a folder other than the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tools.voc2yolo import parse_args

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "voc2yolo.py"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def make_voc(root: Path, n: int = 10) -> None:
    """A devkit-style set without ImageSets: n images of 60x40 with one box each, plus one broken XML."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i in range(n):
        Image.new("RGB", (60, 40), (200, 100, 50)).save(root / "JPEGImages" / f"s{i}.jpg")
        name = "RBC" if i % 2 else "WBC"
        (root / "Annotations" / f"s{i}.xml").write_text(
            f"<annotation><filename>s{i}.jpg</filename><size><width>60</width><height>40</height></size>"
            f"<object><name>{name}</name><difficult>0</difficult>"
            "<bndbox><xmin>7</xmin><ymin>5</ymin><xmax>37</xmax><ymax>25</ymax></bndbox></object></annotation>"
        )
    Image.new("RGB", (60, 40)).save(root / "JPEGImages" / "broken.jpg")
    (root / "Annotations" / "broken.xml").write_text("<annotation><object>")


@pytest.mark.slow
def test_cli_converts_from_another_folder(tmp_path):
    make_voc(tmp_path / "src" / "VOC")
    work = tmp_path / "elsewhere"
    work.mkdir()
    args = ["--voc-root", "../src/VOC", "--out", "yolo", "--classes", "WBC", "RBC", "--ratios", "0.6", "0.4"]
    proc = run(work, *args, "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "images: 10 (train 6, val 4, test 0)" in proc.stdout
    assert "0 WBC: 5" in proc.stdout and "1 RBC: 5" in proc.stdout
    assert "broken.xml: not a readable XML file" in proc.stderr
    out = work / "yolo"
    label = next((out / "labels" / "train").iterdir()).read_text()
    assert label.split()[1:] == ["0.350000", "0.350000", "0.500000", "0.500000"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == "." and data["names"] == ["WBC", "RBC"] and "test" not in data

    # same seed, same split; existing output needs --overwrite
    assert run(work, *args, "--seed", "1").returncode != 0
    proc = run(work, *args, "--seed", "1", "--out", "yolo2")
    assert proc.returncode == 0
    assert sorted(p.name for p in (work / "yolo2" / "images" / "val").iterdir()) == sorted(
        p.name for p in (out / "images" / "val").iterdir()
    )


@pytest.mark.slow
def test_cli_reports_bad_input_clearly(tmp_path):
    proc = run(tmp_path, "--images", "missing", "--annotations", ".", "--out", "o")
    assert proc.returncode == 2
    assert "images folder missing does not exist" in proc.stderr
    proc = run(tmp_path, "--out", "o")
    assert proc.returncode == 2 and "--voc-root" in proc.stderr
    proc = run(tmp_path, "--voc-root", ".", "--out", "o", "--ratios", "1")
    assert proc.returncode == 2 and "--ratios takes 2 or 3 numbers" in proc.stderr


def test_parse_args_builds_the_config(tmp_path):
    classes = tmp_path / "names.txt"
    classes.write_text("a\nb\n")
    cfg = parse_args(
        ["--images", "i", "--annotations", "x", "--out", "o", "--classes-file", str(classes), "--limit", "3", "1"]
        + ["--zero-based", "--max-size", "320", "--hardlink", "--skip-difficult", "--split", "ratios"]
    )
    assert cfg.classes == ["a", "b"] and cfg.limit == (3, 1) and cfg.origin == 0.0 and cfg.max_size == 320
    assert cfg.hardlink and cfg.skip_difficult and cfg.split == "ratios" and cfg.ratios == (0.7, 0.2, 0.1)
    assert cfg.images == Path("i") and cfg.voc_root is None and cfg.data_yaml is None
    with pytest.raises(SystemExit):
        parse_args(["--voc-root", "r", "--out", "o", "--classes", "a", "--classes-file", str(classes)])


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_an_empty_classes_file_is_an_error(tmp_path, content, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text(content)
    with pytest.raises(SystemExit) as e:
        parse_args(["--voc-root", str(tmp_path), "--out", str(tmp_path / "o"), "--classes-file", str(classes)])
    assert e.value.code == 2
    assert f"class list {classes} names no class" in capsys.readouterr().err


def test_annotations_without_any_class_name_are_an_error(tmp_path):
    from utils.voc import VocConfig, convert_voc

    make_voc(tmp_path / "voc", n=2)
    for xml in (tmp_path / "voc" / "Annotations").glob("s*.xml"):
        xml.write_text(xml.read_text().replace("<name>RBC</name>", "").replace("<name>WBC</name>", ""))
    with pytest.raises(ValueError, match="no object with a class name"):
        convert_voc(VocConfig(out=tmp_path / "out", voc_root=tmp_path / "voc"))
    assert not (tmp_path / "out" / "data.yaml").exists()
