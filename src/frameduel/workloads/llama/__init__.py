"""Llama-3-style decoder language model: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention.

The architecture of Hugging Face's ``LlamaForCausalLM`` (and Mistral's, below its sliding window),
with no biases and an untied LM head unless the config ties it. The torch model's module names are
Hugging Face's (``model.layers.0.self_attn.q_proj``), so checkpoints and LoRA adapters interchange
by name, and the config's field names are those of ``LlamaConfig`` (see frameduel.checkpoints).

The training contract is gpt's (see workloads/gpt/__init__.py): token ids (B, T) in, logits
(B*T, vocab) out, next-token targets (B*T,), random walks on the same fixed bigram chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frameduel.workloads.base import Batch, Workload, side_by_side
from frameduel.workloads.gpt import generation_lengths
from frameduel.workloads.gpt import make_batch as markov_batch


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    block_size: int  # tokens per training/inference sequence (and the KV cache's default length)
    hidden_size: int  # model width C
    intermediate_size: int  # SwiGLU width
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # < num_attention_heads: grouped-query attention
    head_dim: int = 0  # 0: hidden_size // num_attention_heads (Hugging Face's default)
    rope_theta: float = 500000.0  # Llama 3's base
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02  # N(0, 0.02) for every Linear and the embedding, as Hugging Face
    max_position_embeddings: int = 0  # the context it was trained for (generation's limit); 0: block_size

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if not self.head_dim:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                                 f"({self.num_attention_heads}), or head_dim given")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if not self.max_position_embeddings:
            object.__setattr__(self, "max_position_embeddings", self.block_size)
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even: rotary embeddings rotate pairs")

    @property
    def kv_groups(self) -> int:
        """Query heads per key/value head."""
        return self.num_attention_heads // self.num_key_value_heads


PRESETS = {
    "tiny": LlamaConfig(vocab_size=64, block_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=2),
    # gpt small's width and depth, so the two decoders' cells compare like for like.
    "small": LlamaConfig(vocab_size=256, block_size=32, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2),
    # About 20M parameters: a GPU-scale cell (and a CPU one that takes minutes).
    "base": LlamaConfig(vocab_size=8192, block_size=256, hidden_size=384, intermediate_size=1024,
                        num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=2),
}


def inverse_frequencies(config: LlamaConfig) -> np.ndarray:
    """RoPE's theta^(-2i/d), i < d/2, in float64; each framework casts it to its full precision.

    One framework-free table, so both sides rotate by bitwise the same angles per position.
    """
    exponents = np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim
    return 1.0 / (config.rope_theta ** exponents)


def make_batch(config: LlamaConfig, batch_size: int, seed: int) -> Batch:
    return markov_batch(config, batch_size, seed)  # gpt's synthetic text: only vocab_size, block_size matter


def forward_flops(config: LlamaConfig) -> float:
    """Per sequence: q,o (2C*nh*hd each), k,v (GQA: nkv*hd), SwiGLU (3 matmuls), attention (4T*nh*hd,
    counted in full as computed), and the LM head."""
    T, C = config.block_size, config.hidden_size
    q_width, kv_width = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    per_layer = 2.0 * C * (2 * q_width + 2 * kv_width) + 6.0 * C * config.intermediate_size + 4.0 * T * q_width
    return T * (config.num_hidden_layers * per_layer + 2.0 * C * config.vocab_size)


LLAMA_WORKLOAD = Workload(
    name="llama",
    description="Llama-3-style decoder LM (RMSNorm, RoPE, SwiGLU, grouped-query attention, untied head, Adam)",
    presets=PRESETS,
    make_batch=make_batch,
    forward_flops=forward_flops,
    model_modules=side_by_side(__name__),
    generation=generation_lengths,  # gpt's: prompt half the context, generate the other half
    lora_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    lora_defaults=("q_proj", "v_proj"),  # the LoRA paper's choice, and PEFT's default for Llama
)
