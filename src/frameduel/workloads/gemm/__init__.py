"""One square matrix multiply: the machine's attainable matmul FLOP/s, measured like any other cell.

Each sample is an (n x n) matrix multiplied by an (n x n) weight, 2n^3 FLOPs, so even batch 1 is a
real GEMM. The report divides every other cell's achieved FLOP/s by the best GEMM of the same
framework and precision in the run. Logits are the product's rows, (B*n, n), each row "classified"
into n classes, which fits the shared cross-entropy contract for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, Workload, side_by_side


@dataclass(frozen=True)
class GEMMConfig:
    n: int  # matrix side: each sample (n, n) @ weight (n, n)


PRESETS = {"tiny": GEMMConfig(n=64), "small": GEMMConfig(n=512), "base": GEMMConfig(n=4096)}


def make_batch(config: GEMMConfig, batch_size: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((batch_size, config.n, config.n), dtype=np.float32)  # (B, n, n)
    return Batch(inputs=inputs, targets=rng.integers(0, config.n, batch_size * config.n).astype(np.int64))


def forward_flops(config: GEMMConfig) -> float:
    return 2.0 * config.n**3


GEMM_WORKLOAD = Workload(
    name="gemm",
    description="one square matmul (bias-free Linear): attainable matmul FLOP/s",
    presets=PRESETS,
    make_batch=make_batch,
    model_modules=side_by_side(__name__),
    forward_flops=forward_flops,
)
