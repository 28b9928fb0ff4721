"""Iteration-level scheduling: which tokens each step runs, and what each step's logits become.

Requests wait in arrival order for a KV-cache slot. Every step, first the waiting requests take the
free slots (up to the running limit), then the step is built as rows of one token each:

  1. every decoding sequence's last token (one row each, so no running stream skips a step), then
  2. prompt tokens of the sequences still prefilling, in admission order, at most `prefill_chunk` in
     all: a prompt longer than that is prefilled over several steps (chunked prefill), and each step
     stalls the running streams by at most a chunk's compute.

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
class StepPlan:
    ids: np.ndarray  # (N,) one token per row
    positions: np.ndarray  # (N,)
    slots: np.ndarray  # (N,)
    rows: np.ndarray  # (R,) rows whose logits are sampled
    sampled: list[Sequence]  # the sequence of each sampled row
    prefilling: list[tuple[Sequence, int]]  # prompt tokens fed per prefilling sequence
    decode_rows: int

    @property
    def prefill_rows(self) -> int:
        return len(self.ids) - self.decode_rows


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
        """The next step's rows, or None when no sequence has a token to run."""
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        rows: list[int] = []
        sampled: list[Sequence] = []
        for sequence in self.running:
            if sequence.decoding:
                rows.append(len(ids))
                sampled.append(sequence)
                ids.append(sequence.output[-1])
                positions.append(len(sequence.prompt) + len(sequence.output) - 1)
                slots.append(sequence.slot)
        decode_rows, budget, prefilling = len(ids), self.prefill_chunk, []
        for sequence in self.running:
            if sequence.decoding or budget == 0:
                continue
            start = sequence.prefilled
            count = min(budget, len(sequence.prompt) - start)
            ids += sequence.prompt[start:start + count]
            positions += range(start, start + count)
            slots += [sequence.slot] * count
            if start + count == len(sequence.prompt):  # the prompt's last token: its logits give the first token
                rows.append(len(ids) - 1)
                sampled.append(sequence)
            prefilling.append((sequence, count))
            budget -= count
        if not ids:
            return None
        return StepPlan(np.asarray(ids, np.int64), np.asarray(positions, np.int64), np.asarray(slots, np.int64),
                        np.asarray(rows, np.int64), sampled, prefilling, decode_rows)

    def finish_step(self, plan: StepPlan, logits: np.ndarray, now: float) -> list[Event]:
        """Advance prefills, choose each sampled row's token, and end the sequences that are done."""
        for sequence, count in plan.prefilling:
            sequence.prefilled += count
        logits = logits[:, : self.vocab_limit]  # ids the tokenizer cannot decode are never chosen
        tokens = sampling.greedy(logits)
        events = []
        for row, sequence in enumerate(plan.sampled):
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
