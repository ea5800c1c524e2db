"""The stem convolution rewritten over the image's blocks computes what the strided convolution computed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from utils.export.stem import rewrite_stem, space_to_depth_weight


def _conv_graph(c_in: int, c_out: int, k: int, stride: int, pad: int, seed: int = 0) -> tuple[onnx.ModelProto, dict]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c_out, c_in, k, k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    node = helper.make_node("Conv", ["images", "w", "b"], ["y"], name="stem", kernel_shape=[k, k], strides=[stride] * 2,
                            pads=[pad] * 4)  # fmt: skip
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, c_in, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, "oh", "ow"])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"w": w, "b": b}


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})[0]


@pytest.mark.parametrize("k, stride, pad", [(6, 2, 2), (4, 2, 0), (6, 3, 3)])
def test_rewritten_stem_computes_the_strided_convolution(k, stride, pad):
    proto, p = _conv_graph(3, 5, k, stride, pad)
    assert rewrite_stem(proto) == ["stem"]
    onnx.checker.check_model(proto)
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["SpaceToDepth", "Conv"]
    conv = proto.graph.node[1]
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["strides"] == [1, 1] and attrs["kernel_shape"] == [k // stride] * 2
    assert attrs["pads"] == [pad // stride] * 4
    for size in (12, 24):  # the height and width stay free
        x = np.random.default_rng(size).standard_normal((1, 3, size, size + 6)).astype(np.float32)
        expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(p["w"]), torch.from_numpy(p["b"]),
                                              stride=stride, padding=pad).numpy()  # fmt: skip
        np.testing.assert_allclose(_run(proto, x), expected, rtol=1e-4, atol=1e-4)


def test_weight_layout_follows_space_to_depth_channel_order():
    """W'[o, (i*s + j)*C + c, a, b] = W[o, c, a*s + i, b*s + j], checked entry by entry."""
    w = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    out = space_to_depth_weight(w, 2)
    assert out.shape == (2, 12, 2, 2)
    for o in range(2):
        for c in range(3):
            for i in range(2):
                for j in range(2):
                    for a in range(2):
                        for b in range(2):
                            assert out[o, (i * 2 + j) * 3 + c, a, b] == w[o, c, a * 2 + i, b * 2 + j]


@pytest.mark.parametrize(
    "c_in, k, stride, pad",
    [(3, 3, 2, 1), (3, 6, 1, 2), (8, 6, 2, 2), (3, 6, 2, 1)],
    ids=["kernel-not-divisible", "stride-1", "many-channels", "pad-not-divisible"],
)
def test_convolutions_that_do_not_qualify_are_left_alone(c_in, k, stride, pad):
    proto, _ = _conv_graph(c_in, 4, k, stride, pad)
    before = proto.SerializeToString()
    assert rewrite_stem(proto) == []
    assert proto.SerializeToString() == before


def test_a_convolution_inside_the_graph_is_left_alone():
    proto, _ = _conv_graph(3, 4, 6, 2, 2)
    proto.graph.node.insert(0, helper.make_node("Relu", ["images"], ["r"], name="relu"))
    proto.graph.node[1].input[0] = "r"
    assert rewrite_stem(proto) == []
