"""The stem convolution of an INT8 graph, rewritten as a space-to-depth and a stride-1 convolution.

YOLOv5's first layer is a 6x6 convolution of stride 2 over the 3 image channels. onnxruntime's 8-bit convolutions
work on the channels of each kernel position, so 3 channels leave most of each integer dot product empty: at 640 px
that one layer took 5.7 of the yolov5s INT8 model's 35 ms. The same convolution, written over the input's 2x2
blocks (12 channels) with a 3x3 kernel and stride 1, computes the same sums with a quarter of the kernel positions
and four times the channels (1.6 ms, plus 0.6 ms for the float SpaceToDepth before the input's quantization).

For stride ``s``, a kernel ``k`` and padding ``p`` that ``s`` divides, with ``x`` ``[N, C, H, W]`` and ``H``, ``W``
divisible by ``s``::

    conv(x, W, stride=s, pad=p)  ==  conv(SpaceToDepth(x, s), W', stride=1, pad=p/s)
    W'[o, (i*s + j)*C + c, a, b] = W[o, c, a*s + i, b*s + j]          # W [O, C, k, k] -> W' [O, s*s*C, k/s, k/s]

(SpaceToDepth's channel order is block row, block column, then input channel.) The float model is not rewritten:
its convolutions measured no faster this way.
"""

from __future__ import annotations

import numpy as np

MAX_STEM_CHANNELS = 4  # rewrite only convolutions over this few input channels (the image's)


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _rewritable(attrs: dict, weight: np.ndarray) -> int:
    """The block size ``s`` when a convolution with ``attrs`` and ``weight`` can be rewritten, else 0."""
    strides = list(attrs.get("strides", [1, 1]))
    kernel = list(attrs.get("kernel_shape", weight.shape[2:]))
    pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
    if weight.ndim != 4 or len(strides) != 2 or strides[0] != strides[1] or strides[0] < 2:
        return 0
    s = int(strides[0])
    if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
        return 0
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or weight.shape[1] > MAX_STEM_CHANNELS:
        return 0
    if any(k % s for k in kernel) or any(p % s for p in pads):
        return 0
    return s


def space_to_depth_weight(weight: np.ndarray, s: int) -> np.ndarray:
    """``[O, C, k, k]`` -> ``[O, s*s*C, k/s, k/s]`` for the convolution over ``SpaceToDepth(x, s)``."""
    o, c, kh, kw = weight.shape
    w = weight.reshape(o, c, kh // s, s, kw // s, s)  # [O, C, a, i, b, j]
    return np.ascontiguousarray(w.transpose(0, 3, 5, 1, 2, 4).reshape(o, s * s * c, kh // s, kw // s))


def rewrite_stem(proto) -> list[str]:
    """Rewrite, in place, every strided convolution of ``proto`` that reads a graph input with at most
    :data:`MAX_STEM_CHANNELS` channels (see the module docstring). Returns the names of the rewritten nodes."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inputs = {i.name for i in graph.input}
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    done = []
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if node.op_type != "Conv" or node.input[0] not in inputs or len(node.input) < 2:
            continue
        if node.input[1] not in inits or readers[node.input[1]] != 1:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        attrs = _attributes(node)
        s = _rewritable(attrs, weight)
        if not s:
            continue
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(space_to_depth_weight(weight, s), node.input[1]))
        blocks = f"{node.name}_space_to_depth"
        pads = [p // s for p in attrs.get("pads", [0, 0, 0, 0])]
        del node.attribute[:]
        node.attribute.extend(
            [
                helper.make_attribute("kernel_shape", [weight.shape[2] // s, weight.shape[3] // s]),
                helper.make_attribute("strides", [1, 1]),
                helper.make_attribute("pads", pads),
                helper.make_attribute("dilations", [1, 1]),
                helper.make_attribute("group", 1),
            ]
        )
        graph.node.insert(
            index, helper.make_node("SpaceToDepth", [node.input[0]], [blocks], blocksize=s, name=f"{node.name}_s2d")
        )
        node.input[0] = blocks
        done.append(node.name)
    return done
