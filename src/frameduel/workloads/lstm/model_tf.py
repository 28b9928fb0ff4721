"""LSTM classifier in TensorFlow/Keras. Mirrors model_torch.py layer for layer."""

from __future__ import annotations

import math

import keras
import numpy as np

from frameduel.workloads.common_tf import dense_init, full_precision, normal_init, token_ids_as_they_are
from frameduel.workloads.lstm import LSTMConfig
from frameduel.workloads.weight_layouts import WeightEntry, dense_entries, entry

EMBED_STD = 1.0  # torch's nn.Embedding default N(0, 1), pinned (Keras defaults to U(-0.05, 0.05))


def lstm_layer(config: LSTMConfig, return_sequences: bool) -> keras.layers.LSTM:
    """A Keras LSTM pinned to torch's cell: same activations, same init, no forget-gate bias of +1.

    These settings also keep Keras' cuDNN fast path eligible on GPU (tanh/sigmoid, bias, no
    recurrent dropout, not unrolled).
    """
    bound = 1.0 / math.sqrt(config.hidden)
    uniform = keras.initializers.RandomUniform(-bound, bound)  # torch's LSTM weight default
    return keras.layers.LSTM(
        config.hidden,
        activation="tanh",
        recurrent_activation="sigmoid",  # Keras 2 defaulted to hard_sigmoid; pinned to be explicit
        kernel_initializer=uniform,  # Keras default: glorot_uniform
        recurrent_initializer=uniform,  # Keras default: orthogonal
        bias_initializer="zeros",
        unit_forget_bias=False,  # Keras default True starts the forget-gate bias at 1
        return_sequences=return_sequences,
    )


class LSTMClassifier(keras.Model):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.embed = keras.layers.Embedding(
            config.vocab_size, config.embed_dim, embeddings_initializer=normal_init(EMBED_STD)
        )
        # Every layer but the top one hands its full sequence to the next, as torch's stacked LSTM does.
        top = config.n_layer - 1
        self.lstms = [lstm_layer(config, return_sequences=i < top) for i in range(config.n_layer)]
        # Logits stay in full precision (float32 under mixed precision) so the loss is computed at full precision.
        self.head = keras.layers.Dense(config.classes, kernel_initializer=dense_init(), dtype=full_precision())

    def call(self, idx, training=False):
        x = self.embed(idx)  # (B, T, E)
        for lstm in self.lstms:
            x = lstm(x)  # (B, T, H), and (B, H) out of the top layer: the state after the last token
        return self.head(x)  # logits (B, classes)


def build(config: LSTMConfig) -> keras.Model:
    model = LSTMClassifier(config)
    model(np.zeros((1, config.seq_len), np.int64))  # create the weights now, before optimizers see them
    return model


to_native_layout = token_ids_as_they_are  # (B, T) int64 token ids, see common_tf


# -- Transfer to and from PyTorch: torch state_dict names (model_torch.py) for every Keras variable. --


def weight_map(model: LSTMClassifier) -> list[WeightEntry]:
    entries = [entry("embed.weight", model.embed.embeddings)]
    for i, layer in enumerate(model.lstms):
        entries += lstm_entries(i, layer.cell)
    return entries + dense_entries("head", model.head)


def lstm_entries(index: int, cell: keras.layers.LSTMCell) -> list[WeightEntry]:
    """Layer `index` of torch's stacked nn.LSTM. Gates are i, f, g, o along 4H in both, so kernels only
    transpose; Keras' one bias is torch's b_ih + b_hh (b_hh frozen at zero, see model_torch.py)."""
    return [
        entry(f"lstm.weight_ih_l{index}", cell.kernel, "dense"),  # (in, 4H) <-> (4H, in)
        entry(f"lstm.weight_hh_l{index}", cell.recurrent_kernel, "dense"),  # (H, 4H) <-> (4H, H)
        WeightEntry((f"lstm.bias_ih_l{index}", f"lstm.bias_hh_l{index}"), cell.bias, "lstm_bias"),
    ]


def probe_points(model: LSTMClassifier) -> dict[str, keras.layers.Layer]:
    """Keras layers whose output equals the output of the torch module of the same name.

    torch's nn.LSTM returns a tuple (outputs, (h, c)), which its hook does not record, and it runs
    every layer as one module; so the LSTM is judged by the head that reads its last state.
    """
    return {"embed": model.embed, "head": model.head}


def activation_to_canonical(activation: np.ndarray) -> np.ndarray:
    return activation  # (B, T, E) and (B, classes): the same layout in both frameworks
