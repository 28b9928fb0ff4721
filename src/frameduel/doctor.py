"""What makes this machine noisy for a benchmark, read before and after a run (`frameduel doctor`).

The way `pyperf system show` does it: every reading comes from /proc, /sys and the process table, none
changes the machine, and each problem found carries a one-line fix. A reading the machine does not expose
(a VM has no frequency governor) is said to be unreadable, never guessed. Framework-free.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from frameduel.environment import THREAD_ENV_VARS, cpu_info
from frameduel.errors import FrameduelError

# Other processes keeping this many cores busy, on average over the sampling window, make timings move.
BUSY_CORES_PROBLEM = 0.25  # = runner.contention.CONTENTION_THRESHOLD_CORES, the per-cell flag
BUSY_PROCESS_SHARE = 0.05  # a process is listed as busy above 5% of one core
STEAL_PROBLEM = 0.02  # the hypervisor running another guest on our vCPU 2% of the time
MEMORY_AVAILABLE_PROBLEM = 0.10  # under 10% of memory available: page reclaim during timed steps
PRESSURE_PROBLEM = 5.0  # PSI "some" avg10 (%): tasks stalled waiting for CPU or memory
SAMPLE_SECONDS = 1.0
# Threads of the frameworks' pools that spin (OpenMP's default) stall when a core is taken by another
# process: a passive policy or a low spin count changes what is measured (README, "Uncertainty").
THREAD_SETTING_PROBLEMS = {
    "OMP_WAIT_POLICY": ("PASSIVE", "workers sleep between parallel regions: small ops run several times slower"),
}


@dataclass(frozen=True)
class Problem:
    what: str  # the reading, in words
    fix: str  # one line a user can act on


@dataclass
class Diagnosis:
    cpu_model: str
    cpu_flags: list[str]  # the flags that decide kernels: AVX2/AVX-512/AMX, bf16/fp16
    logical_cores: int
    physical_cores: int | None
    affinity_cores: int
    cpu_quota_cores: float | None  # cgroup CPU quota in cores; None when unlimited or unreadable
    virtual_machine: bool
    governor: str | None  # None: not readable (no cpufreq, as in most VMs)
    turbo: str | None  # "on", "off", or None when not readable
    transparent_hugepages: str | None
    load_average: tuple[float, float, float]
    busy_cores: float  # other processes' average busy cores over the sampling window (steal included)
    steal_share: float  # share of the CPU time the hypervisor gave to other guests over the window
    busy_processes: list[dict[str, Any]]  # pid, name, cpu (cores), over the window
    memory_available_share: float
    swap_used_mb: float
    pressure: dict[str, float]  # PSI "some" avg10 per resource, where the kernel exposes it
    thread_settings: dict[str, str]
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_quota_cores() -> float | None:
    """The cgroup's CPU quota in cores (v2 cpu.max, or v1 cfs_quota_us / cfs_period_us); None when unlimited."""
    v2 = read_text("/sys/fs/cgroup/cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100000)
    quota, period = read_text("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), read_text("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def turbo_state() -> str | None:
    no_turbo = read_text("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo is not None:
        return "off" if no_turbo == "1" else "on"
    boost = read_text("/sys/devices/system/cpu/cpufreq/boost")
    return None if boost is None else ("on" if boost == "1" else "off")


def selected(setting: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise'."""
    if setting and "[" in setting:
        return setting.split("[", 1)[1].split("]", 1)[0]
    return setting


def pressure() -> dict[str, float]:
    found = {}
    for resource in ("cpu", "memory", "io"):
        text = read_text(f"/proc/pressure/{resource}")
        if text:
            some = text.splitlines()[0].split()
            found[resource] = float(dict(part.split("=") for part in some[1:])["avg10"])
    return found


def sample_cpu(seconds: float) -> tuple[float, float, list[dict[str, Any]]]:
    """(other processes' busy cores, steal share, busy processes) over `seconds` of wall time."""
    me = os.getpid()
    processes = {p.pid: p for p in psutil.process_iter(["name"]) if p.pid != me}
    before = {}
    for pid, process in processes.items():
        try:
            before[pid] = sum(process.cpu_times()[:2])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    total_0, own_0, wall_0 = psutil.cpu_times(), sum(psutil.Process().cpu_times()[:2]), time.perf_counter()
    time.sleep(seconds)
    total_1, own_1 = psutil.cpu_times(), sum(psutil.Process().cpu_times()[:2])
    wall = time.perf_counter() - wall_0
    busy = lambda t: sum(t) - t.idle - getattr(t, "iowait", 0.0)  # noqa: E731 - steal counts as busy
    others = max(0.0, (busy(total_1) - busy(total_0) - (own_1 - own_0)) / wall)
    all_time = sum(total_1) - sum(total_0)
    steal = (getattr(total_1, "steal", 0.0) - getattr(total_0, "steal", 0.0)) / all_time if all_time > 0 else 0.0
    listed = []
    for pid, start in before.items():
        try:
            used = (sum(processes[pid].cpu_times()[:2]) - start) / wall
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if used >= BUSY_PROCESS_SHARE:
            listed.append({"pid": pid, "name": processes[pid].info["name"], "cpu": round(used, 2)})
    return others, steal, sorted(listed, key=lambda p: -p["cpu"])


def diagnose(seconds: float = SAMPLE_SECONDS) -> Diagnosis:
    """Read the machine (sampling CPU use for `seconds`, > 0) and list its problems, each with a fix."""
    if not seconds > 0:
        raise FrameduelError(f"--seconds must be > 0, got {seconds:g}")
    info = cpu_info()
    flags = set((read_text("/proc/cpuinfo") or "").split("flags", 1)[-1].split("\n", 1)[0].split())
    busy, steal, processes = sample_cpu(seconds)
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    governors = {read_text(str(p)) for p in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")}
    diagnosis = Diagnosis(
        cpu_model=info["model"],
        cpu_flags=sorted(f for f in flags if f.startswith(("avx2", "avx512f", "avx512_bf16", "avx512_fp16",
                                                           "avx512_vnni", "amx", "avx_vnni"))),
        logical_cores=info["logical_cores"], physical_cores=info["physical_cores"],
        affinity_cores=info["affinity_cores"] or info["logical_cores"],
        cpu_quota_cores=cpu_quota_cores(), virtual_machine="hypervisor" in flags,
        governor=",".join(sorted(g for g in governors if g)) or None, turbo=turbo_state(),
        transparent_hugepages=selected(read_text("/sys/kernel/mm/transparent_hugepage/enabled")),
        load_average=tuple(round(x, 2) for x in os.getloadavg()), busy_cores=round(busy, 2),
        steal_share=round(steal, 4), busy_processes=processes,
        memory_available_share=round(memory.available / memory.total, 3), swap_used_mb=round(swap.used / 2**20, 1),
        pressure=pressure(),
        thread_settings={name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ},
    )
    diagnosis.problems = find_problems(diagnosis)
    return diagnosis


def find_problems(d: Diagnosis) -> list[Problem]:
    """Each reading that moves timings, with the one-line fix."""
    problems = []
    cores = d.affinity_cores
    if d.busy_cores > BUSY_CORES_PROBLEM:
        top = ", ".join(f"{p['name']} (pid {p['pid']}) {p['cpu']:.2f}" for p in d.busy_processes[:3])
        problems.append(Problem(f"machine busy: {d.busy_cores:.2f} of {cores} cores used by other processes"
                                + (f" ({top})" if top else ""),
                                "stop them, or compare with --threads matched to the free cores; frameduel re-runs "
                                "contended processes and says when the machine stayed busy"))
    if d.steal_share > STEAL_PROBLEM:
        problems.append(Problem(f"the hypervisor gave {d.steal_share:.1%} of this VM's CPU time to other guests "
                                "(steal)", "use a dedicated instance, or a larger --budget so more processes "
                                "average it out"))
    if d.cpu_quota_cores is not None and d.cpu_quota_cores < cores:
        problems.append(Problem(f"the cgroup allows {d.cpu_quota_cores:g} CPUs but {cores} cores are visible: "
                                f"{cores} threads get throttled", f"pass --threads {max(1, int(d.cpu_quota_cores))}"
                                " or raise the container's CPU limit"))
    if d.governor and d.governor != "performance":
        problems.append(Problem(f"CPU frequency governor is {d.governor}: clocks ramp during the timed steps",
                                "sudo cpupower frequency-set -g performance"))
    if d.turbo == "on":
        problems.append(Problem("turbo boost is on: the clock depends on temperature and the other cores' load",
                                "echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo (Intel) or "
                                "echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost"))
    if d.memory_available_share < MEMORY_AVAILABLE_PROBLEM:
        problems.append(Problem(f"only {d.memory_available_share:.0%} of memory is available: the kernel "
                                "reclaims pages during timed steps", "close memory-hungry programs"))
    for resource, stalled in d.pressure.items():
        if stalled >= PRESSURE_PROBLEM:
            problems.append(Problem(f"{resource} pressure: tasks stalled {stalled:.1f}% of the last 10 s waiting "
                                    f"for {resource}", "stop the other work before measuring"))
    for name, (value, why) in THREAD_SETTING_PROBLEMS.items():
        if d.thread_settings.get(name, "").upper() == value:
            problems.append(Problem(f"{name}={d.thread_settings[name]}: {why}", f"unset {name}"))
    return problems
