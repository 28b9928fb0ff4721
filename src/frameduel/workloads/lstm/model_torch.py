"""LSTM classifier in PyTorch. Mirrors model_tf.py layer for layer.

Weight layout notes for transfer to Keras, per layer l:
    weight_ih_l{l} (4H, in) = kernel.T            (Keras kernel is (in, 4H))
    weight_hh_l{l} (4H, H)  = recurrent_kernel.T  (Keras recurrent_kernel is (H, 4H))
    bias_ih_l{l}   (4H,)    = bias
    bias_hh_l{l}   (4H,)    = 0, frozen (see LSTMClassifier)
Both frameworks stack the four gates in the same order along the 4H axis: input, forget, cell
candidate (torch calls it g, Keras c), output -- so no gate reordering is needed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from frameduel.workloads.common_torch import init_linear, init_normal
from frameduel.workloads.lstm import LSTMConfig

EMBED_STD = 1.0  # torch's nn.Embedding default N(0, 1), pinned in both (Keras defaults to U(-0.05, 0.05))


class LSTMClassifier(nn.Module):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden, num_layers=config.n_layer, batch_first=True)
        self.head = nn.Linear(config.hidden, config.classes)
        init_normal(self.embed, EMBED_STD)
        init_linear(self.head)
        # U(-1/sqrt(H), 1/sqrt(H)) weights (torch's LSTM default), zero biases (torch would draw them
        # from the same uniform; Keras' default adds +1 to the forget gate).
        bound = 1.0 / math.sqrt(config.hidden)
        for name, param in self.lstm.named_parameters():
            if name.startswith("weight"):
                nn.init.uniform_(param, -bound, bound)
            else:
                nn.init.zeros_(param)
        # torch adds two bias vectors (b_ih + b_hh) where Keras has one. They only ever appear summed,
        # so freezing b_hh at zero leaves the same function and the same trainable set as Keras.
        for layer in range(config.n_layer):
            getattr(self.lstm, f"bias_hh_l{layer}").requires_grad_(False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)  # (B, T, E)
        out, _ = self.lstm(x)  # top layer's hidden state at every step: (B, T, H)
        return self.head(out[:, -1])  # state after the last token -> logits (B, classes)


def build(config: LSTMConfig) -> nn.Module:
    return LSTMClassifier(config)


def to_native_layout(inputs: np.ndarray) -> np.ndarray:
    return inputs  # (B, T) int64 token ids, torch's index dtype
