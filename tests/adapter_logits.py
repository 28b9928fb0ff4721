"""Logits of a checkpoint with a PEFT adapter in one framework, for tests/test_lora.py.

    python -m tests.adapter_logits FRAMEWORK OUT.npz IDS.npy CHECKPOINT ADAPTER_DIR

Runs in a process of its own (one framework per process). Writes, per precision (fp32, fp64):
``adapted/<precision>``, the LoRA model with the adapter loaded, and ``merged/<precision>``, the plain
model with the adapter merged into its weights by checkpoints.adapters.merge_adapter.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from frameduel.checkpoints import open_checkpoint
from frameduel.checkpoints.adapters import merge_adapter, read_adapter
from frameduel.frameworks import load_adapter, load_backend
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from frameduel.workloads.base import Batch


def main(framework: str, out: str, ids_path: str, checkpoint: str, adapter_dir: str) -> None:
    backend = load_backend(framework)
    ids = np.load(ids_path)
    workload = get_workload(open_checkpoint(checkpoint).workload)
    settings, adapter = read_adapter(Path(adapter_dir))
    plain = RunSpec(workload=workload.name, framework=framework, mode="eager", task="infer",
                    batch_size=ids.shape[0], checkpoint=checkpoint)
    backend.configure(plain)
    batch = Batch(ids, ids.reshape(-1))
    logits = {}
    for precision in ("fp32", "fp64"):
        adapted = dataclasses.replace(plain, task="finetune", lora=settings, precision=precision)
        backend.use_precision(adapted)
        model = backend.build_model(workload, adapted)
        load_adapter(backend, workload, model, {k: v.astype(np.float64 if precision == "fp64" else np.float32)
                                                for k, v in adapter.items()})
        backend.set_training(model, False)
        logits[f"adapted/{precision}"] = backend.forward(workload, adapted, model, batch)
        merged_spec = dataclasses.replace(plain, precision=precision)
        merged = backend.build_model(workload, merged_spec)
        backend.import_weights(workload, merged, merge_adapter(backend.export_weights(workload, model), settings))
        backend.set_training(merged, False)
        logits[f"merged/{precision}"] = backend.forward(workload, merged_spec, merged, batch)
    np.savez(out, **logits)


if __name__ == "__main__":
    main(*sys.argv[1:6])
