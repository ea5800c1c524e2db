"""tools/prunmodel.py end to end, and a pruned checkpoint in train.py, train_kd.py, val.py and detect.py."""

from __future__ import annotations

import copy
import csv
import logging
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

import detect
import export
import train
import train_kd
import val
from models import load_model
from models.yolo import Model
from tools import prunmodel
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.pruning import workflow
from utils.pruning.sparsity import BNSparsity, bn_scales
from utils.torch_utils import count_parameters
from utils.training import engine
from utils.training.addons import AddOn, ModelSetup, StepBatch
from utils.training.config import TrainConfig
from utils.training.step import Stepper

REPO = Path(__file__).resolve().parents[2]
NAMES = ["RBC", "WBC", "Platelets"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """An unpruned yolov5n checkpoint and its 50% pruned copy (written by the tool)."""
    tmp = tmp_path_factory.mktemp("prune")
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    model.names = NAMES
    full = save_checkpoint(make_checkpoint(model, NAMES), tmp / "full.pt")
    pruned = tmp / "pruned.pt"
    result = prunmodel.main(["--weights", str(full), "--ratio", "0.5", "--imgsz", "64", "--out", str(pruned)])
    assert result.out == pruned and pruned.is_file()
    return {"full": full, "pruned": pruned, "params": result.after.parameters}


def _train_args(tmp_path: Path, data: Path, weights: Path, name: str, epochs: int = 1) -> list[str]:
    return ["--weights", str(weights), "--data", str(data), "--imgsz", "64", "--epochs", str(epochs),
            "--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs"), "--name", name,
            "--noautoanchor", "--noplots"]  # fmt: skip


def test_train_fine_tunes_at_the_pruned_size_and_resumes(models, tmp_path, tiny_data, monkeypatch):
    n = models["params"]
    assert n < count_parameters(load_model(models["full"])) / 2
    # interrupt in the second epoch (2 batches per epoch), as Ctrl-C would, then resume
    calls = {"n": 0}
    real = Stepper.step

    def stop(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(Stepper, "step", stop)
    with pytest.raises(KeyboardInterrupt):
        train.main(_train_args(tmp_path, tiny_data, models["pruned"], "ft", epochs=2))
    last = tmp_path / "runs" / "ft" / "weights" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["optimizer"] is not None
    assert sum(v.numel() for k, v in ckpt["ema"].items() if "running" not in k and "num_batches" not in k
               and "anchors" not in k) == n  # fmt: skip
    monkeypatch.setattr(Stepper, "step", real)
    result = train.main(["--resume", str(last)])
    assert result.epochs_completed == 2
    for weights in (result.last, result.best):
        assert count_parameters(load_model(weights)) == n


def test_train_kd_recovers_a_pruned_student_from_the_unpruned_teacher(models, tmp_path, tiny_data):
    args = _train_args(tmp_path, tiny_data, models["pruned"], "kd") + ["--teacher", str(models["full"])]
    result = train_kd.main(args)
    assert count_parameters(load_model(result.best or result.last)) == models["params"]


def test_val_and_detect_read_a_pruned_checkpoint(models, tmp_path, tiny_data):
    metrics, _ = val.main(["--weights", str(models["pruned"]), "--data", str(tiny_data), "--imgsz", "64",
                           "--workers", "0", "--project", str(tmp_path / "val"), "--noplots"])  # fmt: skip
    assert 0.0 <= metrics.map <= metrics.map50 <= 1.0
    source = REPO / "data" / "bccd_sample" / "images" / "val"
    detect.main(["--weights", str(models["pruned"]), "--source", str(source), "--imgsz", "64", "--conf-thres",
                 "0.001", "--save-txt", "--nosave", "--project", str(tmp_path / "detect")])  # fmt: skip
    assert list((tmp_path / "detect" / "exp" / "labels").glob("*.txt"))


class Keep(AddOn):
    """Keeps a reference to the trained model (fp32, before the deployable checkpoint is cast to fp16)."""

    kind = "keep"

    def setup(self, s):
        self.model = s.model


def _l1(scales) -> float:
    return float(sum(s.detach().abs().sum() for s in scales))


def test_sparsity_penalty_has_the_slimming_gradient():
    model = Model("yolov5n.yaml", nc=3)
    plugin = BNSparsity(1e-3)
    plugin.setup(ModelSetup(model, torch.device("cpu")))
    imgs = torch.zeros(4, 3, 64, 64)
    plugin.losses(StepBatch(imgs, [], torch.zeros(0, 6), 4))["sparsity"].backward()  # added to the loss as it is
    for s in bn_scales(model):
        torch.testing.assert_close(s.grad, 1e-3 * torch.sign(s.detach()))
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="--sparsity must be a finite number > 0"):
            BNSparsity(bad)


