"""Faults in the results database and in `compare` itself, on real runs of the numpy reference framework.

Each cell is a real worker process forked from a real zygote, so a run of N cells takes ~N x 0.6 s here and
the faults land where they would on a real run: between cells, inside a cell, inside a write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from frameduel.runner.plan import Plan
from frameduel.runner.store_writer import SAVE_PATIENCE_S
from frameduel.spec import Measurement
from frameduel.store import Store
from tests.conftest import cli_command, run_cli, wait_for
from tests.faults.support import FaultRow, one_line

LOCK_S = 10.0
INTERRUPTS = 20


def compare_args(db: Path, repeats: int) -> tuple[str, ...]:
    """train and infer of the numpy mlp, `repeats` processes each: 2 x repeats real cell rounds."""
    return ("compare", "--workloads", "mlp", "--size", "tiny", "--frameworks", "numpy", "--tasks", "train,infer",
            "--threads", "1", "--repeats", str(repeats), "--no-parity", "--db", str(db))


def stored(db: Path) -> dict[tuple[str, int], tuple[int, str]]:
    """(cell key, round) -> (row id, status) of every stored cell round."""
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
            rows = connection.execute("SELECT cell_key, round, id, status FROM cells").fetchall()
    except sqlite3.OperationalError:  # the schema is not created yet
        return {}
    return {(key, round_index): (row_id, status) for key, round_index, row_id, status in rows}


def only_run(db: Path) -> str | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        try:
            row = connection.execute("SELECT id FROM runs").fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


def planned_rounds(db: Path, run_id: str) -> set[tuple[str, int]]:
    store = Store(db)
    try:
        plan = Plan.from_dict(store.get_run(run_id).plan)
    finally:
        store.close()
    return {(spec.key, round_index) for round_index, spec in plan.schedule()}


def run_status(db: Path, run_id: str) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        return connection.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


class Lines:
    """A process's stdout, line by line with the time each arrived, read on a thread."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> str:
        self.thread.join(timeout=30)
        return "\n".join(line for _, line in self.lines)

    def between(self, start: float, end: float, marker: str) -> int:
        return sum(start <= t <= end and marker in line for t, line in self.lines)


STARTED: list[subprocess.Popen] = []  # every command a scenario started, killed by no_leftovers() if still running


def start_compare(*args: str) -> tuple[subprocess.Popen, Lines]:
    process = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    STARTED.append(process)
    return process, Lines(process)


@contextlib.contextmanager
def no_leftovers() -> Iterator[None]:
    """Whatever happens in the block (a failed check included), no command it started runs on after it."""
    try:
        yield
    finally:
        while STARTED:
            process = STARTED.pop()
            if process.poll() is None:
                process.kill()
                process.wait()


def finish(process: subprocess.Popen, lines: Lines, timeout: float = 600) -> tuple[str, str]:
    _, err = process.communicate(timeout=timeout)
    return lines.text(), err


# -- another process holds the write lock ------------------------------------------------------------------
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def _store_locked(tmp: Path, lock_s: float = LOCK_S, repeats: int = 5) -> FaultRow:
    db = tmp / "results.sqlite"
    compare, lines = start_compare(*compare_args(db, repeats))
    wait_for(lambda: len(stored(db)) >= 1, timeout=300)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(lock_s)], stdout=subprocess.PIPE,
                              text=True)
    STARTED.append(locker)
    assert locker.stdout.readline().strip() == "locked"
    locked_at, at_lock = time.monotonic(), len(stored(db))  # WAL: reading goes on while another process writes
    time.sleep(max(lock_s - 1.0, 0.0))
    during_lock = len(stored(db)) - at_lock  # nothing can have been written meanwhile
    locker.wait(timeout=lock_s + 60)
    released_at = time.monotonic()
    stored_by = wait_for(lambda: time.monotonic() if len(stored(db)) > at_lock + during_lock
                         or compare.poll() is not None else None, timeout=300)
    out, err = finish(compare, lines)
    finished_in_lock = lines.between(locked_at, released_at, "ms/step")
    rows, run_id = stored(db), only_run(db)
    missing = planned_rounds(db, run_id) - set(rows)
    recover_s = stored_by - released_at if finished_in_lock else 0.0  # nothing waited: nothing to recover
    return FaultRow(
        "results database locked", f"another process held BEGIN EXCLUSIVE on the database for {lock_s:g} s mid-run",
        f"SQLITE_BUSY after waiting {SAVE_PATIENCE_S:g} s: {finished_in_lock} cell(s) finished meanwhile, kept in "
        "memory and written once it let go",
        f"run completed, exit {compare.returncode}, {len(rows)}/{2 * repeats} cells stored"
        + (", 'waiting to store' said once" if "waiting to store" in err else ""),
        len(missing) + (2 * repeats - len(rows)), recover_s,
        {"returncode": compare.returncode, "stderr": err, "stdout": out, "during_lock": during_lock,
         "finished_in_lock": finished_in_lock, "statuses": sorted({status for _, status in rows.values()}),
         "run_status": run_status(db, run_id)})


