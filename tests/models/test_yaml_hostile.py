"""Model yaml files that are wrong or hostile: sizes are bounded before anything is built, errors name the file,
the row and the inputs. A hypothesis fuzzer mutates yolov5n.yaml: every variant builds or ends in our error."""

from __future__ import annotations

import copy
import math
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.config
from models.config import MAX_PARAMS, ModelConfigError, load_model_yaml
from models.yolo import Model

BASE, _ = load_model_yaml("yolov5n.yaml")


def _write(tmp_path, d: dict, name: str = "m.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


def test_anchor_count_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path, {**BASE, "anchors": 3}, "count.yaml")
    with pytest.raises(ModelConfigError, match=r"count.yaml: 'anchors: 3' \(a count\) is not supported"):
        Model(path)


def test_concat_of_different_sizes_names_the_layer_and_inputs(tmp_path):
    d = copy.deepcopy(BASE)
    d["head"][2] = [[-1, 4], 1, "Concat", [1]]  # layer 12 joins layer 11 (P4 after upsampling) with P3 (layer 4)
    path = _write(tmp_path, d, "concat.yaml")
    with pytest.raises(ModelConfigError, match=r"concat.yaml: .*layer 12 \(Concat of layers \[-1, 4\]\).*shapes"):
        Model(path)


@pytest.mark.parametrize(
    "key, value, problem",
    [("width_multiple", 1000, "out of range"), ("depth_multiple", 1e6, "out of range"), ("width_multiple", 40, "")],
)
def test_absurd_multipliers_are_refused_before_allocating(tmp_path, key, value, problem):
    path = _write(tmp_path, {**BASE, key: value}, "big.yaml")
    t0 = time.perf_counter()
    with pytest.raises(ModelConfigError, match=rf"big.yaml.*{problem}"):
        Model(path)
    assert time.perf_counter() - t0 < 5  # refused up front, not after building millions of blocks


def test_parameter_budget_is_checked_on_the_meta_device(tmp_path):
    d = copy.deepcopy(BASE)
    d["nc"] = 10_000_000  # a head of 3 * (5 + nc) channels per level: billions of parameters
    with pytest.raises(ModelConfigError, match=rf"over {MAX_PARAMS:,} parameters"):
        Model(_write(tmp_path, d))


def test_a_huge_depth_number_in_one_row_is_refused(tmp_path):
    d = copy.deepcopy(BASE)
    d["backbone"][2] = [-1, 10**7, "C3", [128]]
    with pytest.raises(ModelConfigError, match=r"backbone row 2.*repeats"):
        Model(_write(tmp_path, d))


# --------------------------------------------------------------------------------------------------- fuzzing
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 300), max_size=4),
    st.sampled_from(["nc", "anchors", "None", "Conv", "C3", "Concat", "Detect", "nn.Upsample", "nearest"]),
)


def _paths(d: dict):
    """Every (container, key) position inside the yaml dict."""
    out = []

    def walk(obj):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            out.append((obj, k))
            walk(v)

    walk(d)
    return out


@pytest.fixture
def small_bounds(monkeypatch):
    """Bounds a few times yolov5n's size, so that the fuzzer's largest accepted models stay quick to build."""
    monkeypatch.setattr(models.config, "MAX_PARAMS", 20_000_000)
    monkeypatch.setattr(models.config, "MAX_CHANNELS", 1024)
    return models.config


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_model_yaml_builds_or_ends_in_our_error(small_bounds, data):
    d = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        positions = _paths(d)
        container, key = positions[data.draw(st.integers(0, len(positions) - 1))]
        container[key] = data.draw(_ANY)
    try:
        model = Model(d)
    except ModelConfigError:
        return
    assert all(math.isfinite(float(s)) for s in model.stride)
    assert sum(p.numel() for p in model.parameters()) <= small_bounds.MAX_PARAMS
