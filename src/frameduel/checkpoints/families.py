"""Which Hugging Face model families load into which workload, and how their tensors are named.

A family turns a ``config.json`` into the workload's config dataclass (refusing settings the workload
does not implement, by name) and says, for every tensor the checkpoint stores, which torch state_dict
name of frameduel's model it is (the canonical name both frameworks load from, see weight_layouts.py)
and whether it must be transposed on the way. The expected names and shapes are computed from the
config alone, so a bad checkpoint is refused in the parent process, before any framework starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frameduel.errors import FrameduelError
from frameduel.workloads.gpt import GPTConfig
from frameduel.workloads.llama import LlamaConfig

# Longest sequence a checkpoint's cells train and infer on: open-weight models allow thousands of
# positions, and a benchmark cell on two CPU cores wants a step of seconds, not minutes.
CONTEXT_CAP = 128
IGNORED = "ignored"  # a stored tensor frameduel's model does not need (a buffer such as a causal mask)


@dataclass(frozen=True)
class Translation:
    """What a stored tensor is in frameduel's model."""

    canonical: str  # frameduel's torch state_dict name
    transpose: bool = False  # GPT-2's Conv1D keeps (in, out); nn.Linear is (out, in)


@dataclass(frozen=True)
class Family:
    workload: str
    model_types: tuple[str, ...]
    config_from: Callable[[dict[str, Any]], Any]  # config.json -> the workload's config
    expected: Callable[[Any], dict[str, tuple[int, ...]]]  # config -> canonical name -> torch shape
    translate: Callable[[str], Translation | str | None]  # stored name -> Translation, IGNORED or None (unknown)
    tied: Callable[[Any], dict[str, str]]  # config -> canonical names read from another canonical name


def setting(config: dict[str, Any], key: str, default: Any = None, required: bool = False) -> Any:
    if required and config.get(key) is None:
        raise FrameduelError(f"config.json has no '{key}'; it is needed to build the model")
    value = config.get(key)
    return default if value is None else value


def refuse(config: dict[str, Any], key: str, allowed: Callable[[Any], bool], why: str, default: Any = None) -> None:
    value = config.get(key, default)
    if not allowed(value):
        raise FrameduelError(f"config.json sets {key}={value!r}, which frameduel's {why}")


# -- Llama and Mistral (below its sliding window): Hugging Face's names are frameduel's torch names. --


