"""Small ResNet-style CNN on 32x32 RGB images (CIFAR-sized).

Canonical data layout is NCHW, float32 (B, 3, 32, 32) -- PyTorch's native order. The TF model file
converts to NHWC (B, 32, 32, 3), TensorFlow's native order on CPU, in its to_native_layout().
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, DigitsAdapter, Workload, side_by_side


@dataclass(frozen=True)
class CNNConfig:
    image_size: int
    channels: int  # input channels
    width: int  # channels of the first stage; each later stage doubles it and halves the resolution
    stages: int
    blocks_per_stage: int
    classes: int


PRESETS = {
    "tiny": CNNConfig(image_size=32, channels=3, width=4, stages=2, blocks_per_stage=1, classes=4),
    "small": CNNConfig(image_size=32, channels=3, width=16, stages=3, blocks_per_stage=1, classes=10),
    "base": CNNConfig(image_size=32, channels=3, width=32, stages=3, blocks_per_stage=3, classes=10),
}


def make_batch(config: CNNConfig, batch_size: int, seed: int) -> Batch:
    """Synthetic images whose label is a fixed linear function of 4x4-pooled pixels (learnable)."""
    rng = np.random.default_rng(seed)
    size = config.image_size
    images = rng.standard_normal((batch_size, config.channels, size, size), dtype=np.float32)  # NCHW
    pooled = images.reshape(batch_size, config.channels, size // 4, 4, size // 4, 4).mean(axis=(3, 5))
    teacher = np.random.default_rng(12345).standard_normal((pooled[0].size, config.classes))
    targets = np.argmax(pooled.reshape(batch_size, -1) @ teacher, axis=1).astype(np.int64)
    return Batch(inputs=images, targets=targets)


def digits_to_inputs(images: np.ndarray) -> np.ndarray:
    """Digits images (N, 8, 8) -> one grey channel, NCHW (N, 1, 8, 8)."""
    return np.ascontiguousarray(images[:, None, :, :], dtype=np.float32)


# 8x8 input: stage 0 keeps 8x8 (16 channels), stage 1 halves it to 4x4 (32 channels), then global pooling.
DIGITS = DigitsAdapter(
    config=CNNConfig(image_size=8, channels=1, width=16, stages=2, blocks_per_stage=1, classes=10),
    to_inputs=digits_to_inputs,
)

def forward_flops(config: CNNConfig) -> float:
    """Convolutions and the head; each stage after the first halves the resolution, doubles channels."""
    size, c_in = config.image_size, config.width
    flops = 2.0 * size * size * config.channels * c_in * 9  # stem 3x3
    for stage in range(config.stages):
        c_out = config.width * 2**stage
        for index in range(config.blocks_per_stage):
            if stage > 0 and index == 0:
                size //= 2
                flops += 2.0 * size * size * c_in * c_out  # 1x1 strided shortcut
            elif c_in != c_out:
                flops += 2.0 * size * size * c_in * c_out
            flops += 2.0 * size * size * 9 * (c_in * c_out + c_out * c_out)  # conv1 + conv2
            c_in = c_out
    return flops + 2.0 * c_in * config.classes


CNN_WORKLOAD = Workload(
    name="cnn",
    description="ResNet-style CNN, 32x32 images (conv-BN-ReLU basic blocks, Adam)",
    presets=PRESETS,
    make_batch=make_batch,
    forward_flops=forward_flops,
    model_modules=side_by_side(__name__),
    digits=DIGITS,
)
