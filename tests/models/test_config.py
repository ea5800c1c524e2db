"""Model yaml validation: every bad file gives an error that names the row and the problem."""

from __future__ import annotations

import copy

import pytest
import yaml

from models.config import ModelConfigError, load_model_yaml, resolve_cfg_path
from models.yolo import Model


@pytest.fixture
def base() -> dict:
    cfg, _ = load_model_yaml("yolov5n.yaml")
    cfg.pop("yaml_file")
    return cfg


def test_resolves_bare_names_and_paths(tmp_path):
    assert resolve_cfg_path("yolov5s").name == "yolov5s.yaml"
    assert resolve_cfg_path("yolov5s.yaml").name == "yolov5s.yaml"
    with pytest.raises(FileNotFoundError, match="yolov9z"):
        resolve_cfg_path("yolov9z.yaml")


def test_unknown_module_names_the_row(base):
    base["backbone"][3] = [-1, 1, "Fancy", [256, 3, 2]]
    with pytest.raises(ModelConfigError, match=r"backbone row 3.*unknown module 'Fancy'"):
        Model(base)


def test_bad_from_index_names_the_row(base):
    base["head"][2] = [[-1, 40], 1, "Concat", [1]]
    with pytest.raises(ModelConfigError, match=r"head row 2 \(layer 12\).*'from' index 40"):
        Model(base)


def test_missing_key(base):
    del base["anchors"]
    with pytest.raises(ModelConfigError, match=r"missing key\(s\) \['anchors'\]"):
        Model(base)


def test_row_of_wrong_length(base):
    base["head"][0] = [-1, 1, "Conv"]
    with pytest.raises(ModelConfigError, match=r"head row 0.*\[from, number, module, args\]"):
        Model(base)


def test_bad_multiple(base):
    base["width_multiple"] = -1
    with pytest.raises(ModelConfigError, match="width_multiple"):
        Model(base)


def test_bad_args_are_reported(base):
    base["backbone"][1] = [-1, 1, "Conv", ["wide", 3, 2]]
    with pytest.raises(ModelConfigError, match=r"backbone row 1.*output channel count"):
        Model(base)


@pytest.mark.parametrize("where", ["top-level key", "Detect argument", "Model argument"])
def test_an_anchor_count_is_refused_wherever_it_is_given(base, where):
    """``anchors: 3`` (a count per level, upstream's "let autoanchor choose") is refused in every place anchors are
    read, with the value named, instead of building a head on placeholder sizes."""
    kwargs = {}
    if where == "top-level key":
        base["anchors"] = 3
    elif where == "Detect argument":
        base["head"][-1][-1] = ["nc", 3]
    else:
        kwargs["anchors"] = 3
    with pytest.raises(ModelConfigError, match=r"'anchors: 3' \(a count\) is not supported"):
        Model(base, **kwargs)


def test_detect_anchor_sizes_are_checked_like_the_top_level_ones(base):
    base["head"][-1][-1] = ["nc", [[10, 13, 16, 30], [30, 61, 62, -45], [116, 90, 156, 198]]]
    with pytest.raises(ModelConfigError, match=r"layer 24\): Detect: anchor sizes must be positive.*got -45"):
        Model(base)


def test_yaml_syntax_error_names_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("nc: 3\nbackbone: [[-1, 1, Conv\n")
    with pytest.raises(ModelConfigError, match="broken.yaml"):
        Model(bad)


def test_strings_are_never_evaluated(base, tmp_path):
    """A module name that would run code if evaluated is just an unknown name."""
    base["backbone"][0] = [-1, 1, "__import__('os').system('echo hacked')", [64, 6, 2, 2]]
    with pytest.raises(ModelConfigError, match="unknown module"):
        Model(base)


def test_yaml_file_round_trip(base, tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(base)))
    assert sum(p.numel() for p in Model(path, nc=3).parameters()) == 1_767_976
