"""Faults around a training run: non-finite losses, bad hyperparameter files, a run directory held by a live
process, damaged resume checkpoints, and --weights that do not match what the run asks for."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import textwrap

import pytest
import torch

import utils.checkpoint
import utils.files
from models.resize import apply_channels, conv_channels
from models.yolo import Model
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint
from utils.files import REPO_ROOT
from utils.training.addons import AddOn
from utils.training.config import TrainConfig
from utils.training.engine import Trainer, train
from utils.training.guards import NonFiniteGuard, NonFiniteLossError
from utils.training.hyp import load_hyp, validate_hyp
from utils.training.lock import RunLock, RunLockedError
from utils.training.model_setup import build_training_model

NAMES = ["RBC", "WBC", "Platelets"]


def _cfg(tmp_path, data, **kw) -> TrainConfig:
    base = dict(
        cfg="yolov5n.yaml", data=str(data), imgsz=64, epochs=1, batch_size=4, workers=0, project=str(tmp_path / "runs"),
        name="exp", noautoanchor=True, noplots=True, seed=3,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


class Poison(AddOn):
    """A loss term that is NaN for the chosen batches (counted over the run), like a poisoned batch."""

    kind = "poison"
    loss_names = ("extra",)

    def __init__(self, bad):
        self.bad, self.calls = bad, 0

    def losses(self, batch):
        self.calls += 1
        bad = self.bad(self.calls)
        return {"extra": torch.tensor(float("nan") if bad else 0.0, device=batch.imgs.device)}


# ----------------------------------------------------------------------------------------- non-finite losses
def test_a_poisoned_batch_is_skipped_counted_and_training_goes_on(tmp_path, tiny_data, caplog):
    with caplog.at_level(logging.WARNING):
        result = train(_cfg(tmp_path, tiny_data, epochs=2, noval=True), [Poison(lambda n: n % 2 == 1)])
    assert result.epochs_completed == 2
    assert caplog.text.count("step skipped") == 2
    assert "epoch 0: 1 of 2 steps skipped for a non-finite loss" in caplog.text
    assert result.best is not None


def test_every_step_non_finite_stops_without_a_best_pt(tmp_path, tiny_data):
    with pytest.raises(NonFiniteLossError, match=r"every one of the 2 steps of epoch 0.*images .*\.jpg.*check these"):
        train(_cfg(tmp_path, tiny_data), [Poison(lambda n: True)])
    weights = tmp_path / "runs" / "exp" / "weights"
    assert not (weights / "best.pt").exists() and not (weights / "last.pt").exists()


def test_too_many_non_finite_steps_in_a_row_stop_training():
    guard = NonFiniteGuard(max_consecutive=3)
    guard.skip(float("nan"), 0, 0, ["a.jpg"])
    guard.ok()  # a good step resets the run of bad ones
    guard.skip(float("inf"), 0, 2, ["b.jpg"])
    guard.skip(float("nan"), 0, 3, ["c.jpg"])
    with pytest.raises(NonFiniteLossError, match=r"non-finite in 3 steps in a row .*batch 4, images d.jpg"):
        guard.skip(float("nan"), 0, 4, ["d.jpg"])
    assert guard.skipped_total == 4


# ------------------------------------------------------------------------------------------ hyperparameters
def _hyp(tmp_path, **changes):
    text = (REPO_ROOT / "data/hyps/hyp.scratch-low.yaml").read_text()
    lines = [ln for ln in text.splitlines() if ln.split(":")[0] not in changes]
    lines += [f"{k}: {v}" for k, v in changes.items() if v is not None]
    path = tmp_path / "hyp.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr0": ".nan"}, r"'lr0' must be a finite number, got nan"),
        ({"lr0": ".inf"}, r"'lr0' must be a finite number"),
        ({"lr0": "abc"}, r"'lr0' must be a number, got 'abc'"),
        ({"lr0": None}, r"missing hyperparameter\(s\) \['lr0'\]"),
        ({"momentum": 1.5}, r"'momentum' is 1.5, outside the allowed range"),
        ({"fliplr": "true"}, r"'fliplr' must be a number"),
    ],
)
def test_bad_hyp_files_are_refused_naming_file_and_key(tmp_path, change, message):
    with pytest.raises(ValueError, match=rf"hyp.yaml: {message}"):
        load_hyp(_hyp(tmp_path, **change))


def test_unknown_hyp_keys_warn_and_every_shipped_file_is_valid(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        hyp = load_hyp(_hyp(tmp_path, lr_0=0.02))
    assert "unknown hyperparameter(s) ['lr_0'] are ignored" in caplog.text
    assert hyp["lr0"] == 0.01
    for path in sorted((REPO_ROOT / "data/hyps").glob("*.yaml")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            load_hyp(path)
        assert "unknown" not in caplog.text, path.name
    assert validate_hyp({**hyp, "kd_l2": 2}, "x")["kd_l2"] == 2.0


def test_training_refuses_a_nan_learning_rate_before_it_starts(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="'lr0' must be a finite number"):
        train(_cfg(tmp_path, tiny_data, hyp=str(_hyp(tmp_path, lr0=".nan"))))


# ------------------------------------------------------------------------------------------- resume and lock
def _last_pt(tmp_path, tiny_data, **overrides) -> tuple:
    """A last.pt as training writes it after epoch 0 of 2 (without running the epoch)."""
    cfg = _cfg(tmp_path, tiny_data, epochs=2)
    model = Model("yolov5n.yaml", nc=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    ckpt = make_checkpoint(model, NAMES, ema=model, optimizer=optimizer, epoch=0, train_args=cfg.to_dict())
    ckpt.update(overrides)
    run = tmp_path / "runs" / "exp"
    return save_checkpoint(ckpt, run / "weights" / "last.pt"), run


_HOLD = textwrap.dedent(
    """
    import sys, time
    from utils.training.lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_resume_while_the_run_is_alive_names_the_holder(tmp_path, tiny_data):
    last, run = _last_pt(tmp_path, tiny_data)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"exp is in use by another training process \(pid {holder.pid} on"):
            Trainer(TrainConfig(resume=str(last)))
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its process (kill -9 included): the run can be taken over now
    RunLock(run).acquire().release()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizer": None}, r"epoch 0 is recorded but the optimizer state is missing"),
        ({"optimizer": "garbage"}, r"the optimizer entry is damaged \(expected a dict .* got a str\)"),
        ({"optimizer": {"state": {}, "param_groups": "x"}}, r"the optimizer entry is damaged"),
        ({"model": {"w": 3}}, r"the 'model' entry is a dict with keys \['w'\], not a state dict"),
        ({"epoch": "1"}, r"'epoch' is '1', not an epoch number"),
    ],
)
def test_damaged_resume_checkpoints_say_what_is_wrong(tmp_path, tiny_data, overrides, message):
    last, _ = _last_pt(tmp_path, tiny_data, **overrides)
    with pytest.raises(CheckpointError, match=rf"last.pt: {message}"):
        train(TrainConfig(resume=str(last)))


