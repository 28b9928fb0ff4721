"""ResNet-style CNN in TensorFlow/Keras (NHWC). Mirrors model_torch.py block for block."""

from __future__ import annotations

import keras
import numpy as np

from frameduel.workloads.cnn import CNNConfig
from frameduel.workloads.common_tf import conv_init, dense_init, full_precision
from frameduel.workloads.weight_layouts import WeightEntry, batch_norm_entries, conv_entries, dense_entries

# torch's BatchNorm defaults, pinned here: Keras defaults to epsilon=1e-3, momentum=0.99, and its
# momentum means the opposite (running = m * running + (1 - m) * batch), hence 1 - 0.1.
BN_EPS = 1e-5
BN_MOMENTUM = 0.9


class BatchNorm(keras.layers.BatchNormalization):
    """Keras' BatchNormalization with torch's running-variance update.

    Both normalise a training batch by its biased variance, but torch folds the *unbiased* one
    (times n/(n-1), n values per channel) into running_var, Keras the biased one; the tiny CNN's running
    variances drifted 3e-4 apart in 10 steps at batch 8 (found by `frameduel parity`'s post-training state).
    """

    def __init__(self) -> None:
        super().__init__(epsilon=BN_EPS, momentum=BN_MOMENTUM)

    def call(self, inputs, training=False):
        if not (training and self.trainable):
            return super().call(inputs, training=False)
        # Statistics never in half precision (as Keras' own call): float32, or float64 under that policy.
        x = keras.ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # (B, H, W, C)
        mean, variance = keras.ops.moments(x, axes=(0, 1, 2))  # (C,) each, biased variance
        count = keras.ops.cast(keras.ops.size(x) // x.shape[-1], x.dtype)  # values per channel
        unbiased = variance * count / (count - 1.0)
        m = self.momentum  # Keras' convention: the running value's weight
        self.moving_mean.assign(keras.ops.cast(self.moving_mean, x.dtype) * m + mean * (1.0 - m))
        self.moving_variance.assign(keras.ops.cast(self.moving_variance, x.dtype) * m + unbiased * (1.0 - m))
        outputs = keras.ops.batch_normalization(x, mean, variance, axis=-1, offset=keras.ops.cast(self.beta, x.dtype),
                                                scale=keras.ops.cast(self.gamma, x.dtype), epsilon=self.epsilon)
        return keras.ops.cast(outputs, self.compute_dtype)


def batch_norm() -> BatchNorm:
    return BatchNorm()


class Conv3x3(keras.layers.Layer):
    """3x3 conv with explicit symmetric zero padding of 1, as torch's padding=1.

    Keras' padding="same" pads stride-2 convs asymmetrically (bottom/right only), which would shift
    every feature map by a pixel relative to torch.
    """

    def __init__(self, filters: int, stride: int) -> None:
        super().__init__()
        self.pad = keras.layers.ZeroPadding2D(1)
        self.conv = keras.layers.Conv2D(
            filters, 3, strides=stride, padding="valid", use_bias=False, kernel_initializer=conv_init()
        )

    def call(self, x):
        return self.conv(self.pad(x))


class BasicBlock(keras.layers.Layer):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv3x3(c_out, stride)
        self.bn1 = batch_norm()
        self.conv2 = Conv3x3(c_out, 1)
        self.bn2 = batch_norm()
        self.shortcut_conv = self.shortcut_bn = None  # identity shortcut unless the shape changes
        if stride != 1 or c_in != c_out:
            self.shortcut_conv = keras.layers.Conv2D(
                c_out, 1, strides=stride, use_bias=False, kernel_initializer=conv_init()
            )
            self.shortcut_bn = batch_norm()

    def call(self, x, training=False):
        out = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        out = self.bn2(self.conv2(out), training=training)
        skip = x if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(x), training=training)
        return keras.ops.relu(out + skip)


class ResNet(keras.Model):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.stem_conv = Conv3x3(config.width, 1)
        self.stem_bn = batch_norm()
        self.blocks = []
        c_in = config.width
        for stage in range(config.stages):
            c_out = config.width * 2**stage
            for index in range(config.blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1  # halve resolution entering a stage
                self.blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        # Logits stay in full precision (float32 under mixed precision) so the loss is computed at full precision.
        self.head = keras.layers.Dense(config.classes, kernel_initializer=dense_init(), dtype=full_precision())

    def call(self, x, training=False):
        x = keras.ops.relu(self.stem_bn(self.stem_conv(x), training=training))  # (B, H, W, C)
        for block in self.blocks:
            x = block(x, training=training)
        return self.head(keras.ops.mean(x, axis=(1, 2)))  # global average pool -> logits (B, classes)


def build(config: CNNConfig) -> keras.Model:
    model = ResNet(config)
    size = config.image_size
    model(np.zeros((1, size, size, config.channels), np.float32))  # create the weights now, before optimizers see them
    return model


NCHW_TO_NHWC = (0, 2, 3, 1)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(inputs.transpose(NCHW_TO_NHWC))


def to_native_layout_graph(x):
    """The same conversion on a graph tensor: exported artefacts take the canonical NCHW layout."""
    return keras.ops.transpose(x, NCHW_TO_NHWC)


# -- Transfer to and from PyTorch: torch state_dict names (model_torch.py) for every Keras variable. --


def weight_map(model: ResNet) -> list[WeightEntry]:
    entries = conv_entries("stem.0", model.stem_conv.conv) + batch_norm_entries("stem.1", model.stem_bn)
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}"
        entries += conv_entries(f"{prefix}.conv1", block.conv1.conv) + batch_norm_entries(f"{prefix}.bn1", block.bn1)
        entries += conv_entries(f"{prefix}.conv2", block.conv2.conv) + batch_norm_entries(f"{prefix}.bn2", block.bn2)
        if block.shortcut_conv is not None:
            entries += conv_entries(f"{prefix}.shortcut.0", block.shortcut_conv)
            entries += batch_norm_entries(f"{prefix}.shortcut.1", block.shortcut_bn)
    return entries + dense_entries("head", model.head)


def probe_points(model: ResNet) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name."""
    points = {"stem.0": model.stem_conv, "stem.1": model.stem_bn}
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}"
        points.update({f"{prefix}.conv1": block.conv1, f"{prefix}.bn1": block.bn1,
                       f"{prefix}.conv2": block.conv2, f"{prefix}.bn2": block.bn2})
        if block.shortcut_conv is not None:
            points.update({f"{prefix}.shortcut.0": block.shortcut_conv, f"{prefix}.shortcut.1": block.shortcut_bn})
        points[prefix] = block
    points["head"] = model.head
    return points


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    """Feature maps NHWC -> NCHW, torch's layout; vectors are the same in both."""
    return activation.transpose(0, 3, 1, 2) if activation.ndim == 4 else activation