def test_sparsity_drives_bn_scales_down(tmp_path, tiny_data):
    def cfg(name: str) -> TrainConfig:
        return TrainConfig(
            cfg="yolov5n.yaml", data=str(tiny_data), imgsz=64, epochs=1, batch_size=2, workers=0,
            project=str(tmp_path), name=name, noautoanchor=True, noplots=True, noval=True, seed=1,
        )  # fmt: skip

    plain, sparse = Keep(), BNSparsity(0.05)
    engine.train(cfg("plain"), [plain])
    engine.train(cfg("sparse"), [sparse])
    assert _l1(sparse.scales) < _l1(bn_scales(plain.model)) - 0.1


def test_train_records_the_sparsity_penalty(tmp_path, tiny_data):
    result = train.main(["--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--imgsz", "64", "--epochs", "1",
                         "--batch-size", "4", "--workers", "0", "--project", str(tmp_path), "--name", "sparse",
                         "--noautoanchor", "--noplots", "--noval", "--sparsity", "0.05"])  # fmt: skip
    with open(result.save_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["train/sparsity"]) > 0
    addons = torch.load(result.last, weights_only=True)["train_args"]["addons"]
    assert addons == [{"kind": "sparsity", "settings": {"strength": 0.05}}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ratio", "1.0"], "--ratio must be > 0 and < 1, got 1.0"),
        (
            ["--ratio", "0.5", "--importance", "taylor", "--data", "d.yaml", "--batch-size", "0"],
            "--batch-size must be >= 1, got 0",
        ),
        (
            ["--ratio", "0.5", "--importance", "taylor", "--data", "d.yaml", "--batch-size", "-4"],
            "--batch-size must be >= 1, got -4",
        ),
        (["--ratio", "0.5", "--layers", "99"], "unknown layer 99"),
        (["--target-params", "0.001", "--layers", "0"], "below what the kept layers need"),
        (["--ratio", "0.5", "--layers", "11"], "the chosen layers (11 Upsample) have no convolution to prune"),
        (["--ratio", "0.5", "--layers", "11,12"], "(11 Upsample, 12 Concat) have no convolution"),
        (["--ratio", "0.5", "--round-to", "1000"], "--round-to 1000 is larger than every chosen layer"),
        (["--target-params", "0.5", "--round-to", "1000"], "--round-to 1000 is larger than every chosen layer"),
        (
            ["--ratio", "0.5", "--iterative-steps", "17"],
            "--iterative-steps 17 is more than the 16 output channels of the narrowest layer to prune (model.0.conv)",
        ),
    ],
)
def test_impossible_requests_exit_2_with_one_line(args, message, models, tmp_path, caplog):
    argv = ["--weights", str(models["full"]), "--imgsz", "64", "--out", str(tmp_path / "x.pt"), *args]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run_main(prunmodel.main, argv)
    assert exit_.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "x.pt").exists()


