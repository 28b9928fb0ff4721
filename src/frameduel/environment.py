"""What machine and software a run measured: the environment fingerprint, and device capabilities.

Framework-free on purpose: versions come from package metadata and the GPU from nvidia-smi, so the
parent process never imports torch or TensorFlow (each worker reports what it actually used).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

import psutil

from frameduel.errors import FrameduelError

PACKAGES = ("torch", "tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "numpy", "frameduel")
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
    "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "CUDA_VISIBLE_DEVICES",
    # Thread placement and waiting move a cell between processes (README, "Uncertainty across processes").
    "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_AFFINITY", "KMP_BLOCKTIME",
)
# CPU flags that mean native (not emulated) low-precision matrix math.
CPU_PRECISION_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}
MIN_CUDA_CAPABILITY = {"bf16": 8.0, "fp16": 5.3}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {
        "model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "precision_flags": sorted(f for names in CPU_PRECISION_FLAGS.values() for f in names if f in flags),
    }


@functools.cache
def gpu_info() -> list[dict[str, Any]]:
    """GPUs as nvidia-smi sees them; empty when there is no NVIDIA driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "name,driver_version,memory.total,compute_cap"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, memory_mb, capability = [part.strip() for part in line.split(",")]
        gpus.append({"name": name, "driver": driver, "memory_mb": float(memory_mb),
                     "compute_capability": float(capability)})
    return gpus


def default_device() -> str:
    return "cuda" if gpu_info() else "cpu"


def default_threads() -> int:
    return cpu_info()["affinity_cores"] or cpu_info()["logical_cores"] or 1


def precision_supported(precision: str, device: str) -> bool:
    """fp32 and fp64 always; bf16/fp16 only where the hardware does them natively (emulation measures nothing)."""
    if precision in ("fp32", "fp64"):
        return True
    if device == "cuda":
        gpus = gpu_info()
        return bool(gpus) and gpus[0]["compute_capability"] >= MIN_CUDA_CAPABILITY[precision]
    return any(flag in cpu_info()["precision_flags"] for flag in CPU_PRECISION_FLAGS[precision])


def check_device(device: str) -> None:
    if device == "cuda" and not gpu_info():
        raise FrameduelError("device 'cuda' requested but no NVIDIA GPU was found; use --device cpu")


def check_precision(precision: str, device: str) -> None:
    if not precision_supported(precision, device):
        raise FrameduelError(
            f"precision '{precision}' is not supported natively on this {device}; use --precisions fp32"
        )


def fingerprint() -> dict[str, Any]:
    """Everything that can change a timing, recorded with every run."""
    memory = psutil.virtual_memory()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu_info(),
        "memory_gb": round(memory.total / 2**30, 1),
        "gpus": gpu_info(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "default_threads": default_threads(),
        "env": {name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ},
    }


# What may differ between two machines whose timings are still comparable: their names, and the readings
# `frameduel doctor` took around a run (load, busy processes), which change from minute to minute.
NOT_MACHINE_CLASS = ("hostname", "doctor")


def machine_class(environment: dict[str, Any]) -> str:
    """A short hash of everything in a fingerprint that can change a timing (hardware, software, thread
    settings; not the host name): two cells may be compared only if they ran on the same class."""
    relevant = {key: value for key, value in environment.items() if key not in NOT_MACHINE_CLASS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
