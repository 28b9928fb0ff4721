"""Iteration-level scheduling: which tokens each step runs, and what each step's logits become.

Requests wait in arrival order for a KV-cache slot. Every step, first the waiting requests take the
free slots (up to the running limit), then the step is built as model calls:

  1. the decode batch: every decoding sequence's last token, one row each (no running stream skips a
     step), each row at its own position in its own slot; then
  2. prompt chunks of the sequences still prefilling, in admission order, at most `prefill_chunk` tokens
     in all, one call each (a row of T tokens reads its slot once): a prompt longer than that is
     prefilled over several steps (chunked prefill), and each step stalls the running streams by at
     most a chunk's compute.

A sequence whose prompt completes in a step samples its first token from that step's logits; a
decoding sequence samples its next one. A finished sequence (length, an end-of-sequence token, a stop
string) leaves its slot in the same step, and a waiting request takes it at the next one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frameduel.llm import sampling
from frameduel.llm.params import SamplingParams
from frameduel.llm.text import OutputText


@dataclass(eq=False)
class Sequence:
    """One request inside the engine."""

    prompt: list[int]
    params: SamplingParams
    text: OutputText
    sink: Any  # where its events go (the serving face's queue); the engine never looks inside
    arrival: float  # perf_counter at submit
    rng: np.random.Generator | None = None  # None: greedy
    slot: int = -1
    prefilled: int = 0  # prompt tokens whose keys and values are in the cache
    output: list[int] = field(default_factory=list)
    last_token_at: float | None = None
    finish_reason: str | None = None  # "stop", "length", "cancelled" or "error"

    @property
    def decoding(self) -> bool:
        return self.prefilled == len(self.prompt)


@dataclass(frozen=True)
class Event:
    """What one step produced for one sequence: its new token and text, and whether it finished."""

    sequence: Sequence
    text: str
    token: int | None  # None for an error
    finish_reason: str | None
    error: str | None = None
    gap: float = 0.0  # seconds since the previous token (the first: since arrival, its time to first token)


@dataclass(frozen=True)
class Forward:
    """One model call of a step: B rows of T tokens, each row one sequence's slot."""

    ids: np.ndarray  # (B, T)
    positions: np.ndarray  # (B, T)
    slots: np.ndarray  # (B,)
    rows: np.ndarray  # (R,) indices into the flattened (B*T) tokens whose logits are sampled
    sampled: list[Sequence]  # the sequence of each sampled row


@dataclass(frozen=True)
class StepPlan:
    forwards: list[Forward]  # the decode batch (B running sequences x 1 token) first, then one per prompt chunk
    prefilling: list[tuple[Sequence, int]]  # prompt tokens fed per prefilling sequence

    @property
    def sampled(self) -> list[Sequence]:
        return [sequence for forward in self.forwards for sequence in forward.sampled]

    @property
    def tokens(self) -> int:
        return sum(forward.ids.size for forward in self.forwards)


class Scheduler:
    """Slots, the waiting queue and the running sequences. Used by the engine's thread only."""

    def __init__(self, slots: int, running_limit: int, prefill_chunk: int, eos_ids: frozenset[int],
                 vocab_limit: int) -> None:
        self.free: deque[int] = deque(range(slots))
        self.running_limit, self.prefill_chunk = running_limit, prefill_chunk
        self.eos_ids, self.vocab_limit = eos_ids, vocab_limit
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # holding a slot, in admission order

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def add(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)

    def remove(self, sequence: Sequence) -> bool:
        """Drop a sequence wherever it is, freeing its slot now; False if it had finished already."""
        if sequence in self.running:
            self.release(sequence)
            return True
        if sequence in self.waiting:
            self.waiting.remove(sequence)
            return True
        return False

    def release(self, sequence: Sequence) -> None:
        self.running.remove(sequence)
        self.free.append(sequence.slot)

    def admit(self) -> list[Sequence]:
        admitted = []
        while self.waiting and self.free and len(self.running) < self.running_limit:
            sequence = self.waiting.popleft()
            sequence.slot = self.free.popleft()
            self.running.append(sequence)
            admitted.append(sequence)
        return admitted

    def plan(self) -> StepPlan | None:
        """The next step's model calls, or None when no sequence has a token to run."""
        forwards = []
        decoding = [sequence for sequence in self.running if sequence.decoding]
        if decoding:
            positions = [len(s.prompt) + len(s.output) - 1 for s in decoding]
            forwards.append(Forward(np.asarray([[s.output[-1]] for s in decoding], np.int64),
                                    np.asarray(positions, np.int64)[:, None],
                                    np.asarray([s.slot for s in decoding], np.int64),
                                    np.arange(len(decoding), dtype=np.int64), decoding))
        budget, prefilling = self.prefill_chunk, []
        for sequence in self.running:
            if sequence.decoding or budget == 0:
                continue
            start = sequence.prefilled
            count = min(budget, len(sequence.prompt) - start)
            done = start + count == len(sequence.prompt)  # its last prompt token's logits give the first token
            # A prompt chunk is a row of its own: it reads its slot once, not once per token.
            forwards.append(Forward(np.asarray([sequence.prompt[start:start + count]], np.int64),
                                    np.arange(start, start + count, dtype=np.int64)[None, :],
                                    np.asarray([sequence.slot], np.int64),
                                    np.asarray([count - 1] if done else [], np.int64), [sequence] if done else []))
            prefilling.append((sequence, count))
            budget -= count
        return StepPlan(forwards, prefilling) if forwards else None

    def finish_step(self, plan: StepPlan, logits: np.ndarray, now: float) -> list[Event]:
        """Advance prefills, choose each sampled row's token, and end the sequences that are done."""
        for sequence, count in plan.prefilling:
            sequence.prefilled += count
        logits = logits[:, : self.vocab_limit]  # ids the tokenizer cannot decode are never chosen
        tokens = sampling.greedy(logits)
        events = []
        for row, sequence in enumerate(plan.sampled):  # logits: every forward's sampled rows, in order
            token = int(tokens[row]) if sequence.params.greedy else sampling.sample(logits[row], sequence.params,
                                                                                     sequence.rng)
            events.append(self.append(sequence, token, now))
        return events

    def append(self, sequence: Sequence, token: int, now: float) -> Event:
        sequence.output.append(token)
        gap = now - (sequence.last_token_at or sequence.arrival)
        sequence.last_token_at = now
        if token in self.eos_ids:  # the end-of-sequence token ends the text; it is not part of it
            reason, text = "stop", sequence.text.flush()
        else:
            text = sequence.text.add(token)
            reason = "stop" if sequence.text.stopped else None
            if reason is None and len(sequence.output) >= sequence.params.max_tokens:
                reason, text = "length", text + sequence.text.flush()
        if reason is not None:
            sequence.finish_reason = reason
            self.release(sequence)
        return Event(sequence, text, token, reason, gap=gap)

    def fail_running(self, message: str) -> list[Event]:
        """A step that raised: every sequence holding a slot ends with the error; the slots are free."""
        events = []
        for sequence in list(self.running):
            sequence.finish_reason = "error"
            self.release(sequence)
            events.append(Event(sequence, "", None, "error", message))
        return events
