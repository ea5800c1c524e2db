"""The distillation plugin: frozen teacher, gradients, hooks, adapters, compatibility checks, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from models.yolo import Model
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.distill.teacher import load_teacher
from utils.training.addons import ModelSetup, RunContext, StepBatch
from utils.training.config import TrainConfig
from utils.training.engine import Trainer, train

HYP = {"kd_box": 0.05, "kd_obj": 1.0, "kd_cls": 0.5, "kd_l2": 1.0, "kd_fitnet": 1.0, "kd_cwd_t": 4.0}


def per_image(d, imgs, preds) -> dict:
    """The add-on's terms for a labelled batch ``imgs``, per image (as results.csv shows them)."""
    n = imgs.shape[0]
    return {k: v / n for k, v in d.losses(StepBatch(imgs, preds, torch.zeros((0, 6)), n)).items()}


def _save_model(path: Path, cfg: str = "yolov5s.yaml", nc: int = 3, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = Model(cfg, nc=nc)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():  # a teacher with non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    names = ["RBC", "WBC", "Platelets"][:nc] if nc <= 3 else [f"c{i}" for i in range(nc)]  # the tiny data's classes
    return save_checkpoint(make_checkpoint(model, names), path)


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory) -> Path:
    return _save_model(tmp_path_factory.mktemp("teacher") / "teacher.pt")


def _context(tmp_path: Path) -> RunContext:
    return RunContext(tmp_path, torch.device("cpu"), ["a", "b", "c"], None, None, 64, {}, resumed=True)


def _distiller(teacher: Path, tmp_path: Path, student: Model, **kw) -> Distiller:
    d = Distiller(KDConfig(teacher=str(teacher), **kw), HYP)
    d.setup(ModelSetup(student, torch.device("cpu")))
    d.before_training(_context(tmp_path))
    return d


def _hook_count(*models: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for model in models for m in model.modules())


def test_gradients_reach_student_and_adapters_only(teacher_path, tmp_path):
    student = Model("yolov5n.yaml", nc=3).train()
    d = _distiller(teacher_path, tmp_path, student, kd_feature="fitnet")
    imgs = torch.rand(2, 3, 64, 64)
    terms = per_image(d, imgs, student(imgs))
    assert set(terms) == {"kd_out", "kd_feat"} and all(v.item() > 0 for v in terms.values())
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in d.adapters.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in d.teacher.parameters())
    assert not d.teacher.training
    d.close()


def test_hooks_registered_once_and_removed(teacher_path, tmp_path):
    student = Model("yolov5n.yaml", nc=3).train()
    before = _hook_count(student)
    d = _distiller(teacher_path, tmp_path, student, kd_feature="cwd")
    imgs = torch.rand(1, 3, 64, 64)
    per_image(d, imgs, student(imgs))
    after_one = _hook_count(student, d.teacher)
    for _ in range(19):
        per_image(d, imgs, student(imgs))
    assert _hook_count(student, d.teacher) == after_one == 6  # 3 layers x (student, teacher)
    d.close()
    assert _hook_count(student, d.teacher) == before == 0


