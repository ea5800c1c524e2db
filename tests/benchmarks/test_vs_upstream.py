"""The side-by-side benchmark gives upstream its own copy of the data: its yaml must not change ours."""

from pathlib import Path

import yaml

from benchmarks.vs_upstream import last_all_row, upstream_data


def _dataset(root: Path) -> Path:
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "images" / "val" / "a.jpg").write_bytes(b"jpg")
    (root / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "val.cache").write_bytes(b"cache")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\nval: images/val\nnc: 1\nnames: [a]\n")
    return data


def test_upstream_copy_has_its_own_yaml_and_no_cache(tmp_path):
    data = _dataset(tmp_path / "ours")
    up = upstream_data(data, tmp_path / "up")
    assert yaml.safe_load(up.read_text())["path"] == str((tmp_path / "up").resolve())
    assert yaml.safe_load(data.read_text())["path"] == str(tmp_path / "ours")  # ours untouched
    assert not up.samefile(data)
    assert (tmp_path / "up" / "labels" / "val" / "a.txt").samefile(tmp_path / "ours" / "labels" / "val" / "a.txt")
    assert not (tmp_path / "up" / "labels" / "val.cache").exists()


def test_yaml_linked_by_an_earlier_version_is_repaired(tmp_path):
    data = _dataset(tmp_path / "ours")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "data.yaml").hardlink_to(data)
    data.write_text(data.read_text().replace(str(tmp_path / "ours"), str(tmp_path / "up")))  # the old bug
    up = upstream_data(data, tmp_path / "up")
    assert yaml.safe_load(data.read_text())["path"] == str((tmp_path / "ours").resolve())
    assert yaml.safe_load(up.read_text())["path"] == str((tmp_path / "up").resolve())
    assert not up.samefile(data)


def test_last_all_row_reads_the_final_summary():
    text = "all 87 1137 0.8 0.8 0.700 0.400\nnoise\nall 87 1137 0.801 0.823 0.856 0.503\n"
    assert last_all_row(text) == {"mAP50": 0.856, "mAP50-95": 0.503}
    assert last_all_row("nothing here") is None
