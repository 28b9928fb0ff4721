"""Logits of checkpoints loaded into one framework, for the reference tests (tests/test_llm_checkpoints.py).

    python -m tests.llm_reference FRAMEWORK OUT.npz IDS.npy DIR [DIR ...]

Runs in a process of its own, as every frameduel worker does: one framework per process. Writes
``<dir name>/<precision>`` -> logits (B*T, vocab) for fp32 and fp64.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from frameduel.frameworks import load_backend
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from frameduel.workloads.base import Batch

PRECISIONS = ("fp32", "fp64")


def main(framework: str, out: str, ids_path: str, directories: list[str]) -> None:
    from frameduel.checkpoints import open_checkpoint

    backend = load_backend(framework)
    ids = np.load(ids_path)
    backend.configure(RunSpec(workload="llama", framework=framework, mode="eager", task="infer"))
    logits = {}
    for directory in directories:
        workload = get_workload(open_checkpoint(directory).workload)
        for precision in PRECISIONS:
            spec = RunSpec(workload=workload.name, framework=framework, mode="eager", task="infer",
                           precision=precision, batch_size=ids.shape[0], checkpoint=directory)
            backend.use_precision(spec)
            model = backend.build_model(workload, spec)
            backend.set_training(model, False)
            logits[f"{Path(directory).name}/{precision}"] = backend.forward(workload, spec, model,
                                                                          Batch(ids, ids.reshape(-1)))
    np.savez(out, **logits)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