# -- the disk fills up --------------------------------------------------------------------------------------
@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "4m") -> Iterator[bool]:
    """A tmpfs of `size` mounted at where (True), or just the directory where mounting is not allowed (False)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; return it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as file:  # unbuffered: closing it has nothing left to write
        with contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
    return filler


def _disk_full(tmp: Path, repeats: int = 4) -> FaultRow:
    """The database's filesystem fills up after two cells: a real small tmpfs where this process may mount one,
    else a file-size limit (RLIMIT_FSIZE) set on the running compare at the database's current size."""
    with small_filesystem(tmp / "small") as mounted:
        db = tmp / "small" / "results.sqlite"
        compare, lines = start_compare(*compare_args(db, repeats))
        wait_for(lambda: len(stored(db)) >= 2, timeout=300)
        before = stored(db)
        if mounted:
            filler = fill(db.parent)
        else:
            wal = db.with_name(db.name + "-wal")
            limit = max(db.stat().st_size, wal.stat().st_size if wal.exists() else 0) + 1024
            psutil.Process(compare.pid).rlimit(psutil.RLIMIT_FSIZE, (limit, limit))
        out, err = finish(compare, lines)
        faulted_rc, at_fault = compare.returncode, stored(db)
        run_id = only_run(db)
        if mounted:
            filler.unlink()
        started = time.monotonic()
        resumed = run_cli("compare", "--resume", run_id, "--db", str(db))
        recover_s = time.monotonic() - started
        after = stored(db)
        redone = sum(after.get(key) != value for key, value in at_fault.items())
        missing = planned_rounds(db, run_id) - set(after)
    how = "a 4 MiB tmpfs filled up" if mounted else "RLIMIT_FSIZE set at the database's size"
    return FaultRow(
        "disk full", f"{how} after {len(before)} cells",
        "SQLITE_FULL" if mounted else "SQLITE_IOERR (EFBIG)",
        f"exit {faulted_rc}: {err.strip()}", len(missing) + redone, recover_s,
        {"returncode": faulted_rc, "stderr": err, "stdout": out, "stored_at_fault": len(at_fault),
         "resume_returncode": resumed.returncode, "resume_stderr": resumed.stderr, "mounted": mounted,
         "cells": len(after), "planned": 2 * repeats, "one_line": one_line(err)})


