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

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        try:
            self.db = sqlite3.connect(self.path)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (*UPGRADABLE_VERSIONS, SCHEMA_VERSION):
                raise FrameduelError(f"results database {self.path} has schema version {version}, this frameduel "
                                     f"writes {SCHEMA_VERSION}; pass --db NEW_PATH")
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the writing scheduler
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise FrameduelError(f"cannot open results database {self.path}: {exc}; pass --db PATH") from None

    def close(self) -> None:
        self.db.close()

    # -- runs ------------------------------------------------------------------------------------
    def _save_environment(self, environment: dict[str, Any]) -> str:
        """Store a fingerprint once (the caller owns the transaction); return its content-hash id."""
        env_json = json.dumps(environment, sort_keys=True)
        env_id = hashlib.sha256(env_json.encode()).hexdigest()[:16]
        self.db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)", (env_id, env_json))
        return env_id

    def create_run(self, run_id: str, plan: dict[str, Any], environment: dict[str, Any]) -> None:
        with self.db:
            env_id = self._save_environment(environment)
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, now_iso(), now_iso(), json.dumps(plan), env_id),
            )

    def set_run_environment(self, run_id: str, environment: dict[str, Any]) -> None:
        """Replace a run's recorded environment (e.g. with the machine's readings after the run added)."""
        with self.db:
            env_id = self._save_environment(environment)
            self.db.execute("UPDATE runs SET environment_id = ? WHERE id = ?", (env_id, run_id))

    def set_run_status(self, run_id: str, status: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), run_id)
            )

    def get_run(self, run_id: str) -> RunRecord:
        row = self.db.execute(
            "SELECT r.id, r.created_at, r.updated_at, r.status, r.plan, e.data "
            "FROM runs r JOIN environments e ON e.id = r.environment_id WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise FrameduelError(f"no run '{run_id}' in {self.path}; list runs with: frameduel runs")
        return RunRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))

    def list_runs(self) -> list[tuple[RunRecord, int]]:
        """All runs, newest first, each with its count of finished cell rounds."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created_at DESC, id DESC")]
        return [(self.get_run(run_id), self.count_finished(run_id)) for run_id in ids]

    # -- cells -----------------------------------------------------------------------------------
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

    def finished_rounds(self, run_id: str) -> set[tuple[str, int]]:
        rows = self.db.execute("SELECT cell_key, round FROM cells WHERE run_id = ?", (run_id,))
        return {(key, round_index) for key, round_index in rows}

    def count_finished(self, run_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM cells WHERE run_id = ?", (run_id,)).fetchone()[0]

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
    def save_result(self, kind: str, key: str, data: dict[str, Any], environment: dict[str, Any]) -> int:
        """Persist one non-cell result (e.g. kind "export", key "cnn-tiny-torch-onnx"); returns its id."""
        with self.db:
            env_id = self._save_environment(environment)
            cursor = self.db.execute(
                "INSERT INTO results (kind, key, created_at, environment_id, data) VALUES (?, ?, ?, ?, ?)",
                (kind, key, now_iso(), env_id, json.dumps(data, sort_keys=True)),
            )
        return int(cursor.lastrowid)

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
