"""Flags declared once on a config field: argparse and validation both come from the declaration."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from utils.cli import add_flags, check_flags, config_from_namespace, flag, reflag
from utils.pipeline import PipelineConfig
from utils.training.config import TrainConfig


@dataclass
class Demo:
    size: int = flag(64, low=32, help="image size", aliases=("--img",))
    gain: float = flag(0.5, low=0, high=1, low_open=True, help="a fraction")
    kind: str = flag("a", choices=("a", "b"), help="a kind")
    layers: list[int] | None = flag(None, low=0, help="layer indices")
    loud: bool = flag(False, help="say more")
    global_: bool = flag(False, help="a name Python reserves")
    maybe: str | bool = flag(False, nargs="?", const=True, help="optional value")

    def __post_init__(self) -> None:
        check_flags(self)


def _parse(*argv: str) -> Demo:
    p = argparse.ArgumentParser()
    add_flags(p, Demo)
    return config_from_namespace(Demo, p.parse_args(list(argv)))


def test_defaults_types_and_aliases_come_from_the_fields():
    assert _parse() == Demo()
    got = _parse("--img", "96", "--gain", "0.25", "--kind", "b", "--layers", "1", "2", "--loud", "--global", "--maybe")
    assert got == Demo(96, 0.25, "b", [1, 2], True, True, True)
    assert _parse("--maybe", "x.pt").maybe == "x.pt"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"size": 16}, "--size must be >= 32, got 16"),
        ({"gain": 0.0}, "--gain must be > 0 and <= 1, got 0.0"),
        ({"gain": float("nan")}, "--gain must be a finite number, got nan"),
        ({"gain": "0.5"}, "--gain must be a finite number, got '0.5'"),
        ({"kind": "c"}, "--kind 'c' is not one of ('a', 'b')"),
        ({"layers": [1, -1]}, "--layers must be >= 0, got -1"),
        ({"size": None}, "--size needs a value, got None"),
    ],
)
def test_the_same_declaration_validates_any_instance(kw, message):
    with pytest.raises(ValueError) as e:
        Demo(**kw)
    assert str(e.value) == message


def test_the_command_line_refuses_a_choice_before_the_config_does():
    p = argparse.ArgumentParser()
    add_flags(p, Demo)
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "c"])


@pytest.mark.parametrize(
    ("kw", "flag_name"),
    [({"workers": -1}, "--workers"), ({"label_smoothing": 1.0}, "--label-smoothing"), ({"epochs": 0}, "--epochs"),
     ({"optimizer": "Lion"}, "--optimizer"), ({"freeze": [-2]}, "--freeze")],
)  # fmt: skip
def test_train_config_refuses_by_flag_name(kw, flag_name):
    with pytest.raises(ValueError, match=flag_name):
        TrainConfig(cfg="yolov5n.yaml", **kw)


@dataclass
class Paths:
    out: Path = flag(help="required output", required=True)
    extra: Path | None = flag(None, help="optional path")
    ratios: tuple[float, ...] = flag((0.5, 0.5), low=0, help="weights")
    check: bool = flag(True, help="skip the check")
    project: str = flag("runs/a", help="save to project/name")

    def __post_init__(self) -> None:
        check_flags(self)


@dataclass
class OtherProject(Paths):
    project: str = reflag(Paths, "project", "runs/b")
    extra: Path | None = reflag(Paths, "extra", help="another help")


def test_paths_tuples_and_a_bool_that_defaults_to_true():
    p = argparse.ArgumentParser()
    add_flags(p, Paths)
    ns = p.parse_args(["--out", "o", "--extra", "e", "--ratios", "1", "2", "--no-check"])
    assert (ns.out, ns.extra, ns.ratios, ns.check) == (Path("o"), Path("e"), [1.0, 2.0], False)
    assert p.parse_args(["--out", "o"]).check is True
    with pytest.raises(SystemExit):
        p.parse_args([])  # --out is required
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "o", "--check"])  # only --no-check exists


def test_a_subclass_declares_a_flag_again_with_another_default_or_help():
    p = argparse.ArgumentParser()
    add_flags(p, OtherProject)
    assert p.parse_args(["--out", "o"]).project == "runs/b"
    helps = {a.dest: a.help for a in p._actions}
    assert helps["extra"] == "another help" and helps["project"] == "save to project/name"
    with pytest.raises(ValueError, match="--ratios must be >= 0, got -1"):
        OtherProject(Path("o"), ratios=(1, -1))
    with pytest.raises(TypeError, match="no flag field 'nope'"):
        reflag(Paths, "nope", 1)


def test_flags_without_defaults_parse_as_none_when_left_out():
    p = argparse.ArgumentParser()
    add_flags(p, Demo, only=("size", "loud"), defaults=False)
    assert vars(p.parse_args([])) == {"size": None, "loud": None}
    assert vars(p.parse_args(["--img", "96", "--loud"])) == {"size": 96, "loud": True}


def test_errors_may_name_a_setting_other_than_by_its_flag():
    with pytest.raises(ValueError, match="^setting 'size' must be >= 32, got 16$"):
        check_flags(_unchecked(size=16), lambda n: f"setting {n!r}")


def _unchecked(**kw) -> Demo:
    d = Demo()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"imgsz": 0}, "--imgsz must be >= 1, got 0"), ({"epochs": 0}, "--epochs must be >= 1, got 0"),
     ({"kd_epochs": 0}, "pipeline setting 'kd_epochs' must be >= 1, got 0"),
     ({"prune_params": 1.5}, "pipeline setting 'prune_params' must be > 0 and < 1, got 1.5"),
     ({"kd_feature": "x"}, "pipeline setting 'kd_feature' 'x' is not one of")],
)  # fmt: skip
def test_pipeline_settings_are_named_by_flag_only_where_compress_takes_one(kw, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        PipelineConfig(**kw)
