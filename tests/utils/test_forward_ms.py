"""utils.torch_utils.forward_ms: the latency timer behind the pruning report and the pipeline report."""

from __future__ import annotations

import time

import torch
from torch import nn

from utils.torch_utils import forward_ms


class _Sleeper(nn.Module):
    """Sleeps 20 ms on its first (warm-up) calls, 5 ms afterwards; counts calls and whether gradients were on."""

    def __init__(self, slow_calls: int):
        super().__init__()
        self.calls, self.slow_calls, self.grad_seen = 0, slow_calls, False

    def forward(self, x):
        self.calls += 1
        self.grad_seen |= torch.is_grad_enabled()
        time.sleep(0.02 if self.calls <= self.slow_calls else 0.005)
        return x


def test_times_only_the_runs_after_warmup_without_gradients():
    m = _Sleeper(slow_calls=2)
    ms = forward_ms(m, torch.zeros(1, 3, 8, 8), runs=5, warmup=2)
    assert m.calls == 7 and not m.grad_seen
    assert 5.0 <= ms < 20.0  # the slow warm-up calls are not in the median
