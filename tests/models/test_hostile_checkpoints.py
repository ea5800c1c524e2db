"""Checkpoints that are not what they claim: random bytes, truncated archives, pickles that try to run code, and
upstream pickles whose contents are malformed. Each ends in our own error naming the file, never in code running.

Code execution is checked with a canary: each payload, if it ran, would create a file; a positive control runs the
same payload through plain ``pickle.loads`` to show that it would.
"""

from __future__ import annotations

import io
import logging
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import load_model
from models.loading import read_weights
from models.yolo import Model
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _call(module: str, name: str, arg: str) -> bytes:
    """A protocol-2 pickle that calls ``module.name(arg)`` when loaded."""
    data = arg.encode()
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(data)) + data + b"\x85R."


def _payloads(canary: Path) -> dict[str, bytes]:
    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    return {
        "os.system": _call("os", "system", f"touch {canary}"),
        "posix.system": _call("posix", "system", f"touch {canary}"),
        "subprocess.getoutput": _call("subprocess", "getoutput", f"touch {canary}"),
        "builtins.eval": _call("builtins", "eval", touch),
        "builtins.exec": _call("builtins", "exec", touch),
        "__builtin__.eval": _call("__builtin__", "eval", touch),
    }


def _zip_checkpoint(path: Path, data_pkl: bytes) -> Path:
    """A torch.save-style zip archive whose data.pkl is ``data_pkl``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ckpt/data.pkl", data_pkl)
        z.writestr("ckpt/byteorder", "little")
        z.writestr("ckpt/version", "3\n")
    return path


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_code_running_pickles_are_refused_and_nothing_runs(tmp_path, name):
    canary = tmp_path / "canary"
    payload = _payloads(canary)[name]
    pickle.loads(payload)  # positive control: loaded by plain pickle, the payload does run
    assert canary.exists()
    canary.unlink()
    for path in (_zip_checkpoint(tmp_path / "zip.pt", payload), tmp_path / "legacy.pt"):
        path.write_bytes(payload) if path.name == "legacy.pt" else None
        with pytest.raises(CheckpointError, match=rf"{path.name}.*refusing to load"):
            load_model(path)
        assert not canary.exists(), f"{name} ran from {path.name}"


class _Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_pickle_calling_torch_load_is_refused(tmp_path):
    canary = tmp_path / "canary"
    inner = _zip_checkpoint(tmp_path / "inner.pt", _payloads(canary)["posix.system"])
    outer = tmp_path / "outer.pt"
    torch.save({"model": _Reduce(torch.load, str(inner))}, outer)
    with pytest.raises(CheckpointError, match=r"outer.pt.*refusing to load 'torch.serialization.load'"):
        load_model(outer)
    assert not canary.exists()


class _Tripwire(torch.nn.Module):
    """A torch module whose ``__setstate__`` would create the canary file."""

    canary: Path | None = None

    def __setstate__(self, state):
        Path(type(self).canary).touch()
        super().__setstate__(state)


def test_torch_module_setstate_never_runs(tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    monkeypatch.setattr(_Tripwire, "canary", canary)
    # a module class living in torch.nn: findable by name at load time, so an ordinary unpickler would call it
    _Tripwire.__module__, _Tripwire.__qualname__ = "torch.nn.modules.module", "Tripwire"
    monkeypatch.setattr(torch.nn.modules.module, "Tripwire", _Tripwire, raising=False)
    path = tmp_path / "setstate.pt"
    torch.save({"model": _Tripwire()}, path)
    torch.load(path, weights_only=False)  # positive control
    assert canary.exists()
    canary.unlink()
    with pytest.raises(CheckpointError, match=r"refusing to load 'torch.nn.modules.module.Tripwire'"):
        load_model(path)
    assert not canary.exists()
    # an allowed module class (Conv2d) is read as an inert record: its __setstate__ is not called either
    monkeypatch.setattr(torch.nn.Conv2d, "__setstate__", lambda self, state: canary.touch(), raising=False)
    conv_path = tmp_path / "conv.pt"
    torch.save({"model": torch.nn.Conv2d(1, 1, 1)}, conv_path)
    with pytest.raises(CheckpointError, match="no pickled YOLOv5 model"):
        load_model(conv_path)
    assert not canary.exists()


def test_random_bytes_say_the_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(7, 200)))
    with pytest.raises(CheckpointError, match=r"noise.pt: not a checkpoint"):
        load_model(path)


@SETTINGS
@given(data=st.binary(min_size=1, max_size=512), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02"]))
def test_fuzzed_bytes_end_in_our_error(tmp_path, data, prefix):
    path = tmp_path / "fuzz.pt"
    path.write_bytes(prefix + data)
    with pytest.raises(CheckpointError, match="fuzz.pt"):
        read_weights(path)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=2), ["a", "b"]), path)
    return path.read_bytes()


@SETTINGS
@given(fraction=st.floats(0.0, 0.999))
def test_truncated_checkpoints_end_in_our_error(tmp_path, good_checkpoint, fraction):
    path = tmp_path / "cut.pt"
    path.write_bytes(good_checkpoint[: max(1, int(len(good_checkpoint) * fraction))])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_model(path)


@SETTINGS
@given(position=st.floats(0.0, 0.999), value=st.integers(0, 255))
def test_corrupted_checkpoints_load_or_end_in_our_error(tmp_path, good_checkpoint, position, value):
    data = bytearray(good_checkpoint)
    data[int(len(data) * position)] = value
    path = tmp_path / "flip.pt"
    path.write_bytes(bytes(data))
    try:
        load_model(path)
    except (CheckpointError, ValueError) as e:
        assert "flip.pt" in str(e)


# ------------------------------------------------------------------------------ malformed upstream pickles
def _upstream_checkpoint(path: Path, as_upstream, monkeypatch, mutate=None, nc: int = 3, names=None) -> Path:
    """An upstream-style pickle (whole modules under models.yolo.Model), after ``mutate(model)``."""
    model = Model("yolov5n.yaml", nc=nc)
    model.names = names if names is not None else [f"c{i}" for i in range(nc)]
    as_upstream(model)
    if mutate:
        mutate(model)
    buf = io.BytesIO()
    torch.save({"model": model, "epoch": -1}, buf)
    monkeypatch.undo()
    path.write_bytes(buf.getvalue())
    return path


def _set_raw(module, key, value):
    object.__setattr__(module, key, value)


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda m: setattr(m, "names", {0: "a", "1": "b", 2.5: "c"}), "names"),
        (lambda m: m.model[0].conv._parameters.__setitem__("weight", [1.0, 2.0]), "not a tensor"),
        (lambda m: _set_raw(m.model[1], "_modules", None), "cannot read.*_modules. is NoneType"),
        (lambda m: _set_raw(m.model[1], "_parameters", [1, 2]), "not a dict"),
    ],
    ids=["mixed-name-keys", "list-as-parameter", "modules-none", "parameters-list"],
)
def test_malformed_upstream_pickles_cannot_be_read(tmp_path, as_upstream, monkeypatch, mutate, problem):
    path = _upstream_checkpoint(tmp_path / "odd.pt", as_upstream, monkeypatch, mutate)
    with pytest.raises(CheckpointError, match=rf"odd.pt.*{problem}"):
        load_model(path)


def test_more_names_than_classes_warns(tmp_path, as_upstream, monkeypatch, caplog):
    path = _upstream_checkpoint(tmp_path / "names.pt", as_upstream, monkeypatch, names=["a", "b", "c", "d", "e"])
    with caplog.at_level(logging.WARNING):
        model = load_model(path)
    assert model.names == ["0", "1", "2"]
    assert "names.pt: 5 class names" in caplog.text and "3 classes" in caplog.text


def test_huge_depth_in_an_embedded_yaml_is_refused_naming_the_checkpoint(tmp_path, as_upstream, monkeypatch):
    def deepen(model):
        model.yaml.update(depth_multiple=1e6)

    path = _upstream_checkpoint(tmp_path / "deep.pt", as_upstream, monkeypatch, deepen)
    with pytest.raises(ValueError, match=r"deep.pt \(its embedded model yaml\).*depth_multiple"):
        load_model(path)


def test_huge_channel_record_is_refused(tmp_path):
    model = Model("yolov5n.yaml", nc=2)
    ckpt = make_checkpoint(model, ["a", "b"])
    ckpt["arch"]["channels"]["model.0.conv"] = [3, 10**9]
    path = save_checkpoint(ckpt, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match=r"wide.pt: channel record of 'model.0.conv'"):
        load_model(path)
