"""Tokenizers and random-weight Llama checkpoints in Hugging Face's layout, written without a framework.

    byte_level_backend()                 token id b is byte b: the built-in workloads' tokenizer
    write_llama_checkpoint(DIR, config)  config.json, model.safetensors, tokenizer.json and
                                         tokenizer_config.json (with a chat template): what `serve --llm`,
                                         transformers and `transformers serve` all load

The weights are numpy draws from N(0, init_std) (norms one), saved with safetensors; the tokenizer is
byte-level, or a byte-level BPE trained with the `tokenizers` library on a fixed word list (the "tiny HF
checkpoint" of the serving benchmark and tests), so the same seed writes the same checkpoint anywhere.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from frameduel.checkpoints.families import llama_expected
from frameduel.errors import FrameduelError
from frameduel.workloads.llama import LlamaConfig

BYTE_VOCAB = 256
TOKENIZERS = ("bytes", "bpe")
BOS, EOS = "<s>", "</s>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Each message on its role's marker; the assistant's turn opened last. The BPE tokenizer knows the markers
# as special tokens, the byte-level one spells them out in bytes.
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
CORPUS_WORDS = ("model server token batch cache slot request stream prompt reply the of and to in is was for on "
                "that with as by at from it an were are which this be has had not but one they new after two "
                "have when time other more into all over only can under would where between most some about "
                "such world three city made used these state known then well through what while").split()


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: printable bytes stand for themselves, the others for code points from 256 on."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    table, extra = {}, 0
    for byte in range(BYTE_VOCAB):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(BYTE_VOCAB + extra)
            extra += 1
    return table


def byte_level_backend() -> Tokenizer:
    """Token id b is byte b: a byte-level BPE with the 256 bytes as its vocabulary and no merges, so the
    streaming decoder of `tokenizers` waits for a multi-byte character to be whole, as for any checkpoint."""
    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def trained_bpe(vocab_size: int, seed: int) -> Tokenizer:
    """A byte-level BPE of vocab_size ids trained on seeded sentences of CORPUS_WORDS; BOS is prepended."""
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(CORPUS_WORDS) for _ in range(12)) for _ in range(2000)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    special = [BOS, EOS, *ROLE_TOKENS]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    if backend.get_vocab_size() != vocab_size:
        raise FrameduelError(f"the BPE tokenizer learned {backend.get_vocab_size()} tokens, not {vocab_size}; "
                             "choose a vocabulary size the corpus supports (262-500)")
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A",
                                                           special_tokens=[(BOS, backend.token_to_id(BOS))])
    return backend


def random_weights(config: LlamaConfig, seed: int, init_std: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: np.ones(shape, np.float32) if name.endswith("norm.weight")
            else rng.normal(0.0, init_std, shape).astype(np.float32)
            for name, shape in llama_expected(config).items()}


def write_llama_checkpoint(directory: Path, config: LlamaConfig, tokenizer: str = "bytes", seed: int = 0,
                           init_std: float = 0.02, with_eos: bool = False) -> Path:
    """A Llama checkpoint directory of random weights. with_eos: "</s>" (bpe) is the end-of-sequence token in
    config.json, so generation may stop early; without, it runs to max_tokens (as a benchmark wants)."""
    if tokenizer not in TOKENIZERS:
        raise FrameduelError(f"unknown tokenizer '{tokenizer}'; choose from: {', '.join(TOKENIZERS)}")
    if tokenizer == "bytes" and config.vocab_size != BYTE_VOCAB:
        raise FrameduelError(f"the byte-level tokenizer has {BYTE_VOCAB} ids; the config has {config.vocab_size}")
    backend = byte_level_backend() if tokenizer == "bytes" else trained_bpe(config.vocab_size, seed)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(random_weights(config, seed, init_std), str(directory / "model.safetensors"), metadata={"format": "pt"})
    backend.save(str(directory / "tokenizer.json"))
    eos_id = backend.token_to_id(EOS) if with_eos and tokenizer == "bpe" else None
    settings = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": config.vocab_size,
                "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
                "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
                "num_key_value_heads": config.num_key_value_heads, "head_dim": config.head_dim,
                "max_position_embeddings": config.max_position_embeddings, "rope_theta": config.rope_theta,
                "rms_norm_eps": config.rms_norm_eps, "tie_word_embeddings": config.tie_word_embeddings,
                "initializer_range": init_std, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                "bos_token_id": backend.token_to_id(BOS), "eos_token_id": eos_id, "pad_token_id": None,
                "dtype": "float32"}
    (directory / "config.json").write_text(json.dumps(settings, indent=2))
    tokens = {"bos_token": BOS, "eos_token": EOS} if tokenizer == "bpe" else {}
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.max_position_embeddings,
         "chat_template": CHAT_TEMPLATE, **tokens}, indent=2))
    return directory
