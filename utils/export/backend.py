"""Run an exported file (``.onnx``, ``.torchscript``) wherever a :class:`models.yolo.Model` in eval mode is used.

:func:`load_backend` is what ``val.py``, ``detect.py`` and ``tools/auto_label.py`` call: it returns our model for a
checkpoint and an :class:`ExportedModel` for an exported file. Both are called as ``model(x)`` on ``[B, 3, H, W]``
images (0..1) and return ``(decoded, raw)`` with ``decoded`` ``[B, N, 5 + nc]`` (xywh pixels, sigmoid scores);
an exported model has no raw outputs (``raw`` is an empty list), so no validation loss.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utils.export.formats import INPUT_NAME, METADATA_KEY, ExportMetadata

LOGGER = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".onnx", ".torchscript")


class ExportedModel(nn.Module):
    """An exported file behind the interface of an eval-mode, fused :class:`models.yolo.Model`.

    Attributes as the model's: ``names``, ``nc``, ``stride`` (``[nl]`` tensor), ``meta`` (:class:`ExportMetadata`).
    Inputs are cast to the file's dtype (fp16 for a ``--half`` export) and outputs returned as float32 on the
    input's device. A file exported for a fixed batch of 1 runs larger batches one image at a time.
    """

    def __init__(self, path: str | Path, meta: ExportMetadata, runner, device: torch.device):
        super().__init__()
        self.path = Path(path)
        self.meta = meta
        self.names = list(meta.names)
        self.register_buffer("_stride", torch.tensor(meta.stride, dtype=torch.float32), persistent=False)
        # an empty parameter so that callers that read the device / dtype from next(model.parameters()) work
        self._device_probe = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        self.__dict__["_runner"] = runner  # not a submodule: .half() / .float() must not rewrite the traced file

    @property
    def stride(self) -> torch.Tensor:
        return self._stride

    @property
    def nc(self) -> int:
        return len(self.names)

    def is_fused(self) -> bool:
        return True

    def fuse(self) -> ExportedModel:
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        if self.meta.dynamic or x.shape[0] == self.meta.batch:
            return self._runner(x).float(), []
        if self.meta.batch != 1:
            raise ValueError(
                f"{self.path} was exported for batches of {self.meta.batch}, not {x.shape[0]}; export with --dynamic"
            )
        return torch.cat([self._runner(x[i : i + 1]).float() for i in range(x.shape[0])]), []


class _OnnxRunner:
    """Calls an onnxruntime session on torch tensors."""

    def __init__(self, session, half: bool):
        self.session = session
        self.dtype = np.float16 if half else np.float32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT_NAME: x.detach().cpu().numpy().astype(self.dtype, copy=False)})[0]
        return torch.from_numpy(out).to(x.device)


class _TorchScriptRunner:
    def __init__(self, module: torch.jit.ScriptModule, half: bool):
        self.module = module
        self.dtype = torch.float16 if half else torch.float32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x.to(self.dtype))


def load_onnx(path: str | Path, device: torch.device) -> ExportedModel:
    """An ONNX file written by ``export.py``, on onnxruntime's CUDA provider for a CUDA ``device``, else the CPU."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for files that are not ONNX
        raise ValueError(f"{path}: not a readable ONNX file ({e})") from e
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export the model with export.py")
    meta = ExportMetadata.from_json(props[METADATA_KEY], path)
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    session = ort.InferenceSession(str(path), providers=providers)
    return ExportedModel(path, meta, _OnnxRunner(session, meta.half), device)


def load_torchscript(path: str | Path, device: torch.device) -> ExportedModel:
    """A TorchScript file written by ``export.py``, loaded onto ``device``."""
    path = Path(path)
    extra = {METADATA_KEY: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream, still supported
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a readable TorchScript file ({e})") from e
    if not extra[METADATA_KEY]:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export the model with export.py")
    meta = ExportMetadata.from_json(extra[METADATA_KEY], path)
    return ExportedModel(path, meta, _TorchScriptRunner(module.eval(), meta.half), device)


def load_backend(weights: str | Path, device: str | torch.device = "cpu", fuse: bool = True) -> nn.Module:
    """Load ``weights`` for inference: an ``.onnx`` or ``.torchscript`` export, or any checkpoint
    :func:`models.load_model` reads (fused when ``fuse``). Raises ``FileNotFoundError`` for a missing file."""
    path = Path(weights)
    device = torch.device(device)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        model = load_onnx(path, device)
    elif suffix == ".torchscript":
        model = load_torchscript(path, device)
    else:
        from models import load_model

        return load_model(path, device=device, fuse=fuse)
    LOGGER.info("Loaded %s (%d classes, strides %s)", path, model.nc, model.meta.stride)
    return model
