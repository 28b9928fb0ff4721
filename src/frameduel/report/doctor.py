"""`frameduel doctor` on the terminal and in the report: the machine's readings, then its problems with fixes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def doctor_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(reading, value) in the order people check them; from Diagnosis.to_dict(), so a stored one renders too."""
    quota = "unlimited" if d["cpu_quota_cores"] is None else f"{d['cpu_quota_cores']:g} CPUs"
    pressure = ", ".join(f"{name} {value:.1f}%" for name, value in d["pressure"].items()) or "not exposed"
    busy = ", ".join(f"{p['name']} ({p['pid']}) {p['cpu']:.2f}" for p in d["busy_processes"][:5]) or "none"
    return [
        ("CPU", f"{d['cpu_model']} ({'virtual machine' if d['virtual_machine'] else 'bare metal'})"),
        ("kernel-relevant flags", " ".join(d["cpu_flags"]) or "none of AVX2/AVX-512/AMX"),
        ("cores", f"{d['logical_cores']} logical, {d['physical_cores']} physical, {d['affinity_cores']} usable; "
                  f"cgroup quota {quota}"),
        ("frequency", f"governor {d['governor'] or 'not readable'}, turbo {d['turbo'] or 'not readable'}"),
        ("transparent huge pages", d["transparent_hugepages"] or "not readable"),
        ("load average (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in d["load_average"])),
        ("other processes' CPU now", f"{d['busy_cores']:.2f} cores (steal {d['steal_share']:.1%})"),
        ("busy processes (cores)", busy),
        ("memory", f"{d['memory_available_share']:.0%} available, swap used {d['swap_used_mb']:g} MB"),
        ("pressure (PSI some, avg10)", pressure),
        ("thread settings", ", ".join(f"{k}={v}" for k, v in d["thread_settings"].items()) or "framework defaults"),
    ]


def problem_lines(d: dict[str, Any]) -> list[str]:
    return [f"{p['what']}; fix: {p['fix']}" for p in d["problems"]]


def print_doctor(console: Console, d: dict[str, Any], title: str = "This machine") -> None:
    table = Table(title=title, show_header=False, box=None, padding=(0, 1), title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, value in doctor_rows(d):
        table.add_row(name, value)
    console.print(table)
    lines = problem_lines(d)
    if not lines:
        console.print("[green]No problem found[/green]: nothing here should move timings between processes.")
    for line in lines:
        console.print(f"[yellow]problem:[/yellow] {line}", highlight=False, soft_wrap=True)
