"""Registry of built-in workloads; a dotted module path names a user's plugin (see plugins.py)."""

from __future__ import annotations

from frameduel.errors import FrameduelError
from frameduel.workloads.base import Batch, OptimizerConfig, Workload
from frameduel.workloads.cnn import CNN_WORKLOAD
from frameduel.workloads.gemm import GEMM_WORKLOAD
from frameduel.workloads.gpt import GPT_WORKLOAD
from frameduel.workloads.llama import LLAMA_WORKLOAD
from frameduel.workloads.lstm import LSTM_WORKLOAD
from frameduel.workloads.mlp import MLP_WORKLOAD
from frameduel.workloads.plugins import load_plugin, module_exists
from frameduel.workloads.transformer import TRANSFORMER_WORKLOAD

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (MLP_WORKLOAD, CNN_WORKLOAD, TRANSFORMER_WORKLOAD, GPT_WORKLOAD, LLAMA_WORKLOAD, LSTM_WORKLOAD,
              GEMM_WORKLOAD)
}

__all__ = ["Batch", "OptimizerConfig", "Workload", "WORKLOADS", "get_workload"]


def get_workload(name: str) -> Workload:
    """Look a workload up by name (or plugin module path), with an error that lists what exists."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    if "." in name or module_exists(name):
        return load_plugin(name)
    raise FrameduelError(
        f"unknown workload '{name}'; choose from: {', '.join(WORKLOADS)}, or a plugin module path (my_pkg.my_model)"
    )
