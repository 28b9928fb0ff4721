"""The engine: the scheduler's steps run on the serving face's event loop, back to back, between which
the loop reads requests and writes the streams.

Not a thread of its own, on purpose: measured on this 2-core CPU (llama small, frameduel torch eager), an
engine thread served 305 output tok/s at concurrency 1 and 300 at concurrency 8. A step of a small model
is ~150 framework calls, each releasing and re-taking the GIL; while the event loop held it (writing
streams), every re-take waited for the loop's switch interval, so a step stretched with the load: a GIL
convoy. On the loop, a step runs uninterrupted and the loop's work runs between steps (the model
server's inline batches avoid the same hand-offs, serve/batcher.py).

Submit and cancel go through the engine's inbox, applied before every step, so a new request joins the
batch at the next step and a cancelled one (a client that disconnected) leaves its slot at the next
step. A submit beyond the waiting limit is refused at once (429). Each step's events are handed to
`deliver` in one call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from frameduel.llm.params import EngineConfig, SamplingParams
from frameduel.llm.scheduler import Event, Scheduler, Sequence
from frameduel.llm.text import OutputText
from frameduel.llm.tokenizer import Tokenizer
from frameduel.v2.protocol import ServeError

log = logging.getLogger("frameduel.llm")


class Stepper(Protocol):
    """What frameworks/torch_llm.py and tf_llm.py load: the model and its slot caches."""

    vocab_size: int
    kv_bytes: int

    def step(self, ids: np.ndarray, positions: np.ndarray, slots: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """ids, positions (B, T); slots (B,); rows (R,) into the B*T tokens -> logits (R, vocab) float32."""


class Observer(Protocol):
    """What the engine reports as it runs (the server's Prometheus metrics)."""

    def on_step(self, rows: int, seconds: float) -> None: ...

    def on_occupancy(self, running: int, waiting: int) -> None: ...

    def on_token(self, first: bool, gap: float) -> None: ...

    def on_finish(self, sequence: Sequence, now: float) -> None: ...


class Engine:
    def __init__(self, stepper: Stepper, tokenizer: Tokenizer, config: EngineConfig, max_len: int,
                 observer: Observer, deliver: Callable[[list[Event]], None]) -> None:
        self.stepper, self.tokenizer, self.config, self.max_len = stepper, tokenizer, config, max_len
        self.observer, self.deliver = observer, deliver
        vocab_limit = min(stepper.vocab_size, tokenizer.size)
        self.scheduler = Scheduler(config.slots, config.running_limit, config.prefill_chunk, tokenizer.eos_ids,
                                   vocab_limit)
        self.inbox: deque[tuple[str, Sequence]] = deque()
        self.waiting = 0  # submitted, not yet holding a slot: bounded by config.max_waiting
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.stopping = False

    # -- the serving face's side ----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the steps as a task of the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        if self.task is not None:
            await self.task

    def submit(self, prompt: list[int], params: SamplingParams, sink: Any) -> Sequence:
        """Queue a request; ServeError "overloaded" (429) when max_waiting requests wait already."""
        if self.waiting >= self.config.max_waiting:
            raise ServeError(f"the server is full: {self.waiting} requests wait for one of {self.config.slots} "
                             "KV-cache slots; retry later", "overloaded")
        self.waiting += 1
        rng = None if params.greedy else np.random.default_rng(params.seed)
        sequence = Sequence(prompt, params, OutputText(self.tokenizer.decoder(), params.stop), sink,
                            time.perf_counter(), rng)
        self.inbox.append(("add", sequence))
        self.wake.set()
        return sequence

    def cancel(self, sequence: Sequence) -> None:
        """The client went away: free the sequence's slot (or queue place) before the next step."""
        self.inbox.append(("cancel", sequence))
        self.wake.set()

    # -- the steps ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        while not self.stopping:
            if not self.inbox and not self.scheduler.busy:
                self.wake.clear()
                await self.wake.wait()
                continue
            self.drain()
            self.waiting -= len(self.scheduler.admit())
            self.observer.on_occupancy(len(self.scheduler.running), self.waiting)
            if (plan := self.scheduler.plan()) is not None:
                self.step(plan)
            await asyncio.sleep(0)  # the loop reads requests and writes the streams between steps

    def step(self, plan: Any) -> None:
        start = time.perf_counter()
        try:
            logits = np.concatenate([self.stepper.step(f.ids, f.positions, f.slots, f.rows) for f in plan.forwards])
        except Exception as exc:  # noqa: BLE001 - the server's fault: the running requests get a 500, not a hang
            log.exception("a step failed")
            self.finish(self.scheduler.fail_running(f"the model step failed: {type(exc).__name__}: {exc}"))
            return
        now = time.perf_counter()
        events = self.scheduler.finish_step(plan, logits, now)
        self.observer.on_step(plan.tokens, now - start)
        self.finish(events)

    def drain(self) -> None:
        """Apply every submit and cancel that arrived."""
        while self.inbox:
            kind, sequence = self.inbox.popleft()
            if kind == "add":
                self.scheduler.add(sequence)
            elif sequence.finish_reason is None:  # cancel: not finished meanwhile
                waiting = sequence.slot < 0
                if self.scheduler.remove(sequence):
                    sequence.finish_reason = "cancelled"
                    self.waiting -= waiting
                    self.observer.on_finish(sequence, time.perf_counter())

    def finish(self, events: list[Event]) -> None:
        for event in events:
            if event.token is not None:
                self.observer.on_token(len(event.sequence.output) == 1, event.gap)
            if event.finish_reason is not None:
                self.observer.on_finish(event.sequence, time.perf_counter())
        if events:
            self.observer.on_occupancy(len(self.scheduler.running), self.waiting)
            self.deliver(events)