def llama_config(config: dict[str, Any]) -> LlamaConfig:
    refuse(config, "hidden_act", lambda v: v == "silu", "llama does not implement (it uses SwiGLU with silu)", "silu")
    refuse(config, "attention_bias", lambda v: not v, "llama does not implement (its projections have no bias)")
    refuse(config, "mlp_bias", lambda v: not v, "llama does not implement (its MLP has no bias)")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}  # transformers 5 / 4 spelling
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise FrameduelError(f"config.json asks for rope_type '{rope_type}' (scaled RoPE), which frameduel's llama "
                             f"does not implement; only the default rotary embedding is supported")
    heads = setting(config, "num_attention_heads", required=True)
    max_positions = setting(config, "max_position_embeddings", 2048)
    context = min(max_positions, CONTEXT_CAP)
    window = config.get("sliding_window")
    if window is not None and config.get("use_sliding_window", True) and window < context:
        raise FrameduelError(f"config.json sets sliding_window={window}, shorter than the {context} positions "
                             f"frameduel runs; sliding-window attention is not implemented")
    try:
        return LlamaConfig(
            vocab_size=setting(config, "vocab_size", required=True), block_size=context,
            hidden_size=setting(config, "hidden_size", required=True),
            intermediate_size=setting(config, "intermediate_size", required=True),
            num_hidden_layers=setting(config, "num_hidden_layers", required=True), num_attention_heads=heads,
            num_key_value_heads=setting(config, "num_key_value_heads", heads), head_dim=setting(config, "head_dim", 0),
            rope_theta=float(rope.get("rope_theta", setting(config, "rope_theta", 10000.0))),  # Hugging Face's default
            rms_norm_eps=float(setting(config, "rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(setting(config, "tie_word_embeddings", False)),
            initializer_range=float(setting(config, "initializer_range", 0.02)), max_position_embeddings=max_positions)
    except (TypeError, ValueError) as exc:
        raise FrameduelError(f"config.json does not describe a valid llama model: {exc}") from None


def llama_expected(c: LlamaConfig) -> dict[str, tuple[int, ...]]:
    q_width, kv_width = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    shapes = {"model.embed_tokens.weight": (c.vocab_size, c.hidden_size)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}"
        shapes |= {f"{p}.input_layernorm.weight": (c.hidden_size,),
                   f"{p}.self_attn.q_proj.weight": (q_width, c.hidden_size),
                   f"{p}.self_attn.k_proj.weight": (kv_width, c.hidden_size),
                   f"{p}.self_attn.v_proj.weight": (kv_width, c.hidden_size),
                   f"{p}.self_attn.o_proj.weight": (c.hidden_size, q_width),
                   f"{p}.post_attention_layernorm.weight": (c.hidden_size,),
                   f"{p}.mlp.gate_proj.weight": (c.intermediate_size, c.hidden_size),
                   f"{p}.mlp.up_proj.weight": (c.intermediate_size, c.hidden_size),
                   f"{p}.mlp.down_proj.weight": (c.hidden_size, c.intermediate_size)}
    return shapes | {"model.norm.weight": (c.hidden_size,), "lm_head.weight": (c.vocab_size, c.hidden_size)}


def llama_translate(stored: str) -> Translation | str | None:
    if stored.endswith("rotary_emb.inv_freq"):
        return IGNORED  # older checkpoints saved the RoPE table; frameduel computes it from rope_theta
    return Translation(stored)  # unknown names surface as "unexpected" against llama_expected


def llama_tied(c: LlamaConfig) -> dict[str, str]:
    return {"lm_head.weight": "model.embed_tokens.weight"} if c.tie_word_embeddings else {}


# -- GPT-2: `transformer.h.N` blocks, Conv1D weights stored (in, out), head tied to wte. --

GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
CONV1D = re.compile(r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")


def gpt2_config(config: dict[str, Any]) -> GPTConfig:
    activation = config.get("activation_function", "gelu_new")
    if activation not in GPT2_ACTIVATIONS:
        raise FrameduelError(f"config.json sets activation_function={activation!r}; frameduel's gpt implements "
                             f"{', '.join(GPT2_ACTIVATIONS)}")
    width = setting(config, "n_embd", required=True)
    refuse(config, "n_inner", lambda v: v in (None, 4 * width), "gpt does not implement (its MLP is 4 x n_embd wide)")
    refuse(config, "scale_attn_weights", lambda v: v is not False, "gpt does not implement (it scales by 1/sqrt(d))")
    refuse(config, "scale_attn_by_inverse_layer_idx", lambda v: not v, "gpt does not implement")
    refuse(config, "add_cross_attention", lambda v: not v, "gpt does not implement (it is a decoder only)")
    refuse(config, "tie_word_embeddings", lambda v: v is not False, "gpt does not implement (its head is tied)")
    positions = setting(config, "n_positions", 1024)
    try:
        return GPTConfig(vocab_size=setting(config, "vocab_size", required=True),
                         block_size=min(positions, CONTEXT_CAP), n_layer=setting(config, "n_layer", required=True),
                         n_head=setting(config, "n_head", required=True), n_embd=width,
                         activation=GPT2_ACTIVATIONS[activation],
                         ln_eps=float(setting(config, "layer_norm_epsilon", 1e-5)), n_positions=positions)
    except (TypeError, ValueError) as exc:
        raise FrameduelError(f"config.json does not describe a valid gpt2 model: {exc}") from None


def gpt2_expected(c: GPTConfig) -> dict[str, tuple[int, ...]]:
    C = c.n_embd
    shapes = {"wte.weight": (c.vocab_size, C), "lm_head.weight": (c.vocab_size, C), "wpe.weight": (c.n_positions, C)}
    for i in range(c.n_layer):
        p = f"blocks.{i}"
        shapes |= {f"{p}.ln_1.weight": (C,), f"{p}.ln_1.bias": (C,),
                   f"{p}.attn.c_attn.weight": (3 * C, C), f"{p}.attn.c_attn.bias": (3 * C,),
                   f"{p}.attn.c_proj.weight": (C, C), f"{p}.attn.c_proj.bias": (C,),
                   f"{p}.ln_2.weight": (C,), f"{p}.ln_2.bias": (C,),
                   f"{p}.mlp.c_fc.weight": (4 * C, C), f"{p}.mlp.c_fc.bias": (4 * C,),
                   f"{p}.mlp.c_proj.weight": (C, 4 * C), f"{p}.mlp.c_proj.bias": (C,)}
    return shapes | {"ln_f.weight": (C,), "ln_f.bias": (C,)}


def gpt2_translate(stored: str) -> Translation | str | None:
    name = stored.removeprefix("transformer.")  # GPT2LMHeadModel's prefix; a bare GPT2Model has none
    if name == "lm_head.weight" or re.search(r"\.attn\.(bias|masked_bias)$", name):
        return IGNORED  # the tied head (read from wte), and old checkpoints' causal-mask buffers
    if not re.match(r"(wte|wpe|ln_f|h\.\d+)\.", name):
        return None
    return Translation(re.sub(r"^h\.(\d+)\.", r"blocks.\1.", name), transpose=bool(CONV1D.search(name)))


FAMILIES = (
    Family("llama", ("llama", "mistral"), llama_config, llama_expected, llama_translate, llama_tied),
    Family("gpt", ("gpt2",), gpt2_config, gpt2_expected, gpt2_translate, lambda c: {"lm_head.weight": "wte.weight"}),
)


def family_for(workload: str) -> Family:
    """The family whose tensors a workload's model has (its canonical names and shapes: Family.expected)."""
    return next(family for family in FAMILIES if family.workload == workload)


def family_of(config: dict[str, Any]) -> Family:
    model_type = config.get("model_type")
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = ", ".join(t for family in FAMILIES for t in family.model_types)
    raise FrameduelError(f"config.json has model_type {model_type!r}, which frameduel cannot load; supported: {known}")
