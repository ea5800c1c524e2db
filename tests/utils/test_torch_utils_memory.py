"""The CPU helpers for speed: the allocator setting and the convolution layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from models.yolo import Model
from utils.torch_utils import fast_layout

_FAULTS = """
import resource, sys, torch
from utils.torch_utils import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.set_num_threads(1)
conv = torch.nn.Conv2d(8, 32, 3, padding=1)
x = torch.rand(8, 8, 224, 224)  # outputs of 8 x 32 x 224 x 224 floats: 51 MB, above glibc's 32 MB mmap ceiling
conv(x).sum().backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    conv(x).sum().backward()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_is_not_faulted_in_again():
    got = {}
    for mode in ("plain", "keep"):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        applied, faults = out.stdout.split()
        got[mode] = (applied == "True", int(faults))
    assert got["keep"][0] and not got["plain"][0]
    # five steps of a layer whose activations are unmapped on free fault ~250,000 pages in; kept, ~25,000
    assert got["plain"][1] > 100_000 and got["keep"][1] < got["plain"][1] / 4, got


def test_fast_layout_keeps_values_and_the_model_output():
    x = torch.rand(2, 3, 64, 64)
    y = fast_layout(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    model = Model("yolov5n.yaml", nc=3).eval()
    with torch.no_grad():
        a, b = model(x)[0], model(y)[0]
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
