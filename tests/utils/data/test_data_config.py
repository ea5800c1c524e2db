"""Data yaml parsing."""

from pathlib import Path

import pytest

from utils.data.config import load_data_config


def write(tmp_path: Path, text: str, name: str = "data.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_relative_paths_resolve_against_yaml_folder(tmp_path):
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    p = write(cfg_dir, "path: ../ds\ntrain: images/train\nval: [images/val, val2.txt]\nnames: [a, b]\n")
    cfg = load_data_config(p)
    root = tmp_path / "ds"
    assert cfg.path == root
    assert cfg.train == [root / "images/train"]
    assert cfg.val == [root / "images/val", root / "val2.txt"]
    assert cfg.test is None
    assert (cfg.nc, cfg.names) == (2, ["a", "b"])
    assert cfg.file == p.resolve()


def test_path_absent_means_yaml_folder_and_absolute_kept(tmp_path):
    p = write(tmp_path, f"train: {tmp_path / 'abs'}\nval: v\ntest: t\nnc: 1\nnames: [x]\ndownload: none\n")
    cfg = load_data_config(p)
    assert cfg.path == tmp_path.resolve()
    assert cfg.train == [tmp_path / "abs"]
    assert cfg.test == [tmp_path.resolve() / "t"]
    assert cfg.extra == {"download": "none"}
    assert cfg.split("test") == cfg.test


def test_names_dict_normalised_to_list(tmp_path):
    p = write(tmp_path, "train: a\nval: b\nnames:\n  1: WBC\n  0: RBC\n  2: Platelets\n")
    cfg = load_data_config(p)
    assert cfg.names == ["RBC", "WBC", "Platelets"]
    assert cfg.nc == 3


def test_names_dict_with_gap_rejected(tmp_path):
    p = write(tmp_path, "train: a\nval: b\nnames: {0: a, 2: c}\n")
    with pytest.raises(ValueError, match="0..1 without gaps"):
        load_data_config(p)


def test_nc_mismatch_names_both_values_and_file(tmp_path):
    p = write(tmp_path, "train: a\nval: b\nnc: 3\nnames: [a, b]\n")
    with pytest.raises(ValueError) as e:
        load_data_config(p)
    msg = str(e.value)
    assert str(p.resolve()) in msg and "'nc' is 3" in msg and "2 entries" in msg


@pytest.mark.parametrize(
    "text, key",
    [("val: b\nnames: [a]\n", "'train'"), ("train: a\nnames: [a]\n", "'val'"), ("train: a\nval: b\n", "'names'")],
)
def test_missing_key_named(tmp_path, text, key):
    p = write(tmp_path, text)
    with pytest.raises(ValueError, match=key) as e:
        load_data_config(p)
    assert "data.yaml" in str(e.value)


def test_nc_without_names_gives_default_names(tmp_path):
    cfg = load_data_config(write(tmp_path, "train: a\nval: b\nnc: 2\n"))
    assert cfg.names == ["class0", "class1"]


@pytest.mark.parametrize("nc", ["0", "two", "true", "1.5"])
def test_bad_nc(tmp_path, nc):
    with pytest.raises(ValueError, match="'nc' must be a positive integer"):
        load_data_config(write(tmp_path, f"train: a\nval: b\nnc: {nc}\n"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_data_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="not a valid yaml"):
        load_data_config(write(tmp_path, "train: [a\nval: b\n", "broken.yaml"))
    with pytest.raises(ValueError, match="expected a mapping"):
        load_data_config(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_single_class_override(tmp_path):
    p = write(tmp_path, "train: a\nval: b\nnames: [a, b, c]\n")
    cfg = load_data_config(p, single_cls=True)
    assert (cfg.nc, cfg.names) == (1, ["item"])
    full = load_data_config(p)
    assert full.single_class().nc == 1 and full.nc == 3
    one = load_data_config(write(tmp_path, "train: a\nval: b\nnames: [cell]\n", "one.yaml"), single_cls=True)
    assert one.names == ["cell"]


def test_split_errors(tmp_path):
    cfg = load_data_config(write(tmp_path, "train: a\nval: b\nnames: [a]\n"))
    with pytest.raises(ValueError, match="no 'test' split"):
        cfg.split("test")
    with pytest.raises(ValueError, match="unknown split"):
        cfg.split("dev")


def test_upstream_relative_path_is_accepted_unchanged(tmp_path, monkeypatch):
    """Upstream reads ``path: ../datasets/x`` from its repository root; ours from the yaml's folder."""
    repo = tmp_path / "yolov5"
    (repo / "data").mkdir(parents=True)
    (tmp_path / "datasets" / "x" / "images").mkdir(parents=True)
    yml = repo / "data" / "x.yaml"
    yml.write_text("path: ../datasets/x\ntrain: images\nval: images\nnames: [a]\n")
    monkeypatch.chdir(repo)
    assert load_data_config(yml).path == (tmp_path / "datasets" / "x").resolve()
    monkeypatch.chdir(tmp_path)  # from elsewhere: the folder above data/ is upstream's root
    assert load_data_config(yml).path == (tmp_path / "datasets" / "x").resolve()
    (repo / "datasets" / "x").mkdir(parents=True)  # where both exist, ours (the yaml's folder) wins
    assert load_data_config(yml).path == (repo / "datasets" / "x").resolve()
