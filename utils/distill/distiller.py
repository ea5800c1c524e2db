"""Knowledge distillation as a plugin of the training engine: a frozen teacher and named loss terms.

``kd_out`` compares the student's raw outputs with the teacher's (L2 / KL / BCE, see
:mod:`utils.distill.output_losses`) and/or trains the student on the teacher's detections (pseudo labels); several
output losses add up, each with its own gain. ``kd_feat`` compares intermediate feature maps (FitNet through 1x1
adapters, attention transfer, channel-wise distillation).

Before the first epoch the teacher is measured on the validation split (see :func:`check_teacher`); a weak teacher
draws a warning, recorded in ``kd.yaml``, and gives no pseudo labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
import yaml
from torch import nn

from models.probe import probe_outputs
from models.yolo import Model
from utils.distill.config import KDConfig
from utils.distill.feature_losses import FEATURE_LOSSES, NEEDS_ADAPTER, Adapter
from utils.distill.output_losses import OUTPUT_LOSSES, part_scales
from utils.distill.teacher import adopt_teacher_anchors, check_compatible, load_teacher, teacher_warning
from utils.evaluation import evaluate
from utils.loss import LossConfig, YoloLoss
from utils.nms import non_max_suppression
from utils.training.addons import AddOn, ModelSetup, RunContext, StepBatch

LOGGER = logging.getLogger(__name__)
KD_HYP_DEFAULTS = {
    "kd_box": 0.05,
    "kd_obj": 1.0,
    "kd_cls": 0.5,
    "kd_l2": 4.0,
    "kd_bce": 1.0,
    "kd_kl": 1.0,
    "kd_pseudo": 1.0,
    "kd_fitnet": 0.05,
    "kd_at": 2.5,
    "kd_cwd": 0.01,
    "kd_cwd_t": 4.0,
}
_PROBE = 64  # input size of the dry run that measures feature shapes


def _size(feature: torch.Tensor) -> torch.Size:
    """The shape ``[B, C, H, W]`` of a feature map."""
    return feature.shape


class Distiller(AddOn):
    """Adds ``kd_out`` and/or ``kd_feat`` to every training step. See :class:`KDConfig` for the settings.

    ``hyp`` supplies the weights (see ``data/hyps/hyp.kd.yaml``): weights of the output parts (``kd_box``,
    ``kd_obj``, ``kd_cls``, scaled by :func:`~utils.distill.output_losses.part_scales`), a gain per output method
    (``kd_l2``, ``kd_bce``, ``kd_kl``, ``kd_pseudo``) and per
    feature method (``kd_fitnet``, ``kd_at``, ``kd_cwd``), and the channel-wise temperature ``kd_cwd_t``; missing
    keys take :data:`KD_HYP_DEFAULTS`.
    """

    kind = "distill"

    def __init__(self, cfg: KDConfig, hyp: dict):
        self.cfg = cfg
        self.w = {k: float(hyp.get(k, v)) for k, v in KD_HYP_DEFAULTS.items()}
        self.use_gt_loss = not cfg.no_gt
        self.outputs = list(cfg.outputs)  # output losses in use; pseudo leaves it when the teacher is weak
        self.loss_names = self._names()
        self.teacher_check: dict = {}  # what the check of the teacher found (kd.yaml, checkpoints)
        self.scales = part_scales(640, 3, 80)  # of the output parts; set from the run before training
        self.adapters = nn.ModuleList()
        self.layers: list[int] = []  # student layers of feature KD
        self.teacher_layers: list[int] = []  # the teacher layer paired with each of them
        self.hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._student_feats: dict[int, torch.Tensor] = {}
        self._teacher_feats: dict[int, torch.Tensor] = {}
        self.teacher: Model | None = None
        self.student: Model | None = None
        self.pseudo_loss: YoloLoss | None = None
        self.unlabeled: Iterator | None = None

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, on in (("kd_out", self.outputs), ("kd_feat", self.cfg.kd_feature != "none")) if on)

    def settings(self) -> dict:
        return {"kd": self.cfg.to_dict(), "weights": dict(self.w)}

    @classmethod
    def from_settings(cls, settings: dict) -> Distiller:
        return cls(KDConfig.from_dict(settings.get("kd") or {}), settings.get("weights") or {})

    # ------------------------------------------------------------------------------------------------ set-up
    def setup(self, s: ModelSetup) -> None:
        model, device = s.model, s.device
        self.student, self.device = model, device
        self.teacher = load_teacher(self.cfg.teacher, device)
        check_compatible(model, self.teacher, self.cfg.teacher)
        adopt_teacher_anchors(model, self.teacher)
        s.autoanchor = False  # the student keeps the teacher's anchors
        s.gt_loss = s.gt_loss and self.use_gt_loss
        if self.cfg.kd_feature != "none":
            if self.cfg.kd_layers:
                self.layers = self.teacher_layers = self._check_layers(self.cfg.kd_layers)
            else:  # the layers feeding Detect, which sit at different indices in e.g. an attention variant
                self.layers, self.teacher_layers = list(model.detect.f), list(self.teacher.detect.f)
            self._build_adapters()
        LOGGER.info(
            "Distillation: teacher %s, output %s, feature %s%s, weight %g%s",
            self.cfg.teacher, " + ".join(self.cfg.kd_output), self.cfg.kd_feature,
            f" on layers {self.layers} (teacher {self.teacher_layers})" if self.layers else "", self.cfg.kd_weight,
            ", no ground-truth loss" if self.cfg.no_gt else "",
        )  # fmt: skip

    def _check_layers(self, layers: list[int]) -> list[int]:
        last = len(self.student.model) - 1  # Detect
        for i in layers:
            if not 0 <= i < last or not 0 <= i < len(self.teacher.model) - 1:
                raise ValueError(f"--kd-layers {i}: feature layers must be in 0..{last - 1} (Detect is layer {last})")
        return sorted(set(layers))

    def _build_adapters(self) -> None:
        """Measure each chosen layer's output in both models (a dry run) and make 1x1 adapters where needed."""
        probe = torch.zeros(1, 3, _PROBE, _PROBE, device=self.device)
        s_shapes = probe_outputs(self.student, probe, self.layers, _size)
        t_shapes = probe_outputs(self.teacher, probe, self.teacher_layers, _size)
        for i, j in zip(self.layers, self.teacher_layers, strict=True):
            (_, cs, hs, ws), (_, ct, ht, wt) = s_shapes[i], t_shapes[j]
            if (hs, ws) != (ht, wt):
                raise ValueError(
                    f"--kd-layers {i}: student output {hs}x{ws} and teacher layer {j} output {ht}x{wt} differ in "
                    f"size at {_PROBE}x{_PROBE} input; choose layers of equal stride"
                )
            if NEEDS_ADAPTER[self.cfg.kd_feature]:
                self.adapters.append(Adapter(cs, ct).to(self.device))

    def trainable_modules(self) -> list[nn.Module]:
        return [self.adapters] if len(self.adapters) else []

    def before_training(self, run: RunContext) -> None:
        self.scales = part_scales(run.imgsz, self.student.detect.nl, self.student.nc)
        if not run.resumed:  # a resumed run restored the check's verdict with its state
            self.teacher_check = run.share(self._check_teacher(run) if run.main else None)
            if run.main:
                self._record_run(run)
        self._apply_teacher_check()
        # Hooks go on now, after the engine copied the student into its EMA, so the copy carries none.
        for i, j in zip(self.layers, self.teacher_layers, strict=True):
            self.hooks.append(self.student.model[i].register_forward_hook(self._store(self._student_feats, i)))
            self.hooks.append(self.teacher.model[j].register_forward_hook(self._store(self._teacher_feats, i)))
        if "pseudo" in self.outputs:
            nl, nc = self.student.detect.nl, self.student.nc
            self.pseudo_loss = YoloLoss(self.student.detect, LossConfig.from_hyp(run.hyp, nl, nc, run.imgsz))
        if self.cfg.unlabeled:
            self.unlabeled = self._unlabeled_batches(run)

    def _check_teacher(self, run: RunContext) -> dict:
        """Measure the teacher, and the student as it starts, on the validation split; judge the teacher."""
        LOGGER.info("Measuring the teacher and the student before training on the validation set...")
        t = evaluate(self.teacher, run.val_loader, run.names, desc="teacher").metrics()
        was_training = self.student.training
        try:
            s = evaluate(self.student, run.val_loader, run.names, desc="student").metrics()
        finally:
            self.student.train(was_training)
        t_map, s_map = t["metrics/mAP_0.5:0.95"], s["metrics/mAP_0.5:0.95"]
        LOGGER.info("Teacher %s: mAP50 %.3f, mAP50-95 %.3f (student before training: mAP50-95 %.3f)",
                    self.cfg.teacher, t["metrics/mAP_0.5"], t_map, s_map)  # fmt: skip
        return {
            "teacher_metrics": {k.split("/")[-1]: round(v, 5) for k, v in t.items()},
            "student_start_mAP_0.5:0.95": round(s_map, 5),
            "warning": teacher_warning(self.cfg.teacher, t_map, s_map, self.cfg.min_teacher_map),
        }

    def _apply_teacher_check(self) -> None:
        """Warn about a weak teacher and take pseudo labels, which would teach its mistakes as truth, off."""
        warning = self.teacher_check.get("warning", "")
        if not warning:
            return
        LOGGER.warning(warning)
        if "pseudo" in self.outputs:
            self.outputs.remove("pseudo")
            LOGGER.warning("Pseudo labels are off for this run (weak teacher); %s",
                           f"training continues with {' + '.join(self.outputs)}" if self.outputs else
                           "training continues without output distillation")  # fmt: skip
            self.loss_names = self._names()
        if not self.loss_names and not self.use_gt_loss:
            raise ValueError(f"{warning}; with --no-gt and pseudo labels off nothing is left to learn from")

    @staticmethod
    def _store(store: dict, i: int):
        def hook(module, inputs, output):
            store[i] = output

        return hook

    def _unlabeled_batches(self, run: RunContext) -> Iterator[torch.Tensor]:
        from utils.data import create_dataloader

        batch = max(1, round(run.batch_size * self.cfg.unlabeled_ratio))
        loader, dataset = create_dataloader(
            self.cfg.unlabeled, run.imgsz, batch, max(int(self.student.stride.max()), 32), hyp=run.hyp, augment=True,
            shuffle=True, workers=run.train_loader.num_workers, prefix="unlabeled: ", nc=self.student.nc,
        )  # fmt: skip
        LOGGER.info("Label-free distillation on %d images, %d per step", len(dataset), batch)

        def cycle():
            while True:
                for imgs, *_ in loader:
                    yield imgs

        return cycle()

    def _record_run(self, run: RunContext) -> None:
        """Write ``kd.yaml``: every distillation setting, the weights, and what the check of the teacher found."""
        record = {
            "teacher": self.cfg.teacher,
            **self.teacher_check,
            "settings": self.cfg.to_dict(),
            "outputs_used": [k for k in self.outputs if k != "pseudo" or not self.teacher_check.get("warning")],
            "weights": self.w,
            "part_scales": self.scales,
            "layers": self.layers,
            "teacher_layers": self.teacher_layers,
        }
        (run.save_dir / "kd.yaml").write_text(yaml.safe_dump(record, sort_keys=False))

    # ------------------------------------------------------------------------------------------------ losses
    def extra_images(self, imgs: torch.Tensor) -> torch.Tensor | None:
        """The next batch of unlabelled images (``--unlabeled``), at the size of ``imgs``; None without them."""
        if self.unlabeled is None:
            return None
        u_imgs = next(self.unlabeled).to(self.device, non_blocking=True).float() / 255
        if u_imgs.shape[2:] != imgs.shape[2:]:  # rectangular or multi-scale batches
            u_imgs = torch.nn.functional.interpolate(u_imgs, size=imgs.shape[2:], mode="bilinear", align_corners=False)
        return u_imgs

    def losses(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        """The distillation terms over every image of the step, labelled or not: each a per-image mean times the
        number of images, so that every image weighs the same and the terms scale like the ground-truth loss."""
        student_feats = dict(self._student_feats)
        self._student_feats.clear()
        n = batch.imgs.shape[0]
        return {k: v * n for k, v in self._terms(batch.imgs, batch.preds, student_feats).items()}

    def _teacher_forward(self, imgs: torch.Tensor):
        """Teacher outputs for ``imgs`` as ordinary (autograd-compatible) fp32 tensors: decoded, raw, features."""
        with torch.inference_mode():
            x = imgs.half() if next(self.teacher.parameters()).dtype == torch.float16 else imgs
            pred, raw = self.teacher(x)
            feats = {i: self._teacher_feats.pop(i) for i in self.layers}
        # leaving inference mode: copies become normal tensors that loss functions may save for backward
        return pred.float().clone(), [r.float().clone() for r in raw], {i: f.float().clone() for i, f in feats.items()}

    def _terms(self, imgs, preds, student_feats) -> dict[str, torch.Tensor]:
        t_pred, t_raw, t_feats = self._teacher_forward(imgs)
        out: dict[str, torch.Tensor] = {}
        if self.outputs:
            out["kd_out"] = self.cfg.kd_weight * sum(
                self.w[f"kd_{kind}"] * self._output_term(kind, imgs, preds, t_pred, t_raw) for kind in self.outputs
            )
        if self.cfg.kd_feature != "none":
            fn = FEATURE_LOSSES[self.cfg.kd_feature]
            total = torch.zeros((), device=imgs.device)
            for j, i in enumerate(self.layers):
                s = student_feats[i].float()
                if len(self.adapters):
                    s = self.adapters[j](s)
                total = total + (
                    fn(s, t_feats[i], self.w["kd_cwd_t"]) if self.cfg.kd_feature == "cwd" else fn(s, t_feats[i])
                )
            out["kd_feat"] = self.cfg.kd_weight * self.w[f"kd_{self.cfg.kd_feature}"] * total
        return out

    def _output_term(self, kind: str, imgs, preds, t_pred, t_raw) -> torch.Tensor:
        """One output loss, its parts weighted by ``kd_box``, ``kd_obj``, ``kd_cls`` (scaled as the GT gains are)."""
        if kind == "pseudo":
            return self._pseudo_term(imgs, preds, t_pred)
        kwargs = {"obj_thres": self.cfg.kd_obj_thres}
        if kind in ("kl", "bce"):
            kwargs["temperature"] = self.cfg.temperature
        parts = OUTPUT_LOSSES[kind]([p.float() for p in preds], t_raw, **kwargs)
        return sum(self.w[f"kd_{k}"] * self.scales[k] * parts[k] for k in ("box", "obj", "cls"))

    def _pseudo_term(self, imgs: torch.Tensor, preds: list[torch.Tensor], t_pred: torch.Tensor) -> torch.Tensor:
        """The YOLO loss of the student against the teacher's detections (per-image mean, like every KD term)."""
        dets = non_max_suppression(t_pred, conf_thres=self.cfg.pseudo_conf, iou_thres=0.45, max_det=300)
        targets = pseudo_targets(dets, imgs.shape[2], imgs.shape[3])
        total, _ = self.pseudo_loss([p.float() for p in preds], targets)
        return total.squeeze(0) / imgs.shape[0]

    # ------------------------------------------------------------------------------------------ state, close
    def state_dict(self) -> dict:
        state: dict = {"teacher_check": self.teacher_check}
        if len(self.adapters):
            state["adapters"] = self.adapters.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.teacher_check = dict(state.get("teacher_check") or {})
        if "adapters" in state:
            self.adapters.load_state_dict(state["adapters"])
            LOGGER.info("Restored %d distillation adapters", len(self.adapters))

    def close(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks.clear()
        self._student_feats.clear()
        self._teacher_feats.clear()


def pseudo_targets(dets: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Teacher detections as YOLO targets, boxes clipped to the image.

    Args:
        dets: per image ``[n, 6]`` rows ``(x1, y1, x2, y2, conf, class)`` in pixels of the network input.
        height, width: the input's size in pixels.

    Returns:
        ``[N, 6]`` rows ``(image index, class, cx, cy, w, h)``, normalised to 0..1; boxes left with no area after
        clipping are dropped.
    """
    rows = []
    for b, d in enumerate(dets):
        if not len(d):
            continue
        xyxy = d[:, :4].clone()
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
        size = torch.tensor((width, height), device=d.device, dtype=xyxy.dtype)
        wh = (xyxy[:, 2:] - xyxy[:, :2]) / size
        keep = (wh > 0).all(1)
        cxcy = (xyxy[:, :2] + xyxy[:, 2:]) / 2 / size
        rows.append(torch.cat((torch.full_like(d[:, :1], b), d[:, 5:6], cxcy, wh), 1)[keep])
    return torch.cat(rows) if rows else torch.zeros((0, 6), device=dets[0].device if dets else None)
