"""Writing a model as TorchScript (``.torchscript``) or ONNX (``.onnx``), with its metadata inside the file."""

from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from utils.files import write_atomically

LOGGER = logging.getLogger(__name__)

MIN_OPSET = 17
MAX_OPSET = 40  # far above any released opset: a typo is refused up front, the exporter's own limit is named later
METADATA_KEY = "yolov5_kd"  # ONNX metadata_props key / TorchScript extra file name holding ExportMetadata as JSON
INPUT_NAME, OUTPUT_NAME = "images", "output0"


@dataclass
class ExportMetadata:
    """What a program needs to run an exported file: class names, strides, the export size and batch layout."""

    names: list[str]
    stride: list[float]
    imgsz: int
    dynamic: bool  # batch size free
    half: bool  # fp16 inputs and weights
    batch: int = 1  # the fixed batch size when not dynamic

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes, source: str | Path) -> ExportMetadata:
        try:
            d = json.loads(text)
            return cls(
                names=[str(n) for n in d["names"]], stride=[float(s) for s in d["stride"]], imgsz=int(d["imgsz"]),
                dynamic=bool(d["dynamic"]), half=bool(d["half"]), batch=int(d.get("batch", 1)),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{source}: unreadable '{METADATA_KEY}' metadata ({e})") from e


class DecodedOutput(nn.Module):
    """Wraps a :class:`models.yolo.Model` in eval mode so that its forward returns only the decoded ``[B, N, 5+nc]``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def _traceable(model: nn.Module) -> DecodedOutput:
    """Eval-mode wrapper whose Detect builds its grids inside the traced graph (so H and W stay free)."""
    model.eval()
    model.detect._grids = {}
    return DecodedOutput(model).eval()


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path, meta: ExportMetadata) -> Path:
    """Trace ``model`` on ``example`` ``[B, 3, H, W]`` and save it with ``meta`` as an extra file. Returns the path.

    The file is written to a temporary name and renamed when complete; a failed write raises
    :class:`utils.files.WriteError` and leaves an earlier file intact.

    Tracing records the grid construction from the input shape, so the file accepts other batch sizes and
    image sizes (multiples of the largest stride).
    """
    path = Path(path)
    wrapper = _traceable(model)
    with torch.no_grad(), warnings.catch_warnings():
        # tracer warnings about Python values (the shapes are traced as ops) and TorchScript's deprecation notice
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example, strict=False)
        model.detect._grids = {}
        return write_atomically(path, lambda f: torch.jit.save(traced, f, _extra_files={METADATA_KEY: meta.to_json()}))


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    meta: ExportMetadata,
    opset: int = MIN_OPSET,
    simplify: bool = False,
) -> Path:
    """Export ``model`` to ONNX at ``opset`` (>= 17) with ``meta`` in ``metadata_props``. Returns the path.

    Input ``images`` ``[B, 3, H, W]``, output ``output0`` ``[B, N, 5 + nc]``. Height and width are always free;
    the batch is free when ``meta.dynamic``, else fixed to the example's. ``simplify`` runs onnx-simplifier when it
    is installed and warns otherwise. Written atomically, as :func:`export_torchscript`.
    """
    import onnx

    path = Path(path)
    axes = {INPUT_NAME: {2: "height", 3: "width"}, OUTPUT_NAME: {1: "anchors"}}
    if meta.dynamic:
        axes[INPUT_NAME][0] = axes[OUTPUT_NAME][0] = "batch"
    wrapper = _traceable(model)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer warnings
        try:
            torch.onnx.export(
                wrapper, (example,), buffer, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_axes=axes, dynamo=False,
            )  # fmt: skip
        except (RuntimeError, ValueError) as e:
            if "opset" not in str(e).lower():
                raise
            raise ValueError(f"--opset {opset}: torch {torch.__version__}'s ONNX exporter cannot write it ({e})") from e
    model.detect._grids = {}
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    if simplify:
        proto = _simplify(proto)
    set_metadata(proto, meta)
    return save_onnx(proto, path)


def set_metadata(proto, meta: ExportMetadata) -> None:
    """Store ``meta`` in the ONNX model ``proto``'s ``metadata_props`` (replacing an earlier entry)."""
    for i in reversed(range(len(proto.metadata_props))):
        if proto.metadata_props[i].key == METADATA_KEY:
            del proto.metadata_props[i]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()


def save_onnx(proto, path: str | Path) -> Path:
    """Write the ONNX model ``proto`` to ``path`` atomically (see :func:`utils.files.write_atomically`)."""
    return write_atomically(path, lambda f: f.write(proto.SerializeToString()))


def _simplify(proto):
    try:
        import onnxsim
    except ImportError:
        LOGGER.warning("--simplify: onnx-simplifier (onnxsim) is not installed; the model is saved unsimplified")
        return proto
    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        LOGGER.warning("--simplify: onnx-simplifier could not verify the simplified model; kept the original")
        return proto
    return simplified


FORMATS = {"torchscript": (".torchscript", export_torchscript), "onnx": (".onnx", export_onnx)}