def test_fused_checkpoint_is_refused_by_the_program(models, tmp_path):
    fused = load_model(models["full"], fuse=True)
    ckpt = make_checkpoint(fused, NAMES)
    path = save_checkpoint(ckpt, tmp_path / "fused.pt")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "prunmodel.py"), "--weights", str(path), "--ratio", "0.5", "--out",
         str(tmp_path / "p.pt")], capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "fused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_pruned_checkpoint_exports_to_onnx_at_its_pruned_size(models, tmp_path):
    pruned = tmp_path / "pruned.pt"
    pruned.write_bytes(models["pruned"].read_bytes())
    result = export.main(["--weights", str(pruned), "--include", "onnx", "torchscript", "--imgsz", "64"])
    assert result.ok and set(result.files) == {"onnx", "torchscript"}
    assert all(check.max_rel < 1e-3 for check in result.checks.values())
    graph = onnx.load(str(result.files["onnx"])).graph
    n_weights = sum(int(torch.tensor(list(t.dims)).prod()) for t in graph.initializer)
    assert n_weights < count_parameters(load_model(models["full"], fuse=True))  # the narrow model, not the yaml's


@pytest.mark.parametrize("variant", ["yolov5s-se.yaml", "yolov5s-ca.yaml"])
def test_attention_variant_prunes_with_the_tool_and_exports(variant, tmp_path):
    torch.manual_seed(0)
    model = Model(variant, nc=3)
    model.names = NAMES
    full = save_checkpoint(make_checkpoint(model, NAMES), tmp_path / "full.pt")
    out = tmp_path / "pruned.pt"
    result = prunmodel.main(["--weights", str(full), "--ratio", "0.5", "--imgsz", "64", "--out", str(out)])
    assert result.after.parameters < result.before.parameters / 2
    reloaded = load_model(out)
    assert count_parameters(reloaded) == result.after.parameters
    assert [m.type for m in reloaded.model] == [m.type for m in model.model]  # the attention layers are kept
    exported = export.main(["--weights", str(out), "--include", "onnx", "--imgsz", "64"])
    assert exported.ok


def _exit_2_message(argv: list[str], caplog) -> str:
    """The one error line of ``prunmodel`` run on ``argv``, which must end it with exit status 2."""
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run_main(prunmodel.main, argv)
    assert exit_.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def test_out_must_be_a_new_pt_file(models, tmp_path, caplog):
    weights = tmp_path / "w.pt"
    weights.write_bytes(models["full"].read_bytes())
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / "w.pt"  # another spelling of the input
    argv = ["--weights", str(weights), "--ratio", "0.5", "--imgsz", "64", "--out", str(same)]
    message = _exit_2_message(argv, caplog)
    assert f"--out {same} is the input --weights {weights}" in message
    assert weights.read_bytes() == models["full"].read_bytes()
    caplog.clear()
    onnx_out = tmp_path / "x.onnx"
    message = _exit_2_message(["--weights", str(weights), "--ratio", "0.5", "--out", str(onnx_out)], caplog)
    assert "must end in .pt" in message and "export.py" in message
    assert not onnx_out.exists()


def test_ctrl_c_says_nothing_was_written(models, tmp_path, monkeypatch, caplog):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "prune_model", interrupt)
    out = tmp_path / "p.pt"
    argv = ["--weights", str(models["full"]), "--ratio", "0.5", "--imgsz", "64", "--out", str(out)]
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exit_:
        run_main(prunmodel.main, argv)
    assert exit_.value.code == 130
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "interrupted" in errors[0] and "nothing was written" in errors[0], errors
    assert not out.exists()


def _prune(weights: Path, out: Path, *args: str) -> prunmodel.PruneResult:
    return prunmodel.main(["--weights", str(weights), "--imgsz", "64", "--out", str(out), *args])