def _identity_adapters(d: Distiller) -> None:
    for a in d.adapters:
        conv = next(m for m in a.modules() if isinstance(m, torch.nn.Conv2d))
        bn = next(m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
        with torch.no_grad():
            conv.weight.copy_(torch.eye(conv.out_channels).view_as(conv.weight))
            bn.reset_parameters()
            bn.reset_running_stats()
        a.eval()


@pytest.mark.parametrize(
    ("output", "feature"),
    [("l2", "none"), ("kl", "none"), ("bce", "none"), ("none", "at"), ("none", "fitnet"), ("none", "cwd")],
)
def test_losses_are_at_their_minimum_for_a_copy_of_the_teacher(teacher_path, tmp_path, output, feature):
    """Zero for l2 and the feature losses; for kl and bce (whose objectness/class BCE against soft targets has
    the targets' entropy as its minimum) the gradient vanishes. A perturbed student scores higher."""
    from models import load_model

    student = load_model(teacher_path)  # same weights, unfused, eval mode: the same function as the teacher
    d = _distiller(teacher_path, tmp_path, student, kd_output=output, kd_feature=feature)
    _identity_adapters(d)
    imgs = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        _, raw = student(imgs)
    raw = [r.clone().requires_grad_(True) for r in raw]
    feats = {i: f.clone().requires_grad_(True) for i, f in d._student_feats.items()}
    d._student_feats.update(feats)
    at_copy = per_image(d, imgs, raw)
    sum(at_copy.values()).backward()
    grads = [r.grad for r in raw if r.grad is not None] + [f.grad for f in feats.values() if f.grad is not None]
    assert grads and max(g.abs().max().item() for g in grads) < 1e-5
    if output in ("l2", "none"):
        assert all(v.abs().item() < 1e-6 for v in at_copy.values()), at_copy

    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        _, raw = student(imgs)
        perturbed = per_image(d, imgs, raw)
    for k, v in perturbed.items():
        assert v.item() > at_copy[k].item() + 1e-8, (k, v, at_copy[k])
    d.close()


def test_teacher_with_other_class_count_or_layout_is_refused(tmp_path):
    other_nc = _save_model(tmp_path / "nc2.pt", cfg="yolov5n.yaml", nc=2)
    with pytest.raises(ValueError, match=r"class count: teacher 2, student 3"):
        student = ModelSetup(Model("yolov5n.yaml", nc=3), torch.device("cpu"))
        Distiller(KDConfig(teacher=str(other_nc)), HYP).setup(student)
    from models.config import load_model_yaml

    two_anchors, _ = load_model_yaml("yolov5n.yaml")
    two_anchors["anchors"] = [a[:4] for a in two_anchors["anchors"]]
    odd = _save_model(tmp_path / "na2.pt", cfg=two_anchors)
    with pytest.raises(ValueError, match=r"anchors per level: teacher 2, student 3"):
        Distiller(KDConfig(teacher=str(odd)), HYP).setup(ModelSetup(Model("yolov5n.yaml", nc=3), torch.device("cpu")))


def test_missing_or_unreadable_teacher(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        KDConfig(teacher=str(tmp_path / "nowhere.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt"):
        Distiller(KDConfig(teacher=str(bad)), HYP).setup(ModelSetup(Model("yolov5n.yaml", nc=3), torch.device("cpu")))


def test_student_adopts_teacher_anchors(teacher_path):
    student = Model(
        "yolov5n.yaml", nc=3, anchors=[[5, 6, 7, 8, 9, 10], [20, 21, 22, 23, 24, 25], [60, 61, 62, 63, 64, 65]]
    )
    d = Distiller(KDConfig(teacher=str(teacher_path)), HYP)
    d.setup(ModelSetup(student, torch.device("cpu")))
    assert torch.equal(student.detect.anchors, d.teacher.detect.anchors)


class StopAfter(Distiller):
    def __init__(self, *a, stop_at: int, **kw):
        super().__init__(*a, **kw)
        self.stop_at, self.calls = stop_at, 0

    def losses(self, batch):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().losses(batch)


def test_kd_run_keeps_teacher_and_resume_restores_adapters(teacher_path, tmp_path, tiny_data, monkeypatch):
    digest = hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    kd = KDConfig(teacher=str(teacher_path), kd_output=["l2"], kd_feature="fitnet")
    cfg = TrainConfig(
        cfg="yolov5n.yaml", data=str(tiny_data), imgsz=64, epochs=2, batch_size=4, workers=0,
        project=str(tmp_path / "runs"), noplots=True, hyp="data/hyps/hyp.kd.yaml",
    )  # fmt: skip
    plugin = StopAfter(kd, HYP, stop_at=3)  # 2 batches per epoch: stops in the second epoch
    with pytest.raises(KeyboardInterrupt):
        train(cfg, [plugin])
    fresh = load_teacher(str(teacher_path), plugin.device).state_dict()  # on the device, in the dtype, it ran in
    after = plugin.teacher.state_dict()
    assert after.keys() == fresh.keys() and all(torch.equal(after[k].cpu(), fresh[k].cpu()) for k in fresh)
    assert hashlib.sha256(teacher_path.read_bytes()).hexdigest() == digest

    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    saved = torch.load(last, weights_only=True)
    adapters = saved["extra"]["addons"]["distill"]["adapters"]
    assert adapters and saved["epoch"] == 0
    assert saved["train_args"]["addons"] == [{"kind": "distill", "settings": plugin.settings()}]
    assert not torch.load(last.with_name("best.pt"), weights_only=True)["extra"]  # no adapters in best.pt

    restored = {}
    real_load = Distiller.load_state_dict

    def recording_load(self, state):
        real_load(self, state)
        restored.update({k: v.clone() for k, v in self.adapters.state_dict().items()})

    monkeypatch.setattr(Distiller, "load_state_dict", recording_load)
    result = train(TrainConfig(resume=str(last)))  # the checkpoint rebuilds the distillation
    assert restored.keys() == adapters.keys()
    assert all(torch.equal(restored[k], v) for k, v in adapters.items())
    assert result.epochs_completed == 2
    assert (result.save_dir / "kd.yaml").is_file()
    rows = (result.save_dir / "results.csv").read_text().splitlines()
    assert rows[0].split(",")[4:6] == ["train/kd_out", "train/kd_feat"] and len(rows) == 3


# ------------------------------------------------------------------------------------ combined output losses
def test_output_losses_add_up_each_with_its_gain(teacher_path, tmp_path):
    torch.manual_seed(0)
    student = Model("yolov5n.yaml", nc=3).train()
    imgs = torch.rand(2, 3, 64, 64)
    preds = student(imgs)
    hyp = {**HYP, "kd_bce": 0.7, "kd_pseudo": 0.3}
    parts = {}
    for outputs in (["bce"], ["pseudo"], ["bce", "pseudo"]):
        d = Distiller(KDConfig(teacher=str(teacher_path), kd_output=outputs, pseudo_conf=0.01), hyp)
        d.setup(ModelSetup(student, torch.device("cpu")))
        d.before_training(_context(tmp_path))
        parts["+".join(outputs)] = per_image(d, imgs, preds)["kd_out"]
        d.close()
    assert parts["bce"].item() > 0 and parts["pseudo"].item() > 0
    assert parts["bce+pseudo"].item() == pytest.approx(parts["bce"].item() + parts["pseudo"].item(), rel=1e-5)
    # each single loss is its gain times the unit-gain loss
    d = Distiller(KDConfig(teacher=str(teacher_path), kd_output=["bce"]), {**hyp, "kd_bce": 1.0})
    d.setup(ModelSetup(student, torch.device("cpu")))
    d.before_training(_context(tmp_path))
    assert parts["bce"].item() == pytest.approx(0.7 * per_image(d, imgs, preds)["kd_out"].item())


def test_output_parts_are_scaled_like_the_ground_truth_gains(teacher_path, tmp_path):
    from utils.distill.output_losses import bce_output_loss, part_scales

    torch.manual_seed(1)
    student = Model("yolov5n.yaml", nc=3).train()
    d = _distiller(teacher_path, tmp_path, student, kd_output="bce")
    imgs = torch.rand(2, 3, 64, 64)
    preds = student(imgs)
    got = per_image(d, imgs, preds)["kd_out"]
    with torch.no_grad():
        _, t_raw = d.teacher(imgs)
    parts = bce_output_loss([p.detach() for p in preds], t_raw)
    scales = part_scales(64, 3, 3)  # the context's image size; the student's levels and classes
    want = sum(HYP[f"kd_{k}"] * scales[k] * parts[k] for k in ("box", "obj", "cls")) * d.w["kd_bce"]
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_pseudo_targets_are_clipped_to_the_image():
    from utils.distill.distiller import pseudo_targets

    dets = [
        torch.tensor([[-10.0, 5.0, 30.0, 70.0, 0.9, 2.0], [70.0, 10.0, 90.0, 20.0, 0.8, 1.0]]),  # 2nd: all outside
        torch.zeros((0, 6)),
        torch.tensor([[8.0, 8.0, 24.0, 40.0, 0.7, 0.0]]),
    ]
    t = pseudo_targets(dets, height=64, width=64)
    want = torch.tensor([[0, 2, 15 / 64, 34.5 / 64, 30 / 64, 59 / 64], [2, 0, 16 / 64, 24 / 64, 16 / 64, 32 / 64]])
    assert torch.allclose(t, want)
    assert pseudo_targets([torch.zeros((0, 6))], 64, 64).shape == (0, 6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["bce", "bce"], "named once"),
        (["none", "bce"], "cannot be combined"),
        (["soft"], "not one of"),
        ([], "at least"),
    ],
)
def test_kd_output_lists_are_checked(teacher_path, value, message):
    with pytest.raises(ValueError, match=message):
        KDConfig(teacher=str(teacher_path), kd_output=value)


def test_kd_output_from_an_older_checkpoint_is_one_name(teacher_path):
    assert KDConfig.from_dict({"teacher": str(teacher_path), "kd_output": "bce"}).kd_output == ["bce"]
    assert KDConfig(teacher=str(teacher_path), kd_output="none", kd_feature="at").outputs == []


def test_resume_whose_teacher_is_gone_exits_2_naming_it(teacher_path, tmp_path, tiny_data, caplog):
    import train as train_program
    from utils.cli import run_main

    teacher = tmp_path / "moved" / "teacher.pt"
    teacher.parent.mkdir()
    teacher.write_bytes(teacher_path.read_bytes())
    cfg = TrainConfig(
        cfg="yolov5n.yaml", data=str(tiny_data), imgsz=64, epochs=2, batch_size=4, workers=0,
        project=str(tmp_path / "runs"), noplots=True, noval=True, hyp="data/hyps/hyp.kd.yaml",
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        train(cfg, [StopAfter(KDConfig(teacher=str(teacher)), HYP, stop_at=3)])
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    teacher.unlink()
    with pytest.raises(SystemExit) as stop:
        run_main(train_program.main, ["--resume", str(last)])
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(teacher) in errors[0] and "cannot be rebuilt" in errors[0]
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the checkpoint is untouched


def test_distillation_and_sparsity_combine_and_resume_with_both(teacher_path, tmp_path, tiny_data):
    import csv

    import train_kd

    args = ["--teacher", str(teacher_path), "--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--imgsz", "64",
            "--epochs", "2", "--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs"),
            "--noplots", "--noval", "--sparsity", "1e-3", "--kd-output", "bce"]  # fmt: skip
    real_save, saves = Trainer._save, []

    def save_then_stop(self, epoch, improved):
        real_save(self, epoch, improved)
        saves.append(epoch)
        if len(saves) == 1:
            raise KeyboardInterrupt

    Trainer._save = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train_kd.main(args)
    finally:
        Trainer._save = real_save
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    kinds = [a["kind"] for a in torch.load(last, weights_only=True)["train_args"]["addons"]]
    assert kinds == ["distill", "sparsity"]
    result = train_kd.main(["--resume", str(last)])
    with open(result.save_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for row in rows:  # both terms in both epochs, the second trained by the resumed process
        assert float(row["train/kd_out"]) > 0 and float(row["train/sparsity"]) > 0
