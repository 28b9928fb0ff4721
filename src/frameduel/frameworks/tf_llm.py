"""TensorFlow side of the LLM server (frameduel.llm): one forward over a ragged batch of tokens per step.

torch_llm.py exposes the same names and explains the row layout: one token per row, each with its own
position and KV-cache slot. TF's tensors are immutable, so the slot cache is a tf.Variable per layer
and a step scatters each row's key and value into it (scatter_nd_update, in place) before gathering
the rows' slots back for attention; inside a tf.function TF orders the two by the variable's automatic
control dependencies.

What TensorFlow makes hard here is the ragged batch's shape. The row count changes every step, and a
traced graph wants one shape:
  - function: one tf.function per attention span (a power of two of positions: a Python int in the graph,
    static in the slice), with the row count left None in the signature, so a span traces once, at
    start-up, and serves any batch;
  - xla: XLA compiles one executable per concrete shape, so rows are padded to a power of two (padding
    rows write to a scratch slot) and attention always spans the whole cache; every bucket compiles
    at start-up, before the server takes requests;
  - eager: every op dispatched from Python, no tracing: the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from frameduel.checkpoints import model_config
from frameduel.frameworks import kv_cache_bytes, kv_geometry, rows_bucket, span_bucket, span_buckets, tf_backend
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from frameduel.workloads.common_tf import full_precision

tf = tf_backend.tf  # imported there, with the environment TensorFlow needs set first


class RowCache:
    """One layer's slot cache seen by one step: variables (slots + 1, length, kv heads, hd), slot-major so
    that a row's (slot, position) is one scatter index; the last slot is the padding rows' scratch."""

    def __init__(self, k: Any, v: Any, slots: Any, span: int) -> None:
        self.k, self.v, self.slots, self.span = k, v, slots, span

    def write(self, k: Any, v: Any, positions: Any) -> tuple[Any, Any]:
        """k, v (B, kv heads, T, hd) of row b's tokens at positions (B, T) -> (B, kv heads, span, hd)."""
        slots = tf.broadcast_to(self.slots[:, None], tf.shape(positions))
        index = tf.reshape(tf.stack([slots, positions], axis=-1), (-1, 2))  # (B*T, 2): (slot, position)
        for cache, new in ((self.k, k), (self.v, v)):
            flat = tf.transpose(new, (0, 2, 1, 3))  # (B, T, kv heads, hd)
            cache.scatter_nd_update(index, tf.reshape(flat, (-1, flat.shape[2], flat.shape[3])))
        if self.span == self.k.shape[1]:  # whole slots: a plain gather, which XLA compiles (gather_nd it cannot)
            return tuple(tf.transpose(tf.gather(cache, self.slots), (0, 2, 1, 3)) for cache in (self.k, self.v))
        # (B, span, 2): every row reads its own slot's first span positions, no other slot's.
        reads = tf.stack(tf.meshgrid(self.slots, tf.range(self.span), indexing="ij"), axis=-1)
        return (tf.transpose(self.k.gather_nd(reads), (0, 2, 1, 3)),  # (B, kv heads, span, hd)
                tf.transpose(self.v.gather_nd(reads), (0, 2, 1, 3)))


