"""The engine: one thread that runs the scheduler's steps on a framework's stepper, back to back.

The serving face (on its event loop) submits and cancels; both go through the engine's inbox, which
the thread drains before every step, so a new request joins the batch at the next step and a cancelled
one (a client that disconnected) leaves its slot at the next step, never later. A submit beyond the
waiting limit is refused at once, in the caller's thread (429). Each step's events are handed back in
one call of `deliver` (for a server: one wake-up of the event loop per step, not one per token).

The thread holds the GIL only between the framework's kernels (torch and TensorFlow release it while
they compute), so the event loop keeps reading requests and writing streams while a step runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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

    def step(self, ids: np.ndarray, positions: np.ndarray, slots: np.ndarray, rows: np.ndarray) -> np.ndarray: ...


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
        self.inbox: queue.SimpleQueue[tuple[str, Sequence | None]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.waiting = 0  # submitted, not yet holding a slot: bounded by config.max_waiting
        self.thread = threading.Thread(target=self.run, name="frameduel-llm-engine", daemon=True)

    # -- the serving face's side (its thread) ----------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.inbox.put(("stop", None))
        self.thread.join(timeout=30)

    def submit(self, prompt: list[int], params: SamplingParams, sink: Any) -> Sequence:
        """Queue a request; ServeError "overloaded" (429) when max_waiting requests wait already."""
        with self.lock:
            if self.waiting >= self.config.max_waiting:
                raise ServeError(f"the server is full: {self.waiting} requests wait for one of "
                                 f"{self.config.slots} KV-cache slots; retry later", "overloaded")
            self.waiting += 1
        rng = None if params.greedy else np.random.default_rng(params.seed)
        sequence = Sequence(prompt, params, OutputText(self.tokenizer.decoder(), params.stop), sink,
                            time.perf_counter(), rng)
        self.inbox.put(("add", sequence))
        return sequence

    def cancel(self, sequence: Sequence) -> None:
        """The client went away: free the sequence's slot (or queue place) before the next step."""
        self.inbox.put(("cancel", sequence))

    @property
    def queue_depth(self) -> int:
        return self.waiting

    # -- the engine's thread -------------------------------------------------------------------------------
    def run(self) -> None:
        while self.drain(block=not self.scheduler.busy):
            for _ in self.scheduler.admit():
                self.count_waiting(-1)
            self.observer.on_occupancy(len(self.scheduler.running), self.waiting)
            plan = self.scheduler.plan()
            if plan is None:
                continue
            start = time.perf_counter()
            try:
                logits = self.stepper.step(plan.ids, plan.positions, plan.slots, plan.rows)
            except Exception as exc:  # noqa: BLE001 - the server's fault: the running requests get a 500, not a hang
                log.exception("a step failed")
                self.finish(self.scheduler.fail_running(f"the model step failed: {type(exc).__name__}: {exc}"))
                continue
            now = time.perf_counter()
            events = self.scheduler.finish_step(plan, logits, now)
            self.observer.on_step(len(plan.ids), now - start)
            self.finish(events)

    def drain(self, block: bool) -> bool:
        """Apply every submit and cancel that arrived; wait for one when idle. False: stop."""
        while True:
            try:
                kind, sequence = self.inbox.get(block=block)
            except queue.Empty:
                return True
            block = False
            if kind == "stop":
                return False
            if kind == "add":
                self.scheduler.add(sequence)
            elif sequence.finish_reason is None:  # cancel: not finished meanwhile
                waiting = sequence.slot < 0
                if self.scheduler.remove(sequence):
                    sequence.finish_reason = "cancelled"
                    self.count_waiting(-1 if waiting else 0)
                    self.observer.on_finish(sequence, time.perf_counter())

    def count_waiting(self, change: int) -> None:
        with self.lock:
            self.waiting += change

    def finish(self, events: list[Event]) -> None:
        now = time.perf_counter()
        for event in events:
            if event.token is not None:
                self.observer.on_token(len(event.sequence.output) == 1, event.gap)
            if event.finish_reason is not None:
                self.observer.on_finish(event.sequence, now)
        if events:
            self.observer.on_occupancy(len(self.scheduler.running), self.waiting)
            self.deliver(events)
