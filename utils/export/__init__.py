"""Exporting a model to TorchScript and ONNX, checking the result, and running exported files like checkpoints.

An exported file takes ``[B, 3, H, W]`` RGB images (values 0..1, H and W multiples of the largest stride) and
returns the decoded predictions ``[B, N, 5 + nc]``: box centre and size (cx, cy, w, h) in input pixels, then
sigmoid objectness and class scores, exactly what :class:`models.head.Detect` returns first in eval mode. NMS is
left to the caller, as for a ``.pt`` model. Class names, strides and the export size travel inside the file
(ONNX ``metadata_props``, TorchScript ``_extra_files``).
"""

from utils.export.backend import EXPORT_SUFFIXES, ExportedModel, load_backend
from utils.export.check import ParityResult, check_parity
from utils.export.formats import FORMATS, ExportMetadata, export_onnx, export_torchscript
from utils.export.quantize import Agreement, QuantizeSettings, detection_agreement, quantize_onnx
from utils.export.run import ExportConfig, ExportResult, run_export

__all__ = [
    "Agreement",
    "QuantizeSettings",
    "detection_agreement",
    "quantize_onnx",
    "EXPORT_SUFFIXES",
    "FORMATS",
    "ExportConfig",
    "ExportMetadata",
    "ExportResult",
    "ExportedModel",
    "ParityResult",
    "check_parity",
    "export_onnx",
    "export_torchscript",
    "load_backend",
    "run_export",
]
