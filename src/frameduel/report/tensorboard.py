"""Write a run's results as TensorBoard scalars, without TensorFlow or tensorboard installed.

An event file is a TFRecord stream of `Event` protocol buffers. Only three small messages are needed
(Event, Summary, Summary.Value), so they are encoded here by hand — keeping the parent process
framework-free — and the tests read the file back with TensorBoard's own loader.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from frameduel.analysis.summary import RunSummary

# -- protobuf wire format: just varints, doubles, floats and length-delimited fields --------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """Event{wall_time=1 (double), step=2 (int64), summary=5 {value=1 {tag=1, simple_value=2 (float)}}}."""
    summary_value = field_bytes(1, tag.encode()) + varint(2 << 3 | 5) + struct.pack("<f", value)
    summary = field_bytes(1, summary_value)
    return varint(1 << 3 | 1) + struct.pack("<d", wall_time) + varint(2 << 3) + varint(step) + field_bytes(5, summary)


def version_event(wall_time: float) -> bytes:
    """The first record of every event file: Event{wall_time, file_version=3 "brain.Event:2"}."""
    return varint(1 << 3 | 1) + struct.pack("<d", wall_time) + field_bytes(3, b"brain.Event:2")


# -- TFRecord framing: length, masked CRC-32C of the length, data, masked CRC-32C of the data -------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# -- what frameduel writes -------------------------------------------------------------------------


def run_scalars(summary: RunSummary) -> dict[str, float]:
    """Tags grouped as <comparison group>/<framework> <mode>/<metric>, and speedups per group."""
    scalars: dict[str, float] = {}
    for cell in summary.cells:
        if cell.step is None:
            continue
        prefix = f"{cell.spec.comparison_group}/{cell.spec.framework} {cell.spec.mode}"
        scalars[f"{prefix}/step_ms"] = cell.step.median * 1e3
        scalars[f"{prefix}/throughput"] = cell.throughput
        for name, value in (("compile_s", cell.compile_s), ("peak_rss_mb", cell.peak_rss_mb),
                            ("gflops", cell.gflops)):
            if value is not None:
                scalars[f"{prefix}/{name}"] = value
    for ratio in summary.ratios:
        scalars[f"{ratio.group}/speedup/{ratio.label}"] = ratio.value
    return scalars


def write_tensorboard(summary: RunSummary, run_id: str, logdir: Path) -> Path:
    """One event file per run under logdir/<run_id>/, so several runs show side by side."""
    run_dir = logdir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = run_dir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.frameduel"
    records = [version_event(now)] + [scalar_event(tag, value, 0, now) for tag, value in run_scalars(summary).items()]
    path.write_bytes(b"".join(tfrecord(record) for record in records))
    return path
