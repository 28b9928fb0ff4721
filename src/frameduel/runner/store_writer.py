"""Storing finished cells while another process holds the results database's write lock.

SQLite lets one process write at a time. A second frameduel, a `sqlite3` shell or a backup that keeps a write
transaction open makes a write here wait, then fail with StoreBusy. A run must not lose a measured cell to that,
nor stop measuring: a cell that cannot be written within SAVE_PATIENCE_S is kept in memory, in finishing order,
and written with the next one; where the run needs the store complete (before it reads it to choose
added rounds, and at its end) it waits for the lock with backoff, saying so once. A cell kept in memory when
the run is interrupted is not stored, so --resume measures it again: nothing half-written, nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from frameduel.spec import Measurement
from frameduel.store import Store, StoreBusy

log = logging.getLogger("frameduel.store")
MAX_BACKOFF_S = 2.0  # between tries once the run waits for the lock (each try itself waits BUSY_TIMEOUT_S)
SAVE_PATIENCE_S = 0.5  # how long storing a cell waits for the lock before the cell waits in memory instead
T = TypeVar("T")


def when_writable(store: Store, write: Callable[[], T], what: str) -> T:
    """write(), retried with backoff for as long as another process holds the write lock; Ctrl-C stops waiting."""
    backoff, told = 0.1, False
    while True:
        try:
            return write()
        except StoreBusy:
            if not told:
                log.warning("results database %s is locked by another process; waiting to store %s (Ctrl-C stops: "
                            "what is stored stays, --resume runs the rest)", store.path, what)
                told = True
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


class CellWriter:
    """One run's cell rounds into the store, in finishing order; those the lock keeps out wait in memory."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.waiting: deque[tuple[int, Measurement]] = deque()
        self.most_waiting = 0  # the most cells that waited in memory at once (0: the store never made one wait)

    def save(self, round_index: int, measurement: Measurement) -> None:
        """Store this cell and any still waiting, or keep them in memory while the database is locked."""
        self.waiting.append((round_index, measurement))
        self.most_waiting = max(self.most_waiting, len(self.waiting))
        try:
            with self.store.patience(SAVE_PATIENCE_S):  # a lock held for long must not stall the measuring
                self._write_waiting()
        except StoreBusy:
            pass  # tried again with the next cell, or by flush()

    def flush(self) -> None:
        """Store every waiting cell, waiting for the lock as long as it takes."""
        if self.waiting:
            when_writable(self.store, self._write_waiting, f"{len(self.waiting)} finished cell round(s)")

    def _write_waiting(self) -> None:
        while self.waiting:
            round_index, measurement = self.waiting[0]
            self.store.save_measurement(self.run_id, round_index, measurement)  # one transaction per cell
            self.waiting.popleft()
