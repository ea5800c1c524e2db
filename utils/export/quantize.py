"""INT8 ONNX for the CPU: onnxruntime static quantization (QDQ) calibrated on letterboxed images.

:func:`quantize_onnx` turns a float ONNX file written by :func:`utils.export.formats.export_onnx` into an INT8 one:
``quant_pre_process`` (shape inference and graph clean-up), then ``quantize_static`` in QDQ format with uint8
activations and int8 weights (per output channel by default), calibrated on images letterboxed at the export size.
The detection head's decode (sigmoid, grid and anchor arithmetic, the concatenations into ``[B, N, 5 + nc]``) stays
in float: its values run from pixels to probabilities, which one 8-bit scale cannot hold. The decode is found in
the graph as every node downstream of the head's convolutions (the last convolutions of the graph). The stem
convolution (6x6, stride 2, over the image's 3 channels) is first rewritten over 2x2 blocks of the image
(:mod:`utils.export.stem`), where the 8-bit kernels run it 3.5x faster.

:func:`detection_agreement` judges the result by the final detections after NMS, not by raw tensors.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.data.augment import letterbox
from utils.data.images import read_image
from utils.export.formats import INPUT_NAME, METADATA_KEY, ExportMetadata, save_onnx, set_metadata
from utils.export.stem import rewrite_stem

LOGGER = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "minmax"
DEFAULT_CALIB_IMAGES = 100
INT8_SUFFIX = "-int8.onnx"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def int8_path(float_path: str | Path) -> Path:
    """``best.onnx`` -> ``best-int8.onnx`` in the same folder."""
    path = Path(float_path)
    return path.with_name(path.stem + INT8_SUFFIX)


def letterboxed(path: str, imgsz: int) -> np.ndarray | None:
    """The image at ``path`` as the network sees it: ``[1, 3, imgsz, imgsz]`` float32 RGB 0..1, letterboxed
    (aspect ratio kept, grey padding) to the square export size; ``None`` when the file cannot be read."""
    img = read_image(path)
    if img is None:
        return None
    img, _, _ = letterbox(img, imgsz, auto=False)
    chw = img[:, :, ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
    return np.ascontiguousarray(chw, dtype=np.float32)[None] / 255.0


def load_batches(images: Sequence[str], imgsz: int, batch: int = 1) -> Iterator[np.ndarray]:
    """Letterboxed images ``[batch, 3, imgsz, imgsz]``; unreadable files are skipped (with a warning) and a last
    incomplete batch is filled by repeating its images (a file exported for a fixed batch needs full batches)."""
    pending: list[np.ndarray] = []
    for path in images:
        x = letterboxed(str(path), imgsz)
        if x is None:
            LOGGER.warning("skipped %s: not a readable image", path)
            continue
        pending.append(x)
        if len(pending) == batch:
            yield np.concatenate(pending)
            pending = []
    if pending:  # a fixed-batch model needs full batches: repeat the last images
        while len(pending) < batch:
            pending.append(pending[len(pending) % len(pending)])
        yield np.concatenate(pending)


def decode_nodes(proto) -> tuple[list[str], list[str]]:
    """Find the detection head in an ONNX graph: ``(head_convs, decode)``, node names.

    ``head_convs`` are the convolutions from which no other convolution can be reached (the Detect layer's 1x1
    convolutions producing the raw ``[B, na * (5 + nc), H, W]`` outputs); ``decode`` is every node that consumes
    their outputs directly or indirectly (reshapes, sigmoid, grid and anchor arithmetic, concatenations).
    Raises ValueError when the graph has no convolution.
    """
    nodes = list(proto.graph.node)
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)

    def downstream(start: int) -> set[int]:
        seen: set[int] = set()
        queue = deque(consumers.get(out, []) for out in nodes[start].output)
        while queue:
            for j in queue.popleft():
                if j not in seen:
                    seen.add(j)
                    queue.extend(consumers.get(out, []) for out in nodes[j].output)
        return seen

    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not convs:
        raise ValueError("no convolution in the graph: not a detection model that can be quantized")
    conv_set = set(convs)
    below = {i: downstream(i) for i in convs}
    head = [i for i in convs if not below[i] & conv_set]
    decode = sorted(set().union(*(below[i] for i in head)))
    return [nodes[i].name for i in head], [nodes[i].name for i in decode]


def _name_nodes(proto) -> None:
    """Give every unnamed node a unique name, so that nodes can be excluded from quantization by name."""
    taken = {n.name for n in proto.graph.node if n.name}
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def float_decode_violations(proto) -> list[str]:
    """Decode nodes of a quantized graph that read a DequantizeLinear output or feed a QuantizeLinear: empty when
    the head's decode runs in float, as :func:`quantize_onnx` writes it."""
    _, decode = decode_nodes(proto)
    decode_set = set(decode)
    producer = {out: n for n in proto.graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    bad = []
    for n in proto.graph.node:
        if n.name not in decode_set:
            continue
        reads_dq = any(producer.get(i) is not None and producer[i].op_type in QDQ_OPS for i in n.input)
        feeds_q = any(c.op_type in QDQ_OPS for o in n.output for c in consumers.get(o, []))
        if reads_dq or feeds_q:
            bad.append(n.name)
    return bad


class _Calibration:
    """onnxruntime ``CalibrationDataReader``: one ``{images: [B, 3, S, S]}`` feed per call, then None."""

    def __init__(self, batches: Iterator[np.ndarray]):
        self._batches = batches
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._batches, None)
        if x is None:
            return None
        self.count += 1
        return {INPUT_NAME: x}

    def rewind(self) -> None:  # not needed by one calibration pass; present for readers that call it
        pass


