"""Dynamic batching for one model version: requests queue up, a worker runs them as few large batches.

Sizes are counted in samples (rows of the batch axis), not requests. The worker takes samples from the
head of the queue until a batch holds ``max_batch_size`` of them or the oldest waiting request has
waited ``max_queue_delay_us`` since it was enqueued; a request larger than a batch is split across
batches and answered when its last piece is done. Fixed-shape artefacts accept only some batch sizes,
so a batch is zero-padded up to the next allowed size (the padding rows are computed and dropped).

The queue is bounded (``max_queue_size`` samples): a request that would overflow it fails at once with
429, so memory stays bounded under overload. A request still waiting ``timeout_s`` after it was
enqueued fails with 503 instead of being computed for a client that has likely given up.

Compute runs in one worker thread per model version, so the event loop keeps parsing and queueing
requests while a batch runs (runtimes release the GIL inside their kernels); the next batch forms
from whatever arrived meanwhile. A batch that computes in under ``INLINE_BELOW_S`` runs on the event
loop instead: handing it to the thread and back costs two GIL hand-offs, and while the loop is busy
each waits out the interpreter's switch interval (5 ms), so for a tiny model the hop, not the
compute, made the tail (compute phase p99 10 ms for a 0.1 ms batch).

Faults stay in their batch. A runtime that raises fails every request of that batch with the cause (500) and
the next batch runs. A runtime that does not return within ``compute_timeout_s`` fails its batch's requests
with 504 and its compute thread is replaced: a thread cannot be killed, so the stuck one is left to finish
(a daemon: it never keeps the server from exiting) and a new one runs the next batches. A batch "inline"
is therefore handed to the compute thread too, while the event loop blocks on it for at most
``INLINE_WAIT_S``: the loop releases the GIL while it waits, so neither hand-off waits out a switch
interval, and a runtime that hangs there stalls the loop for that long, not forever.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.v2.protocol import ServeError

Infer = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
INLINE_BELOW_S = 1e-3  # batches computing faster than this are waited for on the event loop, blocking it
INLINE_WAIT_S = 0.1  # the longest the event loop blocks on an inline batch before it awaits the rest
RECENT_BATCHES = 16  # how many batches' compute times decide where the next one runs
MAX_STUCK_WORKERS = 4  # compute threads still stuck in the runtime after which the version stops taking requests


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 32  # samples per runtime call
    max_queue_delay_us: int = 2000  # longest the oldest request waits for a batch to fill
    max_queue_size: int = 1024  # samples waiting in the queue; more -> 429
    timeout_s: float = 30.0  # from enqueue; still queued after this -> 503
    allowed_batch_sizes: tuple[int, ...] | None = None  # None: any size up to max_batch_size
    compute_timeout_s: float = 60.0  # one runtime call; longer -> its requests get 504, its thread is replaced

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue_size < 1 or self.max_queue_delay_us < 0 or self.timeout_s <= 0 \
                or self.compute_timeout_s <= 0:
            raise FrameduelError(f"invalid batching settings {self}: sizes must be >= 1, delay >= 0, timeouts > 0")

    def for_artefact(self, accepted: tuple[int, ...] | None, max_batch: int) -> BatchingConfig:
        """Fit these settings to what an artefact accepts (its manifest's batch_sizes and max_batch)."""
        if accepted is None:
            return replace(self, max_batch_size=min(self.max_batch_size, max_batch), allowed_batch_sizes=None)
        allowed = tuple(sorted(size for size in accepted if size <= self.max_batch_size)) or (min(accepted),)
        return replace(self, max_batch_size=allowed[-1], allowed_batch_sizes=allowed)

    def padded_size(self, samples: int) -> int:
        if self.allowed_batch_sizes is None:
            return samples
        return self.allowed_batch_sizes[bisect.bisect_left(self.allowed_batch_sizes, samples)]


@dataclass(frozen=True)
class BatchResult:
    outputs: dict[str, np.ndarray]
    queue_s: float  # enqueue -> its first piece started computing
    compute_s: float  # summed runtime time of the batches it took part in


@dataclass(frozen=True)
class BatchStats:
    """What one executed batch looked like, for the metrics."""

    samples: int  # real samples
    padding: int  # padding rows added to reach an allowed batch size
    compute_s: float


@dataclass(eq=False)
class _Pending:
    inputs: dict[str, np.ndarray]
    size: int
    enqueued: float
    future: asyncio.Future
    taken: int = 0  # samples handed to batches so far
    done: int = 0  # samples computed so far
    started: float | None = None
    compute_s: float = 0.0
    parts: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


Piece = tuple[_Pending, int, int]  # (request, first sample, end sample)
Batch = tuple[list[dict[str, np.ndarray]], float]  # the outputs of each piece, compute seconds


class ComputeThread:
    """One daemon thread that runs a version's batches, one at a time. A daemon: one stuck in a runtime call that
    never returns does not keep the server from exiting."""

    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def submit(self, function: Callable[..., Batch], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((future, function, args))
        return future

    def stop(self) -> None:
        """Exit after the call in progress, if any; calls queued behind it are not run."""
        self.jobs.put(None)

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            future, function, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the event loop, which fails the batch
                    future.set_exception(exc)


class ComputeTimeout(Exception):
    """A runtime call overstayed compute_timeout_s."""


def one_line(exc: BaseException) -> str:
    """A runtime's error as one line: its type and first non-empty line (runtimes raise multi-line reports)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def _run_batch(infer: Infer, pieces: list[Piece], padded: int) -> Batch:
    """In the worker thread: concatenate the pieces, pad, run, split the outputs back per piece."""
    first = pieces[0][0]
    if len(pieces) == 1 and pieces[0][1:] == (0, first.size) and padded == first.size:
        inputs = first.inputs  # a whole request on its own: no copy
    else:
        inputs = {name: np.concatenate([p.inputs[name][a:b] for p, a, b in pieces]) for name in first.inputs}
    samples = sum(b - a for _, a, b in pieces)
    if padded > samples:
        inputs = {name: np.concatenate([x, np.zeros((padded - samples, *x.shape[1:]), x.dtype)])
                  for name, x in inputs.items()}
    start = time.perf_counter()
    outputs = infer(inputs)
    compute_s = time.perf_counter() - start
    splits, offset = [], 0
    for _, a, b in pieces:
        splits.append({name: y[offset : offset + b - a] for name, y in outputs.items()})
        offset += b - a
    return splits, compute_s


class DynamicBatcher:
    """One queue and one compute thread for one model version. Create and use it on the event loop."""

    def __init__(self, infer: Infer, config: BatchingConfig, on_batch: Callable[[BatchStats], Any] | None = None,
                 on_depth: Callable[[int], Any] | None = None,
                 on_failure: Callable[[str], Any] | None = None) -> None:
        self.infer = infer
        self.config = config
        self.on_batch = on_batch or (lambda stats: None)
        self.on_depth = on_depth or (lambda depth: None)
        self.on_failure = on_failure or (lambda cause: None)  # "error" or "timeout", once per failed batch
        self.queue: deque[_Pending] = deque()
        self.queued = 0  # samples in the queue not yet taken by a batch
        self.busy = False
        self.closing = False
        self.wake = asyncio.Event()
        self.compute = ComputeThread("frameduel-batch")
        self.stuck: list[ComputeThread] = []  # replaced threads, some maybe still inside the runtime
        self.recent_compute_s: deque[float] = deque(maxlen=RECENT_BATCHES)
        self.worker = asyncio.get_running_loop().create_task(self._work())

    @property
    def stuck_workers(self) -> int:
        """Replaced compute threads still inside a runtime call."""
        return sum(thread.thread.is_alive() for thread in self.stuck)

    @property
    def healthy(self) -> bool:
        return self.stuck_workers < MAX_STUCK_WORKERS

    async def submit(self, inputs: dict[str, np.ndarray]) -> BatchResult:
        """Queue one request (already validated; any batch size >= 1) and wait for its outputs."""
        size = next(iter(inputs.values())).shape[0]
        if self.closing:
            raise ServeError("this model version is unloading; retry to reach the current one", "unavailable")
        if not self.healthy:
            raise ServeError(f"the runtime hung {self.stuck_workers} times and its threads are still stuck; reload "
                             "the model (unload, load)", "unavailable")
        if size > self.config.max_queue_size:
            raise ServeError(f"a request of {size} samples exceeds the queue of {self.config.max_queue_size}; "
                             "send fewer samples per request", "too_large")
        if self.queued + size > self.config.max_queue_size:
            raise ServeError(f"queue full ({self.queued} samples waiting); retry later", "overloaded")
        pending = _Pending(inputs, size, time.perf_counter(), asyncio.get_running_loop().create_future())
        # Wake the worker only when there is something new for it to decide: a first request, or a full batch.
        if not self.queue or self.queued < self.config.max_batch_size <= self.queued + size:
            self.wake.set()
        self.queue.append(pending)
        self.queued += size
        self.on_depth(self.queued)
        return await pending.future

    async def close(self) -> None:
        """Stop taking requests, finish the queued ones, then stop the worker and its thread."""
        self.closing = True
        self.wake.set()
        await self.worker
        self.compute.stop()

    async def _work(self) -> None:
        while True:
            if not self.queue:
                if self.closing:
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            flush_at = self.queue[0].enqueued + self.config.max_queue_delay_us / 1e6
            wait = flush_at - time.perf_counter()
            if self.queued < self.config.max_batch_size and wait > 0 and not self.closing:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), wait)
                except TimeoutError:
                    pass
                if self.queued < self.config.max_batch_size and time.perf_counter() < flush_at and not self.closing:
                    continue  # woken by a new first request only; keep waiting for the oldest one's deadline
            pieces = self._take()
            if pieces:
                await self._execute(pieces)

    def _take(self) -> list[Piece]:
        """Pieces for one batch from the queue head; requests past their deadline fail instead."""
        now, room, pieces = time.perf_counter(), self.config.max_batch_size, []
        while self.queue and room:
            pending = self.queue[0]
            if pending.taken == 0 and now - pending.enqueued > self.config.timeout_s:
                self.queue.popleft()
                self.queued -= pending.size
                pending.fail(ServeError(f"timed out after {self.config.timeout_s:g} s in the queue", "timeout"))
                continue
            count = min(room, pending.size - pending.taken)
            pieces.append((pending, pending.taken, pending.taken + count))
            pending.taken += count
            pending.started = pending.started or now
            room -= count
            self.queued -= count
            if pending.taken == pending.size:
                self.queue.popleft()
        self.on_depth(self.queued)
        return pieces

    async def _execute(self, pieces: list[Piece]) -> None:
        samples = sum(b - a for _, a, b in pieces)
        padded = self.config.padded_size(samples)
        try:
            splits, compute_s = await self._compute(pieces, padded)
        except ComputeTimeout:
            self._replace_compute_thread()
            self._fail(pieces, ServeError(f"the runtime did not answer within {self.config.compute_timeout_s:g} s "
                                          "(compute_timeout_s); its worker thread was replaced", "deadline_exceeded"))
            self.on_failure("timeout")
            return
        except Exception as exc:  # a runtime failure fails every request in the batch, never the server
            self._fail(pieces, ServeError(f"the runtime failed on this batch: {one_line(exc)}", "compute_error"))
            self.on_failure("error")
            return
        self.recent_compute_s.append(compute_s)
        self.on_batch(BatchStats(samples, padded - samples, compute_s))
        for (pending, start, end), outputs in zip(pieces, splits, strict=True):
            pending.parts.append((start, outputs))
            pending.done += end - start
            pending.compute_s += compute_s
            if pending.done == pending.size and not pending.future.done():
                pending.future.set_result(BatchResult(_join(pending.parts), pending.started - pending.enqueued,
                                                      pending.compute_s))

    async def _compute(self, pieces: list[Piece], padded: int) -> Batch:
        """The batch on the compute thread; an inline one blocks the loop until done or INLINE_WAIT_S has passed."""
        started = time.perf_counter()
        future = self.compute.submit(_run_batch, self.infer, pieces, padded)
        if self.runs_inline():
            try:
                return future.result(timeout=min(INLINE_WAIT_S, self.config.compute_timeout_s))
            except concurrent.futures.TimeoutError:
                pass  # slower than it used to be: await the rest
        left = self.config.compute_timeout_s - (time.perf_counter() - started)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(left, 0.0))
        except TimeoutError:  # asyncio's (an alias of the builtin since 3.11)
            raise ComputeTimeout from None

    def _fail(self, pieces: list[Piece], error: ServeError) -> None:
        for pending, _, _ in pieces:
            pending.fail(error)
            if pending in self.queue:  # its later pieces would answer a request that already failed
                self.queue.remove(pending)
                self.queued -= pending.size - pending.taken

    def _replace_compute_thread(self) -> None:
        """Leave the stuck thread to its runtime call (it exits once the call returns) and start a new one."""
        self.compute.stop()
        self.stuck = [thread for thread in self.stuck if thread.thread.is_alive()] + [self.compute]
        self.compute = ComputeThread("frameduel-batch")
        self.recent_compute_s.clear()  # the next batches are timed afresh before any runs inline again

    def runs_inline(self) -> bool:
        """Whether the next batch runs on the event loop: the median of the recent batches was all but free.

        The median, because runs on the thread are timed with their occasional GIL waits; a model that
        turns slow (larger batches under more load) moves back to the thread within a few batches.
        """
        recent = sorted(self.recent_compute_s)
        return len(recent) == RECENT_BATCHES and recent[RECENT_BATCHES // 2] < INLINE_BELOW_S


def _join(parts: list[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0][1]
    ordered = [outputs for _, outputs in sorted(parts, key=lambda part: part[0])]
    return {name: np.concatenate([outputs[name] for outputs in ordered]) for name in ordered[0]}
