"""DDP training: 2 CPU processes (Gloo) against one process with the same total batch.

Both runs see the same images per optimizer step: ``--rect`` keeps the data order fixed, so rank 0 loads images
0, 2, .. and rank 1 images 1, 3, .. of what the single process loads as one batch, and a hyp without augmentation
makes every image identical in both runs. BatchNorm would normalise each process's half-batch by its own
statistics (``--sync-bn`` needs CUDA); on a freshly initialised network at 64 px that alone moves the two runs
apart by more than the training update (measured: 1.5x), so both runs keep BN in eval mode here. What remains is
by design of DDP: the box and class losses average over each process's own targets. So the runs agree closely,
not bit for bit: the distance between their weights must stay a fraction of how far training moved them
(measured 0.23 with 2 steps of 4 images), and both must move equally far. A missing gradient average or a loss
not scaled back to the whole batch moves the DDP run half as far and fails.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from torch import nn

from models.yolo import Model
from tests.conftest import write_tiny_data
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.training.config import TrainConfig
from utils.training.distributed import DistInfo, per_process_batch
from utils.training.engine import Trainer

NO_AUGMENT = dict.fromkeys(
    ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud", "fliplr"), 0.0
) | {"mosaic": 0.0, "mixup": 0.0}
TOLERANCE = 0.35  # |w_ddp - w_single| / |w_single - w_start|; measured 0.23


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bn_eval_train(self, mode=True):
    return nn.Module.train(self, False)


def _run(cfg: TrainConfig, kd: KDConfig | None, out: Path) -> None:
    """Train (BN in eval mode) and save this process's final student (and adapters) to ``out``."""
    plugin = Distiller(kd, {}) if kd else None
    trainer = Trainer(cfg, [plugin] if plugin else [])
    original = nn.BatchNorm2d.train
    nn.BatchNorm2d.train = _bn_eval_train
    try:
        trainer.run()
    finally:
        nn.BatchNorm2d.train = original
    state = {f"model.{k}": v for k, v in trainer.model.named_parameters()}
    if plugin is not None:
        state |= {f"adapters.{k}": v for k, v in plugin.adapters.named_parameters()}
    torch.save({k: v.detach().clone() for k, v in state.items()}, out)


def _worker(rank: int, world: int, port: int, cfg: TrainConfig, kd: KDConfig | None, out_dir: Path) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    _run(cfg, kd, out_dir / f"rank{rank}.pt")


def _setup(tmp_path: Path) -> tuple[TrainConfig, Path]:
    data = write_tiny_data(tmp_path / "data", n_train=8, n_val=2)
    hyp = yaml.safe_load((Path(__file__).parents[3] / "data/hyps/hyp.scratch-low.yaml").read_text()) | NO_AUGMENT
    (tmp_path / "hyp.yaml").write_text(yaml.safe_dump(hyp))
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=3), ["RBC", "WBC", "Platelets"]), start)
    cfg = TrainConfig(
        weights=str(start), data=str(data), hyp=str(tmp_path / "hyp.yaml"), imgsz=64, epochs=1, batch_size=4,
        rect=True, workers=0, noautoanchor=True, noplots=True, device="cpu", project=str(tmp_path / "runs"), seed=1,
    )  # fmt: skip
    return cfg, start


def _compare(tmp_path: Path, cfg: TrainConfig, start: Path, kd: KDConfig | None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ddp_cfg = TrainConfig.from_dict({**cfg.to_dict(), "name": "ddp"})
    mp.spawn(_worker, args=(2, _free_port(), ddp_cfg, kd, out), nprocs=2, join=True)
    _run(TrainConfig.from_dict({**cfg.to_dict(), "name": "single"}), kd, out / "single.pt")
    r0, r1, single = (torch.load(out / f, weights_only=True) for f in ("rank0.pt", "rank1.pt", "single.pt"))
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"ranks differ in {k}: {m}")

    begin = torch.load(start, weights_only=True)["model"]
    keys = [k for k in r0 if k.startswith("model.")]
    flat = {name: torch.cat([d[k].flatten().float() for k in keys]) for name, d in (("ddp", r0), ("one", single))}
    w0 = torch.cat([begin[k[6:]].flatten().float() for k in keys])
    moved, ddp_moved = (flat["one"] - w0).norm(), (flat["ddp"] - w0).norm()
    assert moved > 0, "training did not change the weights"
    assert 0.8 < ddp_moved / moved < 1.25, f"DDP moved the weights {ddp_moved / moved:.2f}x as far as one process"
    ratio = float((flat["ddp"] - flat["one"]).norm() / moved)
    assert ratio < TOLERANCE, f"DDP and single-process weights differ by {ratio:.3f} of the training update"
    for name in ("ddp", "single"):  # only the main process writes the run
        run = tmp_path / "runs" / name
        assert (run / "weights" / "last.pt").is_file() and (run / "results.csv").is_file()
    assert not (tmp_path / "runs" / "ddp2").exists()


def test_batch_size_is_the_total_over_processes():
    assert per_process_batch(16, DistInfo(0, 0, 4)) == 4
    with pytest.raises(ValueError, match="--batch-size 10 must be a multiple of the number of processes"):
        per_process_batch(10, DistInfo(1, 1, 4))


def test_ddp_train_matches_single_process(tmp_path):
    cfg, start = _setup(tmp_path)
    _compare(tmp_path, cfg, start, None)


def test_ddp_distillation_matches_single_process(tmp_path):
    cfg, start = _setup(tmp_path)
    kd = KDConfig(teacher=str(start), kd_output="l2", kd_feature="fitnet")
    _compare(tmp_path, cfg, start, kd)