MINMAX_CHUNK = 8  # MinMax folds the activations of this many batches into its ranges at a time (bounded memory)
HISTOGRAM_WARN_IMAGES = 32  # entropy/percentile keep every batch's activations: warn above this many


def _extra_options(settings: QuantizeSettings, batches: int) -> dict:
    options: dict = {"OpTypesToExcludeOutputQuantization": ["Conv"]}  # raw head outputs stay float
    if settings.method == "minmax":
        # onnxruntime fails ("No data is collected") when the batch count is a multiple of the chunk
        chunk = next((c for c in range(MINMAX_CHUNK, 1, -1) if batches % c), None)
        if chunk is not None and batches > chunk:
            options["CalibMaxIntermediateOutputs"] = chunk
    return options


@dataclass
class QuantizeSettings:
    """How :func:`quantize_onnx` quantizes: calibration method, per-channel weights, 7-bit weights."""

    method: str = DEFAULT_METHOD  # one of CALIBRATION_METHODS
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights: for CPUs without VNNI, where U8S8 products can saturate
    quantize_head: bool = True  # quantize the head's convolutions too (their outputs stay float)
    space_to_depth: bool = True  # the stem convolution over 2x2 blocks of the image (utils.export.stem)


def quantize_onnx(
    float_path: str | Path,
    images: Sequence[str],
    out_path: str | Path | None = None,
    settings: QuantizeSettings | None = None,
) -> Path:
    """Write an INT8 copy of the float ONNX ``float_path`` (written by export.py) calibrated on ``images``.

    Each image is letterboxed to the export size stored in the file's metadata and fed as ``[B, 3, S, S]`` (B the
    file's fixed batch, 1 when the batch is free). Returns the INT8 path (``out_path``, by default
    ``<name>-int8.onnx`` beside the float file), which keeps the float file's metadata.

    Raises:
        FileNotFoundError: ``float_path`` does not exist.
        ValueError: no calibration image can be read, the file has no export metadata, or onnxruntime cannot
            quantize the model; the message names the file.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    settings = settings or QuantizeSettings()
    if settings.method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {settings.method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    float_path = Path(float_path)
    out_path = Path(out_path) if out_path is not None else int8_path(float_path)
    if not float_path.is_file():
        raise FileNotFoundError(f"{float_path} does not exist")
    try:
        proto = onnx.load(str(float_path))
    except Exception as e:  # onnx raises DecodeError and others for files that are not ONNX
        raise ValueError(f"{float_path}: not a readable ONNX file ({e})") from e
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{float_path}: no '{METADATA_KEY}' metadata; export the model with export.py")
    meta = ExportMetadata.from_json(props[METADATA_KEY], float_path)
    if meta.half:
        raise ValueError(f"{float_path} is an fp16 export; INT8 quantization needs a float32 one")
    quantized_nodes = sum(n.op_type in QDQ_OPS or n.op_type.startswith("QLinear") for n in proto.graph.node)
    if quantized_nodes:
        raise ValueError(f"{float_path} is already quantized ({quantized_nodes} quantization nodes): give the float "
                         "ONNX file it was made from")  # fmt: skip
    batches = list(load_batches(images, meta.imgsz, 1 if meta.dynamic else meta.batch))
    if not batches:
        raise ValueError(f"no readable calibration image among {len(images)} given for {float_path}")
    if settings.method != "minmax" and len(batches) > HISTOGRAM_WARN_IMAGES:
        LOGGER.warning(
            "--calib-method %s keeps the activations of all %d calibration batches in memory (about 0.2 GB per "
            "640 px image for yolov5s); at large sizes use minmax or fewer --calib-images", settings.method,
            len(batches),
        )  # fmt: skip
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]  # fmt: skip
    source = float_path.resolve()
    # onnxruntime may drop files into the working directory (e.g. sym_shape_infer_temp.onnx when shape inference is
    # incomplete): it works in the temporary folder, so that nothing is left beside the user's files
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp, contextlib.chdir(tmp):
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception as e:  # onnxruntime raises a variety of errors for graphs it cannot handle
            raise ValueError(f"{float_path}: onnxruntime could not prepare it for quantization ({e})") from e
        model = onnx.load(str(prepared))
        _name_nodes(model)
        if settings.space_to_depth:
            for name in rewrite_stem(model):
                LOGGER.info("%s: the stem convolution %s runs over the image's blocks (SpaceToDepth)", float_path.name,
                            name)  # fmt: skip
        onnx.save(model, str(prepared))
        try:
            head, decode = decode_nodes(model)
        except ValueError as e:
            raise ValueError(f"{float_path}: {e}") from e
        try:
            exclude = decode + ([] if settings.quantize_head else head)
            LOGGER.info(
                "Quantizing %s: %d nodes, the head's %d convolutions %s, its %d decode nodes kept in float; "
                "calibrating (%s) on %d batches ...", float_path.name, len(model.graph.node), len(head),
                "quantized" if settings.quantize_head else "in float", len(decode), settings.method, len(batches),
            )  # fmt: skip
            quantize_static(
                str(prepared), str(quantized), _Calibration(iter(batches)), quant_format=QuantFormat.QDQ,
                per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                calibrate_method=method,
                extra_options=_extra_options(settings, len(batches)),
            )  # fmt: skip
            result = onnx.load(str(quantized))
        except Exception as e:  # onnxruntime raises a variety of errors for graphs it cannot handle
            raise ValueError(f"{float_path}: onnxruntime could not quantize it ({type(e).__name__}: {e})") from e
    set_metadata(result, meta)
    return save_onnx(result, out_path)


@dataclass
class Agreement:
    """Final detections (after NMS) of an INT8 model compared with the float model's on the same images.

    ``float_matched``: the fraction of float detections matched by an INT8 detection of the same class with IoU
    >= ``iou``; ``int8_matched``: the reverse. 1.0 when there is nothing to match.
    """

    images: int
    float_detections: int
    int8_detections: int
    float_matched: float
    int8_matched: float
    iou: float

    def summary(self) -> str:
        return (
            f"INT8 vs float detections on {self.images} held-out images: {self.float_matched:.1%} of the "
            f"{self.float_detections} float detections found by INT8, {self.int8_matched:.1%} of the "
            f"{self.int8_detections} INT8 detections found by float (same class, IoU >= {self.iou:g})"
        )


def _matched(a: torch.Tensor, b: torch.Tensor, iou: float) -> int:
    """How many detections of ``a`` ``[n, 6]`` (xyxy, score, class) have one of ``b`` of the same class with
    IoU >= ``iou``."""
    from utils.boxes import box_iou

    if len(a) == 0 or len(b) == 0:
        return 0
    same_class = a[:, 5:6] == b[:, 5].unsqueeze(0)
    return int(((box_iou(a[:, :4], b[:, :4]) >= iou) & same_class).any(1).sum())


@torch.no_grad()
def detection_agreement(
    float_path: str | Path,
    int8_path_: str | Path,
    images: Sequence[str],
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    match_iou: float = 0.5,
) -> Agreement:
    """Run the float and INT8 ONNX files on ``images`` (letterboxed at the export size), apply NMS
    (``conf_thres``, ``iou_thres``) and compare the detections (see :class:`Agreement`). Raises ValueError when
    no image can be read."""
    from utils.export.backend import load_onnx
    from utils.nms import non_max_suppression

    ref = load_onnx(float_path, torch.device("cpu"))
    q = load_onnx(int8_path_, torch.device("cpu"))
    n_img = n_f = n_q = m_f = m_q = 0
    for x in load_batches(images, ref.meta.imgsz, 1 if ref.meta.dynamic else ref.meta.batch):
        t = torch.from_numpy(x)
        a = non_max_suppression(ref(t)[0], conf_thres, iou_thres)
        b = non_max_suppression(q(t)[0], conf_thres, iou_thres)
        for da, db in zip(a, b, strict=True):
            n_img += 1
            n_f, n_q = n_f + len(da), n_q + len(db)
            m_f, m_q = m_f + _matched(da, db, match_iou), m_q + _matched(db, da, match_iou)
    if n_img == 0:
        raise ValueError(f"no readable image among {len(images)} to compare {int8_path_} with {float_path}")
    return Agreement(n_img, n_f, n_q, m_f / n_f if n_f else 1.0, m_q / n_q if n_q else 1.0, match_iou)