# -- a truncated results database -------------------------------------------------------------------------
def write_results(db: Path, cells: int = 40, samples: int = 500) -> str:
    """A finished run of `cells` cell rounds with `samples` step times each, through the Store (real SQLite)."""
    from frameduel.runner.plan import MatrixRequest, build_plan
    from frameduel.runner.scheduler import start_run

    plan = build_plan(MatrixRequest(workloads=("mlp",), frameworks=("numpy",), tasks=("train", "infer"),
                                    size="tiny", device="cpu", threads=1, repeats=cells // 2))
    store = Store(db)
    run_id = start_run(store, plan, doctor_before={})
    for round_index, spec in plan.schedule():
        store.save_measurement(run_id, round_index, Measurement(
            spec=spec, status="ok", step_seconds=[1e-3 + i * 1e-7 for i in range(samples)]))
    store.set_run_status(run_id, "complete")
    store.close()
    return run_id


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def truncated_database(tmp: Path) -> FaultRow:
    db = tmp / "results.sqlite"
    run_id = write_results(db)
    full = db.stat().st_size
    os.truncate(db, full // 2)
    before = digest(db)
    commands = {"runs": ("runs",), "show": ("show", run_id), "compare --resume": ("compare", "--resume", run_id),
                "report": ("report", run_id, "--out", str(tmp / "report"))}
    results = {name: run_cli(*args, "--db", str(db), timeout=300) for name, args in commands.items()}
    touched = digest(db) != before
    side_files = [p.name for p in db.parent.iterdir() if p.name.startswith(db.name) and p != db]
    salvage = subprocess.run(["sqlite3", str(db), ".dump"], capture_output=True, text=True)  # best effort
    salvaged = salvage.stdout.count("INSERT INTO cells")
    started = time.monotonic()
    fresh = run_cli("runs", "--db", str(tmp / "new.sqlite"))  # the way on: a new database
    recover_s = time.monotonic() - started
    first = results["runs"].stderr.strip()
    return FaultRow(
        "truncated database", f"results.sqlite cut to {full // 2} of its {full} bytes",
        "the header's page count exceeds the file (checked before any write)",
        f"exit {results['runs'].returncode} in runs/show/compare --resume/report: {first} (sqlite3 .dump salvages "
        f"{salvaged} of its 40 cell rows; the cut pages held the run's own row)",
        int(touched) + len(side_files), recover_s,
        {"results": {name: (r.returncode, r.stderr) for name, r in results.items()}, "touched": touched,
         "side_files": side_files, "salvaged_cells": salvaged, "fresh_returncode": fresh.returncode,
         "path": str(db)})


# -- SIGTERM and SIGINT to compare ------------------------------------------------------------------------
def job_children(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _interrupted_runs(tmp: Path, interrupts: int = INTERRUPTS, repeats: int = 14, seed: int = 0) -> FaultRow:
    """SIGTERM and SIGINT in turn, each at a random moment after the run starts (uniform over 0-3 s: inside
    the first cells, between them, inside a write); then --resume, interrupted again, until `interrupts`
    signals; then a last --resume must complete the run with every planned round stored exactly once."""
    db, rng = tmp / "results.sqlite", random.Random(seed)
    kept: dict[tuple[str, int], tuple[int, str]] = {}
    exits, problems, left_running, completed = [], [], 0, []
    run_id = None
    for index in range(interrupts):
        sig = (signal.SIGTERM, signal.SIGINT)[index % 2]
        args = ("compare", "--resume", run_id, "--db", str(db)) if run_id else compare_args(db, repeats)
        compare, lines = start_compare(*args)
        wait_for(lambda c=compare, o=lines: c.poll() is not None or any(line.startswith("run ") for _, line in o.lines),
                 timeout=300)
        time.sleep(rng.uniform(0.0, 3.0))
        children = job_children(compare)
        compare.send_signal(sig)
        out, err = finish(compare, lines, timeout=120)
        gone, alive = psutil.wait_procs(children, timeout=15)
        left_running += len(alive)
        run_id = run_id or only_run(db)
        exits.append(compare.returncode)
        rows = stored(db)
        if "Traceback" in err:
            problems.append(f"{sig.name}: a traceback: {err.strip()[-300:]}")
        elif run_status(db, run_id) == "complete":  # every round was stored before the signal landed (it may
            completed.append(compare.returncode)     # still have stopped the summary: exit 1 or 130)
        elif compare.returncode != 130 or f"--resume {run_id}" not in err:
            problems.append(f"{sig.name}: exit {compare.returncode}: {err.strip()[-300:]}")
        elif run_status(db, run_id) != "interrupted":
            problems.append(f"{sig.name}: the run is {run_status(db, run_id)}, not interrupted")
        redone = [key for key, value in kept.items() if rows.get(key) != value]
        if redone:
            problems.append(f"{sig.name}: rounds stored before were measured again: {redone}")
        kept = rows
    started = time.monotonic()
    final = run_cli("compare", "--resume", run_id, "--db", str(db))
    recover_s = time.monotonic() - started
    rows = stored(db)
    planned = planned_rounds(db, run_id)
    missing, extra = planned - set(rows), set(rows) - planned
    redone = [key for key, value in kept.items() if rows.get(key) != value]
    return FaultRow(
        "SIGTERM/SIGINT to compare", f"{interrupts} signals (TERM and INT in turn) at random moments, each run resumed",
        "KeyboardInterrupt (SIGTERM handled as Ctrl-C): run marked interrupted, workers killed",
        f"exit 130 and 'Resume with: frameduel compare --resume RUN' each time; last resume exit {final.returncode}, "
        f"{len(rows)}/{len(planned)} rounds", len(missing) + len(extra) + len(redone) + left_running, recover_s,
        {"exits": exits, "problems": problems, "left_running": left_running, "completed_early": completed,
         "final_returncode": final.returncode,
         "final_stderr": final.stderr, "missing": sorted(missing), "extra": sorted(extra), "redone": redone,
         "stored_before_last_resume": len(kept), "planned": len(planned),
         "statuses": sorted({status for _, status in rows.values()}), "run_status": run_status(db, run_id)})



def store_locked(tmp: Path, lock_s: float = LOCK_S, repeats: int = 5) -> FaultRow:
    """Another process holds the write lock for lock_s seconds in the middle of a run."""
    with no_leftovers():
        return _store_locked(tmp, lock_s, repeats)


def disk_full(tmp: Path, repeats: int = 4) -> FaultRow:
    """The database's filesystem fills up after two cells."""
    with no_leftovers():
        return _disk_full(tmp, repeats)


def interrupted_runs(tmp: Path, interrupts: int = INTERRUPTS, repeats: int = 14, seed: int = 0) -> FaultRow:
    """SIGTERM and SIGINT to compare at random moments, each run resumed."""
    with no_leftovers():
        return _interrupted_runs(tmp, interrupts, repeats, seed)
