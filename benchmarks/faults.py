"""Faults injected into real frameduel processes, one row each: what was injected, how it was detected, what the
user saw, what was lost (must be nothing) and how long until whole again; then the server's peak memory under
each hostile input.

    .venv/bin/python benchmarks/faults.py                      # everything, ~5 min on 2 cores
    .venv/bin/python benchmarks/faults.py --groups store,serve # some of: store, serve, hostile, cluster
    .venv/bin/python benchmarks/faults.py --json faults.json   # also every row's details

The scenarios are the fault suite's own (tests/faults/*_scenarios.py): the tests assert on the same rows.
Run from the repository root (they start `python -m tests.faults.server_main` and the CLI).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `tests` is a package there

from tests.faults import cluster_scenarios, hostile_scenarios, serve_scenarios, store_scenarios  # noqa: E402
from tests.faults.support import FaultRow  # noqa: E402

Scenario = Callable[[Path], "FaultRow | list[FaultRow]"]


def with_cluster(scenario: Callable) -> Scenario:
    def run(tmp: Path) -> FaultRow:
        with cluster_scenarios.ray_cluster() as cluster:
            return scenario(tmp, cluster)

    return run


GROUPS: dict[str, list[Scenario]] = {
    "store": [store_scenarios.store_locked, store_scenarios.disk_full, store_scenarios.interrupted_runs,
              store_scenarios.truncated_database],
    "serve": [serve_scenarios.runtime_raises, serve_scenarios.runtime_hangs, serve_scenarios.load_failures,
              serve_scenarios.sigterm_under_load, serve_scenarios.auth_faults],
    "hostile": [hostile_scenarios.hostile_inputs],
    "cluster": [with_cluster(cluster_scenarios.node_lost_mid_compare),
                with_cluster(cluster_scenarios.node_lost_mid_sweep)],
}


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def print_rows(rows: list[FaultRow]) -> None:
    print("| fault | injected | detected as | user-visible result | lost | recover |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if row.fault.startswith("hostile: ") and "slowloris" not in row.fault:
            continue  # one table of their own below
        recover = "-" if row.recover_s is None else f"{row.recover_s:.1f} s"
        print(f"| {cell(row.fault)} | {cell(row.injected)} | {cell(row.detected_as)} | {cell(row.result)} | "
              f"{row.lost} | {recover} |")


def print_hostile(rows: list[FaultRow]) -> None:
    hostile = [row for row in rows if row.fault.startswith("hostile: ")]
    if not hostile:
        return
    print("\n| hostile input | answer | server RSS MB: before, peak | next request | opened outside |")
    print("|---|---|---|---|---|")
    for row in hostile:
        d = row.details
        print(f"| {cell(row.injected)} | {cell(row.result)} | {d['rss_before_mb']:.0f}, {d['peak_rss_mb']:.0f} | "
              f"{d.get('after', '-')} | {len(d.get('opened_outside') or [])} |")
    print(f"\n(the server at rest, models loaded: {hostile[0].details['baseline_rss_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated: {', '.join(GROUPS)}")
    parser.add_argument("--json", type=Path, help="write every row, with its details, to this file")
    args = parser.parse_args()
    rows: list[FaultRow] = []
    seconds: dict[str, float] = {}
    for group in args.groups.split(","):
        started = time.monotonic()
        for scenario in GROUPS[group]:
            with tempfile.TemporaryDirectory(prefix="frameduel-faults-") as tmp:
                result = scenario(Path(tmp))
            rows += result if isinstance(result, list) else [result]
            print(f"done: {rows[-1].fault} ({time.monotonic() - started:.0f} s into {group})", file=sys.stderr)
        seconds[group] = time.monotonic() - started
    print_rows(rows)
    print_hostile(rows)
    lost = sum(row.lost for row in rows)
    print(f"\n{len(rows)} faults, {lost} lost; " + ", ".join(f"{g} {s:.0f} s" for g, s in seconds.items()))
    if args.json:
        args.json.write_text(json.dumps([row.to_dict() for row in rows], indent=2, default=str))


if __name__ == "__main__":
    main()
