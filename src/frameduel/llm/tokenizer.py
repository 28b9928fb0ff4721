"""Text to token ids and back: a checkpoint's tokenizer.json through the `tokenizers` library, or, for the
built-in workloads (random weights, no tokenizer of their own), a byte-level tokenizer defined here.

The byte-level tokenizer (checkpoints/synthetic.py): token id b is the byte b, for b < 256 (the text's
UTF-8 bytes, one token each; GPT-2's byte-to-character table, no merges). It is a `tokenizers` Tokenizer
like any checkpoint's, so decoding goes through the same streaming decoder, which waits for a multi-byte
character to be whole.

The chat template is the checkpoint's (tokenizer_config.json's "chat_template", or chat_template.jinja
beside it), rendered with jinja2's sandbox as transformers renders it; without one, chat completions
are refused in one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend
from tokenizers import decoders

from frameduel.checkpoints.synthetic import byte_level_backend
from frameduel.errors import FrameduelError

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class Tokenizer:
    backend: Backend
    source: str  # "tokenizer.json" or "byte-level"
    eos_ids: frozenset[int] = frozenset()  # generation stops at these (finish_reason "stop")
    chat_template: str | None = None
    template_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token for the template

    @property
    def size(self) -> int:
        """Ids it can decode; the sampler never picks another (a model's vocabulary may be padded wider)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        """Ids of text; special_tokens adds what the tokenizer's post-processor adds (a BOS), as
        completions do, while a rendered chat template already holds its own."""
        return self.backend.encode(text, add_special_tokens=special_tokens).ids

    def decoder(self) -> Callable[[int], str | None]:
        """A streaming decoder for one sequence: token id -> the text it completes (None while partial)."""
        stream = decoders.DecodeStream(skip_special_tokens=True)
        return lambda token: stream.step(self.backend, token)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt of a chat, with the assistant's turn opened."""
        if self.chat_template is None:
            raise FrameduelError("this model has no chat template (tokenizer_config.json 'chat_template'); use "
                                 "/v1/completions with a prompt")
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise FrameduelError(f"the chat template refused the messages: {message}")

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = raise_exception
        try:
            return environment.from_string(self.chat_template).render(
                messages=messages, add_generation_prompt=True, **self.template_tokens)
        except TemplateError as exc:
            raise FrameduelError(f"the chat template failed: {exc}") from None


def byte_level_tokenizer() -> Tokenizer:
    return Tokenizer(byte_level_backend(), "byte-level")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameduelError(f"{path} is not valid JSON ({exc}); fix or re-save it") from None
    return data if isinstance(data, dict) else {}


def token_text(value: Any) -> str | None:
    """tokenizer_config.json writes a token as a string or as {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


def id_list(value: Any) -> set[int]:
    return {value} if isinstance(value, int) else {v for v in value or () if isinstance(v, int)}


def chat_template_of(directory: Path, settings: dict[str, Any]) -> str | None:
    template = settings.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    jinja = directory / "chat_template.jinja"  # where transformers 5 saves it
    return template if isinstance(template, str) else jinja.read_text() if jinja.is_file() else None


def checkpoint_tokenizer(directory: Path) -> Tokenizer:
    """The checkpoint's tokenizer.json, its end-of-sequence ids (config.json, generation_config.json) and
    chat template."""
    path = directory / TOKENIZER_FILE
    if not path.is_file():
        raise FrameduelError(f"checkpoint '{directory.name}' has no {TOKENIZER_FILE}; the server reads text with "
                             "it (save one beside the weights: tokenizer.save_pretrained(DIR))")
    try:
        backend = Backend.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exceptions
        raise FrameduelError(f"{path} does not load with the tokenizers library: {exc}") from None
    settings = read_json(directory / "tokenizer_config.json")
    eos = id_list(read_json(directory / "config.json").get("eos_token_id"))
    eos |= id_list(read_json(directory / "generation_config.json").get("eos_token_id"))
    tokens = {name: text for name in ("bos_token", "eos_token") if (text := token_text(settings.get(name)))}
    return Tokenizer(backend, TOKENIZER_FILE, frozenset(eos), chat_template_of(directory, settings), tokens)
