"""The results database: SQLite, one transaction per finished cell, so nothing measured is lost.

Schema (``SCHEMA_VERSION`` 3; a version-2 database is upgraded in place, it only gains a table):
    environments  id (content hash) -> fingerprint JSON
    runs          id, created_at, updated_at, status (running|interrupted|complete), plan JSON, environment
    cells         one row per (run, cell key, round): spec JSON, status, error, measurement JSON
    samples       raw timings of a cell row in measurement order: series "step" (seconds per step) and any
                  phase series (e.g. generation's "prefill", "decode_token")
    results       results that are not benchmark cells, one JSON document each, by kind ("export",
                  "loadtest", "parity", ...) and a key naming what was measured; newest wins per key
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from frameduel.errors import FrameduelError
from frameduel.spec import Measurement

SCHEMA_VERSION = 3
UPGRADABLE_VERSIONS = (0, 2)  # versions whose tables are a subset of this schema's
STEP_SERIES = "step"  # the samples series holding Measurement.step_seconds
DB_ENV_VAR = "FRAMEDUEL_DB"  # documented override of the default database location

SCHEMA = """
CREATE TABLE IF NOT EXISTS environments (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    plan TEXT NOT NULL,
    environment_id TEXT NOT NULL REFERENCES environments(id)
);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    cell_key TEXT NOT NULL,
    round INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    measurement TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    UNIQUE (run_id, cell_key, round)
);
CREATE TABLE IF NOT EXISTS samples (
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    series TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (cell_id, series, idx)
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    environment_id TEXT NOT NULL REFERENCES environments(id),
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_kind ON results (kind, key);
"""


BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another process's write lock before StoreBusy
# SQLite's primary result codes (the low byte of an extended one) that say what went wrong with the file.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 5, 6, 11, 13, 26
Method = TypeVar("Method", bound=Callable[..., Any])


class StoreBusy(FrameduelError):
    """Another process holds the database's write lock; the write can be retried later (runner/store_writer.py)."""


class StoreDamaged(FrameduelError):
    """The file is not an intact SQLite database; nothing is written to it."""


def damaged_message(path: Path, what: str, doing: str = "use") -> str:
    return (f"cannot {doing} results database {path}: it is damaged ({what}); frameduel left it as it is: restore a "
            f"copy, salvage what is readable with `sqlite3 {path} .recover` (or .dump), or pass --db NEW_PATH")


def store_error(path: Path, exc: sqlite3.Error, doing: str = "use") -> FrameduelError:
    """One line naming the file, what went wrong and the fix, for any error SQLite raised about it."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in str(exc):
        return StoreBusy(f"results database {path} is locked by another process ({exc}); close it there, or pass "
                         "--db PATH")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in str(exc) or "not a database" in str(exc):
        return StoreDamaged(damaged_message(path, str(exc), doing))
    if code == SQLITE_FULL:
        return FrameduelError(f"results database {path}: the disk is full ({exc}); free space on it, or pass --db "
                              "PATH on another disk")
    return FrameduelError(f"cannot {doing} results database {path}: {exc}; check the file and its disk, or pass --db "
                          "PATH")


def one_line_errors(method: Method) -> Method:
    """A Store method whose SQLite errors leave as store_error's one line (never a traceback)."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    return wrapper  # type: ignore[return-value]


def check_intact(path: Path) -> None:
    """Refuse a truncated database before anything is written to it. SQLite's header records the file's size in
    pages (valid while its change counter matches the version-valid-for number); a file shorter than that lost
    its end. A write-ahead log beside it may still hold pages a crash kept from the file: SQLite replays those."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError:
        return  # a missing file is a new database; an unreadable one fails in sqlite3.connect
    wal = path.with_name(path.name + "-wal")
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0") or (wal.exists() and wal.stat().st_size):
        return
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    if pages and change_counter == valid_for and size < pages * page_size:
        raise StoreDamaged(damaged_message(path, f"truncated: {size} of its {pages * page_size} bytes are left",
                                          "open"))


def default_db_path() -> Path:
    override = os.environ.get(DB_ENV_VAR)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("frameduel")) / "results.sqlite"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class RunRecord:
    id: str
    created_at: str
    updated_at: str
    status: str
    plan: dict[str, Any]
    environment: dict[str, Any]


@dataclass(frozen=True)
class StoredResult:
    id: int
    kind: str
    key: str
    created_at: str
    data: dict[str, Any]
    environment: dict[str, Any]


class Store:
    """Thin, explicit access to the results database. Open one per process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_intact(self.path)
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (*UPGRADABLE_VERSIONS, SCHEMA_VERSION):
                raise FrameduelError(f"results database {self.path} has schema version {version}, this frameduel "
                                     f"writes {SCHEMA_VERSION}; pass --db NEW_PATH")
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the writing scheduler
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            if version != SCHEMA_VERSION:  # an up-to-date file is not written to by opening it
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, "open") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Statements in the block wait at most `seconds` for another process's write lock (then StoreBusy)."""
        self.db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    # -- runs ------------------------------------------------------------------------------------
    def _save_environment(self, environment: dict[str, Any]) -> str:
        """Store a fingerprint once (the caller owns the transaction); return its content-hash id."""
        env_json = json.dumps(environment, sort_keys=True)
        env_id = hashlib.sha256(env_json.encode()).hexdigest()[:16]
        self.db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)", (env_id, env_json))
        return env_id

    @one_line_errors
    def create_run(self, run_id: str, plan: dict[str, Any], environment: dict[str, Any]) -> None:
        with self.db:
            env_id = self._save_environment(environment)
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, now_iso(), now_iso(), json.dumps(plan), env_id),
            )

    @one_line_errors
    def set_run_environment(self, run_id: str, environment: dict[str, Any]) -> None:
        """Replace a run's recorded environment (e.g. with the machine's readings after the run added)."""
        with self.db:
            env_id = self._save_environment(environment)
            self.db.execute("UPDATE runs SET environment_id = ? WHERE id = ?", (env_id, run_id))

    @one_line_errors
    def set_run_status(self, run_id: str, status: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), run_id)
            )

    @one_line_errors
    def get_run(self, run_id: str) -> RunRecord:
        row = self.db.execute(
            "SELECT r.id, r.created_at, r.updated_at, r.status, r.plan, e.data "
            "FROM runs r JOIN environments e ON e.id = r.environment_id WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise FrameduelError(f"no run '{run_id}' in {self.path}; list runs with: frameduel runs")
        return RunRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))

    @one_line_errors
    def list_runs(self) -> list[tuple[RunRecord, int]]:
        """All runs, newest first, each with its count of finished cell rounds."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created_at DESC, id DESC")]
        return [(self.get_run(run_id), self.count_finished(run_id)) for run_id in ids]

    # -- cells -----------------------------------------------------------------------------------
    @one_line_errors
    def save_measurement(self, run_id: str, round_index: int, measurement: Measurement) -> None:
        """Persist one finished cell round and its raw samples in a single transaction."""
        body = json.loads(measurement.to_json())
        series = {STEP_SERIES: body.pop("step_seconds"), **body.pop("series")}
        with self.db:
            self.forget_round(run_id, measurement.spec.key, round_index)
            cursor = self.db.execute(
                "INSERT INTO cells (run_id, cell_key, round, spec, status, error, measurement,"
                " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    measurement.spec.key,
                    round_index,
                    json.dumps(measurement.spec.to_dict()),
                    measurement.status,
                    measurement.error,
                    json.dumps(body),
                    now_iso(),
                ),
            )
            cell_id = cursor.lastrowid
            self.db.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?)",
                [(cell_id, name, i, s) for name, values in series.items() for i, s in enumerate(values)],
            )
            self.db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now_iso(), run_id))

    def forget_round(self, run_id: str, cell_key: str, round_index: int) -> None:
        """Delete one stored cell round and its samples (the caller owns the transaction)."""
        where = "WHERE run_id = ? AND cell_key = ? AND round = ?"
        key = (run_id, cell_key, round_index)
        self.db.execute(f"DELETE FROM samples WHERE cell_id IN (SELECT id FROM cells {where})", key)
        self.db.execute(f"DELETE FROM cells {where}", key)

    @one_line_errors
    def finished_rounds(self, run_id: str) -> set[tuple[str, int]]:
        rows = self.db.execute("SELECT cell_key, round FROM cells WHERE run_id = ?", (run_id,))
        return {(key, round_index) for key, round_index in rows}

    @one_line_errors
    def count_finished(self, run_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM cells WHERE run_id = ?", (run_id,)).fetchone()[0]

    @one_line_errors
    def measurements(self, run_id: str) -> list[tuple[int, Measurement]]:
        """Every stored (round, Measurement) of a run, raw samples included, in finishing order."""
        rows = self.db.execute(
            "SELECT id, round, measurement, spec FROM cells WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        result = []
        for cell_id, round_index, body_json, spec_json in rows:
            body = json.loads(body_json)
            body["spec"] = json.loads(spec_json)
            series: dict[str, list[float]] = {}
            for name, seconds in self.db.execute(
                "SELECT series, seconds FROM samples WHERE cell_id = ? ORDER BY series, idx", (cell_id,)
            ):
                series.setdefault(name, []).append(seconds)
            body["step_seconds"] = series.pop(STEP_SERIES, [])
            body["series"] = series
            result.append((round_index, Measurement.from_json(json.dumps(body))))
        return result


    # -- other results (export, load tests, parity) ----------------------------------------------
    @one_line_errors
    def save_result(self, kind: str, key: str, data: dict[str, Any], environment: dict[str, Any]) -> int:
        """Persist one non-cell result (e.g. kind "export", key "cnn-tiny-torch-onnx"); returns its id."""
        with self.db:
            env_id = self._save_environment(environment)
            cursor = self.db.execute(
                "INSERT INTO results (kind, key, created_at, environment_id, data) VALUES (?, ?, ?, ?, ?)",
                (kind, key, now_iso(), env_id, json.dumps(data, sort_keys=True)),
            )
        return int(cursor.lastrowid)

    @one_line_errors
    def results(self, kind: str, latest_per_key: bool = True) -> list[StoredResult]:
        """Stored results of one kind, oldest first; by default only the newest result per key."""
        rows = self.db.execute(
            "SELECT r.id, r.kind, r.key, r.created_at, r.data, e.data FROM results r "
            "JOIN environments e ON e.id = r.environment_id WHERE r.kind = ? ORDER BY r.id",
            (kind,),
        ).fetchall()
        records = [StoredResult(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5])) for row in rows]
        if latest_per_key:
            newest = {record.key: record for record in records}
            records = [record for record in records if newest[record.key] is record]
        return records


def open_store(db: Path | None = None) -> Store:
    """The results database at db (--db), else at default_db_path()."""
    return Store(db or default_db_path())
