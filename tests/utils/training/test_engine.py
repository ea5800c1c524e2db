"""The training engine on a tiny dataset: outputs, checkpoints, resume, robustness."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

from models import load_model
from utils.checkpoint import FORMAT
from utils.training.addons import AddOn
from utils.training.config import TrainConfig
from utils.training.engine import train
from utils.training.step import Stepper


def _cfg(tmp_path, data, **kw) -> TrainConfig:
    base = dict(
        cfg="yolov5n.yaml", data=str(data), imgsz=64, epochs=2, batch_size=4, workers=0, project=str(tmp_path / "runs"),
        name="exp", noautoanchor=True, seed=3,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stop_at(monkeypatch, at_batch: int) -> None:
    """Raise KeyboardInterrupt at the given training step (counted over the run), like a user pressing Ctrl-C."""
    real, calls = Stepper.step, []

    def step(self, *a, **kw):
        calls.append(1)
        if len(calls) == at_batch:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(Stepper, "step", step)


def test_training_writes_results_checkpoints_and_plots(tmp_path, tiny_data):
    result = train(_cfg(tmp_path, tiny_data, epochs=2))
    run = result.save_dir
    rows = _rows(run / "results.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for column in ("train/box", "train/obj", "train/cls", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "x/lr0"):
        assert column in rows[0]
    for name in ("results.png", "labels.jpg", "train_batch0.jpg", "hyp.yaml", "opt.yaml", "train.log"):
        assert (run / name).is_file(), name
    for weights in (result.last, result.best):
        ckpt = torch.load(weights, weights_only=True)
        assert ckpt["format"] == FORMAT and ckpt["optimizer"] is None  # stripped at the end
        assert load_model(weights).names == ["RBC", "WBC", "Platelets"]
    assert result.epochs_completed == 2


@pytest.mark.parametrize("deterministic", [False, True])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_data, monkeypatch, deterministic):
    """Bit for bit on the CPU and, on CUDA, under --deterministic; CUDA's default kernels are not repeatable, so
    there the weights only agree within 1e-3."""
    reference = train(_cfg(tmp_path, tiny_data, name="full", deterministic=deterministic))

    batches_per_epoch = 2  # 8 images, batch 4
    stop_at(monkeypatch, batches_per_epoch + 1)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, tiny_data, name="cut", deterministic=deterministic))
    monkeypatch.undo()
    last = tmp_path / "runs" / "cut" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    resumed = train(TrainConfig(resume=str(last)))
    assert resumed.save_dir == last.parent.parent
    assert [int(r["epoch"]) for r in _rows(resumed.save_dir / "results.csv")] == [0, 1]
    a = torch.load(reference.last, weights_only=True)["model"]
    b = torch.load(resumed.last, weights_only=True)["model"]
    exact = deterministic or not torch.cuda.is_available()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3), k


def test_finished_run_cannot_be_resumed(tmp_path, tiny_data):
    result = train(_cfg(tmp_path, tiny_data, epochs=1, noval=True, noplots=True))
    with pytest.raises(Exception, match="already finished"):
        train(TrainConfig(resume=str(result.last)))


class NanOnce(AddOn):
    kind = "nan_once"
    loss_names = ("extra",)

    def __init__(self):
        self.calls = 0

    def losses(self, batch):
        self.calls += 1
        value = float("nan") if self.calls == 1 else 0.0
        return {"extra": torch.tensor(value, device=batch.imgs.device)}


def test_non_finite_loss_skips_the_step(tmp_path, tiny_data, caplog):
    with caplog.at_level(logging.WARNING):
        result = train(_cfg(tmp_path, tiny_data, epochs=1, noplots=True), [NanOnce()])
    assert "non-finite loss" in caplog.text
    model = load_model(result.last)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert "train/extra" in _rows(result.save_dir / "results.csv")[0]


def test_fine_tuning_from_weights_with_other_class_count(tmp_path, tiny_data, caplog):
    first = train(_cfg(tmp_path, tiny_data, epochs=1, noval=True, noplots=True, name="a"))
    one_class = tiny_data.with_name("one.yaml")
    one_class.write_text(tiny_data.read_text().replace("names: [RBC, WBC, Platelets]", "names: [cell]"))
    with caplog.at_level(logging.INFO):
        second = train(_cfg(tmp_path, one_class, cfg="", weights=str(first.best), epochs=1, noval=True, noplots=True))
    assert load_model(second.last).nc == 1
    assert f"Overriding nc=3 of {first.best} (its model yaml) with nc=1" in caplog.text  # names the file, no <dict>


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="--optimizer"):
        TrainConfig(cfg="yolov5n.yaml", optimizer="Lion")
    with pytest.raises(ValueError, match="--cfg"):
        TrainConfig()


def test_training_starts_on_a_dataset_with_bad_files(tmp_path, caplog):
    """The bad-data corpus: every bad image or row is skipped with a warning, and training runs on the rest."""
    import shutil

    sample = Path(__file__).resolve().parents[3] / "data" / "bccd_sample"
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for img in sorted((sample / "images" / split).glob("*.jpg"))[:4]:
            shutil.copy(img, tmp_path / "images" / split / img.name)
            shutil.copy(sample / "labels" / split / f"{img.stem}.txt", tmp_path / "labels" / split / f"{img.stem}.txt")
    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    good = sorted(images.glob("*.jpg"))[0]
    (images / "truncated.jpg").write_bytes(good.read_bytes()[:2000])
    (images / "zero.jpg").write_bytes(b"")
    shutil.copy(good, images / "rows.jpg")
    (labels / "rows.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n1 0.5 nan 0.1 0.1\n"  # good, 4 columns, NaN
        "99 0.5 0.5 0.1 0.1\n2 0.5 0.5 -0.1 0.1\n0 0.5 0.5 0.2 0.2\n"  # class 99, negative width, duplicate
    )
    shutil.copy(good, images / "empty.jpg")
    (labels / "empty.txt").write_text("")
    data = tmp_path / "bad.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: [RBC, WBC, Platelets]\n")

    with caplog.at_level(logging.WARNING):
        result = train(_cfg(tmp_path, data, epochs=1, noplots=True))
    for needle in ("truncated.jpg", "zero.jpg", "rows.txt"):
        assert needle in caplog.text, needle
    assert len(_rows(result.save_dir / "results.csv")) == 1


def test_noval_leaves_unvalidated_epochs_blank(tmp_path, tiny_data):
    result = train(_cfg(tmp_path, tiny_data, epochs=2, noval=True, noplots=True, patience=1))
    rows = _rows(result.save_dir / "results.csv")
    assert len(rows) == 2  # patience counts validated epochs only: no early stop
    assert rows[0]["metrics/mAP_0.5"] == "" and rows[0]["val/box_loss"] == ""
    assert rows[1]["metrics/mAP_0.5"] != "" and rows[1]["val/box_loss"] != ""


def test_last_epoch_validated_once_when_best_pt_holds_it(tmp_path, tiny_data, monkeypatch):
    import json

    import utils.training.engine as engine

    calls = []
    real = engine.evaluate

    def counting(model, *a, **kw):
        calls.append(kw.get("desc"))
        return real(model, *a, **kw)

    monkeypatch.setattr(engine, "evaluate", counting)
    result = train(_cfg(tmp_path, tiny_data, epochs=2, noval=True))
    assert calls == ["val 2/2"]  # with --noval only the last epoch is validated, and best.pt holds that epoch
    metrics = json.loads((result.save_dir / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and metrics["weights"] == str(result.best)
    curves = ("PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png", "confusion_matrix.png")
    for name in (*curves, "val_batch0_pred.jpg", "results.png"):
        assert (result.save_dir / name).is_file(), name  # the last validation drew the final plots


def test_best_pt_of_an_earlier_epoch_is_validated_at_the_end(tmp_path, tiny_data, monkeypatch):
    import utils.training.engine as engine

    calls = []
    real = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda m, *a, **kw: calls.append(kw.get("desc")) or real(m, *a, **kw))
    fitness = iter([0.5, 0.1])  # the first epoch scores best
    monkeypatch.setattr(engine.EvalResult, "fitness", lambda self: next(fitness, 0.0))
    result = train(_cfg(tmp_path, tiny_data, epochs=2, noplots=True))
    assert calls == ["val 1/2", "val 2/2", "best.pt"]
    assert torch.load(result.best, weights_only=True)["best_fitness"] == pytest.approx(0.5)


def test_amp_on_the_cpu_trains_in_bfloat16_and_resumes_so(tmp_path, tiny_data, monkeypatch):
    import utils.training.engine as engine

    if not engine.mixed_precision(torch.device("cpu"), True):
        pytest.skip("this CPU has no bfloat16 arithmetic")
    seen = set()
    real = Stepper.losses

    def losses(self, imgs, targets):
        hook = self.model.model[0].conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
        try:
            return real(self, imgs, targets)
        finally:
            hook.remove()

    monkeypatch.setattr(Stepper, "losses", losses)
    stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, tiny_data, epochs=2, amp=True, noplots=True))
    assert seen == {torch.bfloat16}
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    seen.clear()
    resumed = train(TrainConfig(resume=str(last)))
    assert seen == {torch.bfloat16} and resumed.epochs_completed == 2
    assert torch.load(resumed.best, weights_only=True)["train_args"]["amp"] is True


def test_amp_without_bfloat16_trains_in_float32_and_says_so(monkeypatch, caplog):
    import utils.training.engine as engine

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert engine.mixed_precision(torch.device("cpu"), True) is False
    assert "no bfloat16" in caplog.text
    assert engine.mixed_precision(torch.device("cpu"), False) is False


def test_compile_flag_compiles_the_trained_module(tmp_path, tiny_data, monkeypatch):
    compiled = []

    def fake_compile(module, **kw):  # torch.compile itself takes minutes on a CPU: only the wiring is checked here
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    train(_cfg(tmp_path, tiny_data, epochs=1, compile=True, noplots=True))
    assert compiled == ["TrainModule"]
