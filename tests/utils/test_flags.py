"""Flags declared once on a config field: argparse and validation both come from the declaration."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from utils.cli import add_flags, check_flags, config_from_namespace, flag
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
