"""What one request asks for, and how the engine is sized: frozen dataclasses, as every config here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from frameduel.errors import FrameduelError

MAX_STOP_STRINGS = 4  # OpenAI's limit


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0  # 0: greedy (argmax); OpenAI's default is 1
    top_p: float = 1.0  # nucleus: sample among the most likely tokens whose probabilities add up to top_p
    seed: int | None = None  # a seeded request's stream is reproducible, whatever runs beside it
    stop: tuple[str, ...] = ()  # generation ends before the first of these; it is left out of the text

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class EngineConfig:
    """The KV cache, the queue in front of it and the step's prefill budget.

    The cache holds `slots` sequences of `max_len` positions each, preallocated at start-up, so its memory
    is fixed and stated (2 x layers x slots x kv heads x max_len x head width x 4 bytes). A request waits
    for a free slot; more than `max_waiting` waiting requests get 429. Each step runs one token of every
    decoding sequence plus at most `prefill_chunk` prompt tokens, so a long prompt is prefilled over
    several steps instead of stalling the running streams for its whole length.
    """

    slots: int = 32
    max_len: int | None = None  # positions per slot; None: the model's context
    prefill_chunk: int = 64  # 256 let a burst of prompts stall every stream for ~4x longer steps (ITL p99)
    max_waiting: int = 256
    max_running: int | None = None  # sequences decoding at once; None: every slot; 1: one request at a time

    def __post_init__(self) -> None:
        if self.slots < 1 or self.prefill_chunk < 1 or self.max_waiting < 1:
            raise FrameduelError(f"--kv-slots, --prefill-chunk and --max-waiting must be >= 1, got {self.slots}, "
                                 f"{self.prefill_chunk}, {self.max_waiting}")
        if self.max_running is not None and not 1 <= self.max_running <= self.slots:
            raise FrameduelError(f"--max-running must be between 1 and --kv-slots ({self.slots}), "
                                 f"got {self.max_running}")
        if self.max_len is not None and self.max_len < 2:
            raise FrameduelError(f"--max-model-len must be >= 2, got {self.max_len}")

    @property
    def running_limit(self) -> int:
        return self.max_running or self.slots

    @property
    def max_rows(self) -> int:
        """Tokens one step can hold: every running sequence's next token and a prefill chunk."""
        return self.running_limit + self.prefill_chunk

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