def test_a_model_at_the_round_to_minimum_is_refused_not_rewritten(tmp_path, caplog):
    cfg = copy.deepcopy(Model("yolov5n.yaml", nc=3).yaml)
    cfg["width_multiple"] = 0.005  # every layer 8 channels wide (4 inside the C3 blocks)
    narrow = Model(cfg)
    narrow.names = NAMES
    weights = save_checkpoint(make_checkpoint(narrow, NAMES), tmp_path / "narrow.pt")
    out = tmp_path / "again.pt"
    argv = ["--weights", str(weights), "--ratio", "0.5", "--imgsz", "64", "--out", str(out)]
    message = _exit_2_message(argv, caplog)
    assert "every chosen layer is already at or below the --round-to minimum of 8 output channels" in message
    assert not out.exists()


def test_layers_kept_wider_than_the_ratio_asks_are_named(models, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = _prune(models["full"], tmp_path / "p.pt", "--ratio", "0.75")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    fraction = f"{result.after.parameters / result.before.parameters:.1%} of its parameters"
    short = [w for w in warnings if "keep more channels than ratio 0.75 asks" in w]
    assert len(short) == 1 and "layers 0, 2 " in short[0] and "model.0.conv 16 -> 8" in short[0], warnings
    assert fraction in short[0]


def test_a_ratio_above_the_per_layer_maximum_is_clamped_and_keeps_no_more_than_0_9(models, tmp_path, caplog):
    at_09 = _prune(models["full"], tmp_path / "p09.pt", "--ratio", "0.9").after.parameters
    with caplog.at_level(logging.WARNING):
        at_099 = _prune(models["full"], tmp_path / "p099.pt", "--ratio", "0.99")
    assert at_099.ratio == 0.95 and at_099.after.parameters < at_09
    assert any("--ratio 0.99 is above 0.95" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_global_ranking_that_leaves_layers_whole_says_so(models, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = _prune(models["full"], tmp_path / "p.pt", "--ratio", "0.9", "--global")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    fraction = f"{result.after.parameters / result.before.parameters:.1%} of its parameters"
    short = [w for w in warnings if "less than ratio 0.9 asks" in w]
    assert len(short) == 1 and "layers left whole: 0, " in short[0] and fraction in short[0], warnings


def test_iterative_pruning_logs_each_step(models, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        result = _prune(models["full"], tmp_path / "p.pt", "--ratio", "0.5", "--iterative-steps", "3")
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pruning step ")]
    assert [s.split(":")[0] for s in steps] == ["pruning step 1/3", "pruning step 2/3", "pruning step 3/3"]
    assert steps[-1].endswith(f"{result.after.parameters:,} parameters")


@pytest.fixture(scope="module")
def cbam(tmp_path_factory) -> Path:
    """An unpruned yolov5s-cbam checkpoint."""
    torch.manual_seed(0)
    model = Model("yolov5s-cbam.yaml", nc=3)
    model.names = NAMES
    return save_checkpoint(make_checkpoint(model, NAMES), tmp_path_factory.mktemp("cbam") / "cbam.pt")


def test_convolutions_feeding_cbam_are_named_as_kept_at_full_width(cbam, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = _prune(cbam, tmp_path / "p.pt", "--ratio", "0.5")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    whole = [w for w in warnings if "kept at full width" in w]
    assert len(whole) == 1, warnings
    for name in ("model.14.conv 256", "model.18.conv 128", "model.11.cv3.conv 512"):  # the neck's two, a backbone one
        assert name in whole[0]
    assert "CBAM" in whole[0] and f"{result.after.parameters / result.before.parameters:.1%}" in whole[0]


def test_layers_torch_pruning_cannot_prune_at_all_are_refused(cbam, tmp_path, caplog):
    out = tmp_path / "p.pt"
    message = _exit_2_message(["--weights", str(cbam), "--ratio", "0.5", "--imgsz", "64", "--layers", "14",
                               "--out", str(out)], caplog)  # fmt: skip
    assert "nothing was pruned" in message and "CBAM" in message
    assert not out.exists()