class Stepper:
    """The Keras model, its slot variables and the mode's forward; step() is called from the engine's thread."""

    def __init__(self, spec: RunSpec, slots: int, max_len: int) -> None:
        workload = get_workload(spec.workload)
        config = model_config(workload, spec.checkpoint, spec.size)
        self.model = tf_backend.build_model(workload, spec)
        layers, heads, width = kv_geometry(config)
        shape = (slots + 1, max_len, heads, width)
        dtype = full_precision()
        self.keys = [tf.Variable(tf.zeros(shape, dtype), trainable=False) for _ in range(layers)]
        self.values = [tf.Variable(tf.zeros(shape, dtype), trainable=False) for _ in range(layers)]
        self.max_len, self.scratch, self.mode = max_len, slots, spec.mode
        self.vocab_size = config.vocab_size
        self.kv_bytes = kv_cache_bytes(config, slots, max_len, np.dtype(dtype).itemsize)
        self.device = "/GPU:0" if spec.device == "cuda" else "/CPU:0"
        self.traced: dict[int, Callable[..., Any]] = {}  # span -> its tf.function (function mode)
        # ids and positions (B, T), slots (B,), rows (R,): any counts
        self.signature = [tf.TensorSpec([None, None], tf.int32)] * 2 + [tf.TensorSpec([None], tf.int32)] * 2
        self.xla = tf.function(self.forward_full, input_signature=self.signature, jit_compile=True)

    def forward(self, ids: Any, positions: Any, slots: Any, rows: Any, span: int) -> Any:
        caches = [RowCache(k, v, slots, span) for k, v in zip(self.keys, self.values, strict=True)]
        hidden = self.model.hidden(ids, positions, caches)  # (B, T, C)
        flat = tf.reshape(hidden, (-1, hidden.shape[-1]))
        return tf.cast(self.model.head(tf.gather(flat, rows)), tf.float32)  # (R, vocab)

    def forward_full(self, ids: Any, positions: Any, slots: Any, rows: Any) -> Any:
        return self.forward(ids, positions, slots, rows, self.max_len)

    def function_for(self, span: int) -> Callable[..., Any]:
        if span not in self.traced:
            def forward(ids: Any, positions: Any, slots: Any, rows: Any) -> Any:
                return self.forward(ids, positions, slots, rows, span)

            self.traced[span] = tf.function(forward, input_signature=self.signature)
        return self.traced[span]

    def step(self, ids: np.ndarray, positions: np.ndarray, slots: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """ids, positions (B, T); slots (B,); rows (R,) into the B*T tokens -> logits (R, vocab) float32."""
        wanted = len(rows)
        if self.mode == "xla":
            ids, positions, slots, rows = self.padded(ids, positions, slots, rows)
        args = [tf.constant(a.astype(np.int32)) for a in (ids, positions, slots, rows)]
        with tf.device(self.device):
            if self.mode == "xla":
                logits = self.xla(*args)
            elif self.mode == "function":
                logits = self.function_for(span_bucket(positions, self.max_len))(*args)
            else:
                logits = self.forward(*args, span_bucket(positions, self.max_len))
        return logits.numpy()[:wanted]

    def padded(self, ids: np.ndarray, positions: np.ndarray, slots: np.ndarray,
               rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """XLA's shapes: a decode batch padded to a power-of-two row count (padding rows: token 0 at position 0
        of the scratch slot), a prompt chunk to a power-of-two length (padding tokens past the prompt, which
        the prompt's own tokens never see and its later tokens overwrite); rows to one length per shape."""
        if ids.shape[1] == 1:
            extra = rows_bucket(len(ids)) - len(ids)
            return (np.pad(ids, ((0, extra), (0, 0))), np.pad(positions, ((0, extra), (0, 0))),
                    np.pad(slots, (0, extra), constant_values=self.scratch),
                    np.pad(rows, (0, len(ids) + extra - len(rows))))
        extra = rows_bucket(ids.shape[1]) - ids.shape[1]
        tail = np.minimum(positions[:, -1:] + np.arange(1, extra + 1), self.max_len - 1)
        return (np.pad(ids, ((0, 0), (0, extra))), np.concatenate([positions, tail], axis=1), slots,
                np.pad(rows, (0, 1 - len(rows))))

    def warm_up(self, max_rows: int) -> None:
        """Trace (function: every span) or compile (xla: every row bucket) before any request waits on it."""
        if self.mode == "xla":
            sizes, spans = [1 << i for i in range(rows_bucket(max_rows).bit_length())], [self.max_len]
        else:
            sizes, spans = [1, max_rows], span_buckets(self.max_len) if self.mode == "function" else [self.max_len]
        for span in spans:
            for count in sizes:  # a decode batch of `count` rows, and a prompt chunk of `count` tokens
                positions = np.full((count, 1), span - 1)  # the rows that set the span
                self.step(np.zeros((count, 1), np.int64), positions, np.full(count, self.scratch), np.arange(count))
                chunk = min(count, span)
                self.step(np.zeros((1, chunk), np.int64), np.arange(span - chunk, span)[None, :],
                          np.asarray([self.scratch]), np.asarray([chunk - 1]))


def load_stepper(spec: RunSpec, slots: int, max_len: int, max_rows: int) -> Stepper:
    """Build the model (a checkpoint's weights, or the preset's seeded ones) with `slots` cache slots of
    `max_len` positions, traced or compiled for steps of up to `max_rows` rows."""
    tf_backend.configure(spec)
    stepper = Stepper(spec, slots, max_len)
    stepper.warm_up(max_rows)
    return stepper


def describe(spec: RunSpec) -> dict[str, Any]:
    """What the mode does with the ragged batch, for the server's start line and metadata."""
    shapes = {"eager": "any row count; attention spans a power of two of positions",
              "function": "one tf.function per attention span (powers of two), rows dynamic",
              "xla": "one XLA executable per power-of-two row count; attention spans the whole cache"}
    return {"mode": spec.mode, "shapes": shapes[spec.mode]}
