"""The one result of every job: status, error line, data, files; written then renamed, read back by the parent."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frameduel.spec import STATUSES


@dataclass(frozen=True)
class Envelope:
    status: str  # one of spec.STATUSES: ok, failed, oom, timeout, unsupported
    error: str | None = None  # the key line of what went wrong, for people
    data: dict[str, Any] = field(default_factory=dict)  # the kind's own result
    files: list[str] = field(default_factory=list)  # what the job wrote beside its result, relative to workdir

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown job status '{self.status}'; one of {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Envelope:
        return cls(**json.loads(text))


def write_envelope(path: Path, envelope: Envelope) -> None:
    """Written then renamed: the parent never reads half a result."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(envelope.to_json())
    tmp.replace(path)


def read_envelope(path: Path) -> Envelope | None:
    return Envelope.from_json(path.read_text()) if path.exists() else None