def test_optimizer_state_for_another_model_is_reported(tmp_path, tiny_data):
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1).state_dict()
    last, _ = _last_pt(tmp_path, tiny_data, optimizer=other)
    with pytest.raises(CheckpointError, match=r"last.pt: the optimizer entry does not fit this run"):
        train(TrainConfig(resume=str(last)))


# --------------------------------------------------------------------------- weights that are not as claimed
def _pruned_checkpoint(tmp_path) -> str:
    model = Model("yolov5n.yaml", nc=3)
    channels = conv_channels(model)
    channels.update({"model.0.conv": [3, 8], "model.0.bn": [8], "model.1.conv": [8, 32]})
    apply_channels(model, channels)
    return str(save_checkpoint(make_checkpoint(model, NAMES), tmp_path / "pruned.pt"))


def test_pruned_weights_with_a_full_yaml_are_refused_naming_both(tmp_path):
    pruned = _pruned_checkpoint(tmp_path)
    expected = (
        r"--weights .*pruned.pt does not match --cfg yolov5n.yaml: 6 tensors differ .*'model.0.conv.weight' "
        r"\(8, 3, 6, 6\) in the weights, \(16, 3, 6, 6\) in the yaml"
    )
    with pytest.raises(ValueError, match=expected):
        build_training_model(pruned, "yolov5n.yaml", 3, NAMES)
    model = build_training_model(pruned, "", 3, NAMES)  # without --cfg: trained at its pruned widths
    assert model.model[0].conv.out_channels == 8


def test_weights_with_the_classes_in_another_order_are_refused(tmp_path, caplog):
    path = str(
        save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=3), ["WBC", "RBC", "Platelets"]), tmp_path / "w.pt")
    )
    with pytest.raises(ValueError, match=r"w.pt has the data's classes in another order: weights \['WBC'"):
        build_training_model(path, "", 3, NAMES)
    with caplog.at_level(logging.WARNING):
        build_training_model(path, "", 3, ["cat", "dog", "bird"])
    assert "the head is reused for the new classes" in caplog.text


def test_disk_full_during_training_stops_with_last_pt_of_the_previous_epoch_intact(tmp_path, tiny_data, monkeypatch):
    real_open, calls = open, []

    def open_then_fill_up(path, mode):  # epoch 0 writes last.pt and best.pt; the disk is full from then on
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode)

    monkeypatch.setattr(utils.files, "open", open_then_fill_up, raising=False)
    with pytest.raises(CheckpointError, match=r"no space left on the device writing .*last.pt; the previous last.pt"):
        train(_cfg(tmp_path, tiny_data, epochs=2, noval=True))
    monkeypatch.undo()
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]


# ------------------------------------------------------------------------------------------ failed new runs
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, tiny_data):
    bad_hyp = tmp_path / "bad.yaml"
    bad_hyp.write_text("lr0: -1\n")
    with pytest.raises(ValueError):
        train(_cfg(tmp_path, tiny_data, hyp=str(bad_hyp)))
    with pytest.raises(NonFiniteLossError):
        train(_cfg(tmp_path, tiny_data, name="nan"), [Poison(lambda n: True)])
    assert not (tmp_path / "runs" / "exp").exists() and not (tmp_path / "runs" / "nan").exists()
    kept = tmp_path / "runs" / "mine"  # a folder that existed before the run is never removed
    kept.mkdir(parents=True)
    with pytest.raises(ValueError):
        train(_cfg(tmp_path, tiny_data, hyp=str(bad_hyp), name="mine", exist_ok=True))
    assert kept.is_dir()


def test_an_upstream_checkpoint_cannot_be_resumed_only_used_as_weights(fixtures_dir):
    path = fixtures_dir / "upstream-v7.0-yolov5s-bccd.pt"
    with pytest.raises(CheckpointError, match=r"cannot be resumed, only used as --weights"):
        train(TrainConfig(resume=str(path)))
