"""ResNet-style CNN in PyTorch (NCHW). Mirrors model_tf.py block for block."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frameduel.workloads.cnn import CNNConfig
from frameduel.workloads.common_torch import init_conv, init_linear

# BatchNorm defaults pinned to torch's own values; model_tf.py sets Keras to match them.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # torch convention: running = (1 - m) * running + m * batch


def conv3x3(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(config.channels, config.width, 1),
            nn.BatchNorm2d(config.width, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        c_in = config.width
        for stage in range(config.stages):
            c_out = config.width * 2**stage
            for index in range(config.blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1  # halve resolution entering a stage
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, config.classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.Linear):
                init_linear(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))  # (B, 3, H, W) -> (B, C, H/2^(stages-1), W/2^(stages-1))
        return self.head(x.mean(dim=(2, 3)))  # global average pool -> logits (B, classes)


def build(config: CNNConfig) -> nn.Module:
    return ResNet(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # canonical layout is already NCHW
