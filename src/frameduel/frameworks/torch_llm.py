"""PyTorch side of the LLM server (frameduel.llm): the model calls of one engine step.

tf_llm.py exposes the same names. A step is a few model calls: the decode batch, one row per running
sequence (its last token, at its own position, in its own KV-cache slot), and one call per prompt chunk
being prefilled (one row of T tokens), so requests join and leave the batch between any two steps. The
model is the workload's own model file, whose attention takes per-row positions (B, T); only the cache
is the server's. A RowCache writes each token's key and value at (slot, position), then hands attention
every row's slot up to `span` positions: attention reads the longest live sequence, not the whole cache.

Modes: eager, and compile (torch.compile with dynamic shapes: the row count and the span change every
step, so the graph is compiled once with symbolic sizes instead of once per size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from frameduel.checkpoints import model_config
from frameduel.frameworks import kv_cache_bytes, kv_geometry, span_bucket, torch_backend
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload


class RowCache:
    """One layer's slot cache seen by one step: keys and values (slots + 1, length, kv heads, hd), the last
    slot a scratch row that padding writes to. Rows of one sequence's prompt share its slot: each writes
    its own position before any reads, so a prompt's tokens see each other within the step.

    Slot-major with the position second, so a row's (slot, position) is one row of the flattened cache
    (index_copy_) and a step's reads are one index_select of whole slots: both several times cheaper than
    advanced indexing, which is most of a small model's step."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor, span: int) -> None:
        self.k, self.v, self.slots, self.span = k, v, slots, span

    def write(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v (B, kv heads, T, hd) of row b's tokens at positions (B, T) -> (B, kv heads, span, hd)."""
        rows = (self.slots[:, None] * self.k.size(1) + positions).reshape(-1)  # (B*T,) of the flat (slot, position)
        for cache, new in ((self.k, k), (self.v, v)):
            flat = new.transpose(1, 2).reshape(-1, *cache.shape[2:])  # (B*T, kv heads, hd)
            cache.view(-1, *cache.shape[2:]).index_copy_(0, rows, flat.to(cache.dtype))
        return (self.k[:, : self.span].index_select(0, self.slots).transpose(1, 2),
                self.v[:, : self.span].index_select(0, self.slots).transpose(1, 2))


def forward_rows(model: torch.nn.Module, ids: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
                 rows: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor], span: int) -> torch.Tensor:
    """Logits (R, vocab) of the tokens asked for, after every row's tokens (B, T) went through the model."""
    caches = [RowCache(k, v, slots, span) for k, v in zip(keys, values, strict=True)]
    hidden = model.hidden(ids, positions, caches)  # (B, T, C)
    return model.lm_head(hidden.reshape(-1, hidden.size(-1))[rows])  # (R, vocab)


class Stepper:
    """The model, its slot caches and the mode's forward; step() is called from the engine's thread only."""

    def __init__(self, spec: RunSpec, slots: int, max_len: int) -> None:
        workload = get_workload(spec.workload)
        config = model_config(workload, spec.checkpoint, spec.size)
        self.model = torch_backend.build_model(workload, spec).eval()
        layers, heads, width = kv_geometry(config)
        dtype = torch_backend.param_dtype(spec)
        shape = (slots + 1, max_len, heads, width)
        self.keys = [torch.zeros(shape, dtype=dtype) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype) for _ in range(layers)]
        self.max_len, self.scratch = max_len, slots
        self.vocab_size = config.vocab_size
        self.kv_bytes = kv_cache_bytes(config, slots, max_len, self.keys[0].element_size())
        self.forward = torch.compile(forward_rows, dynamic=True) if spec.mode == "compile" else forward_rows

    def step(self, ids: np.ndarray, positions: np.ndarray, slots: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """ids, positions (B, T); slots (B,); rows (R,) into the B*T tokens -> logits (R, vocab) float32."""
        span = span_bucket(positions, self.max_len)
        tensors = (torch.from_numpy(a.astype(np.int64)) for a in (ids, positions, slots, rows))
        with torch.no_grad():
            logits = self.forward(self.model, *tensors, self.keys, self.values, span)
        return logits.float().numpy()

    def warm_up(self, max_rows: int) -> None:
        """First calls allocate, pick kernels and (compile mode) compile, before any request waits on them."""
        for rows in sorted({1, 2, min(max_rows, 8), max_rows}):  # decode batches, then a prompt chunk
            self.step(np.zeros((rows, 1), np.int64), np.zeros((rows, 1), np.int64), np.full(rows, self.scratch),
                      np.arange(rows))
        chunk = min(max_rows, self.max_len)
        self.step(np.zeros((1, chunk), np.int64), np.arange(chunk)[None, :], np.asarray([self.scratch]),
                  np.asarray([chunk - 1]))


def load_stepper(spec: RunSpec, slots: int, max_len: int, max_rows: int) -> Stepper:
    """Build the model (a checkpoint's weights, or the preset's seeded ones) with `slots` cache slots of
    `max_len` positions, warmed up for steps of up to `max_rows` rows."""
    torch_backend.configure(spec)
    stepper = Stepper(spec, slots, max_len)
    stepper.warm_up(max_rows)
    return stepper


def describe(spec: RunSpec) -> dict[str, Any]:
    """What the mode does with the ragged batch, for the server's start line and metadata."""
    if spec.mode == "compile":
        return {"mode": "compile", "shapes": "torch.compile, dynamic shapes: one graph for every row count and span"}
    return {"mode": "eager", "shapes": "any row count; attention spans a power of two of positions"}
