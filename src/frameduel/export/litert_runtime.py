"""LiteRT (TFLite) interpreter executing an exported .tflite artefact, through its one signature.

The signature runner resizes the input tensors when a call's batch differs from the last one, so a
flatbuffer converted with a dynamic batch axis accepts every batch size up to the manifest's
max_batch (resizing re-plans the tensors: alternating batch sizes costs an allocation per call).

Which ops ran outside XNNPACK: the interpreter applies its default XNNPACK delegate at the first
call (measured with ai-edge-litert 2.3.0: none before it, the same nodes after every later call and
resize), and each partition XNNPACK takes becomes one node named DELEGATE appended to the graph, whose
inputs and outputs are the partition's boundary tensors, while the replaced nodes stay listed. A node
is inside a partition when it is reached walking backwards from the delegate node's outputs (tensor ->
the node producing it -> its inputs) without crossing the delegate node's inputs; every node no
delegate reaches runs on LiteRT's own kernels (``delegation``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from frameduel.errors import FrameduelError
from frameduel.export.manifest import Manifest


class LiteRtRuntime:
    def __init__(self, directory: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        path = directory / manifest.artefact
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            signatures = self.interpreter.get_signature_list()
            if len(signatures) != 1:
                raise ValueError(f"expected one signature, found {sorted(signatures)}")
            self.runner = self.interpreter.get_signature_runner(next(iter(signatures)))
        except Exception as exc:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError on bad files
            raise FrameduelError(f"LiteRT cannot load {path}: {type(exc).__name__}: {exc}") from None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self.runner(**inputs))

    def delegation(self) -> dict[str, Any]:
        """After a call (the delegate is applied then): see the module docstring."""
        return delegation(self.interpreter._get_ops_details())  # the one op listing the interpreter offers


DELEGATE_NODE = "DELEGATE"  # the op name of a delegate's kernel node (the builtin code kTfLiteBuiltinDelegate)


def delegation(ops: list[dict[str, Any]]) -> dict[str, Any]:
    """{"partitions", "delegated_ops", "outside": {op: count}} of a delegated graph (module docstring)."""
    delegates = [op for op in ops if op["op_name"] == DELEGATE_NODE]
    originals = {op["index"]: op for op in ops if op["op_name"] != DELEGATE_NODE}
    producer = {tensor: index for index, op in originals.items() for tensor in op["outputs"]}
    inside: set[int] = set()
    for node in delegates:
        boundary, pending = set(node["inputs"]), list(node["outputs"])
        while pending:
            index = producer.get(pending.pop())
            if index is not None and index not in inside:
                inside.add(index)
                pending.extend(t for t in originals[index]["inputs"] if t not in boundary)
    outside = Counter(op["op_name"] for index, op in originals.items() if index not in inside)
    # The interpreter applies XNNPACK, its one default delegate; the Python API names no delegate further.
    return {"delegate": "XNNPACK" if delegates else "none", "partitions": len(delegates), "delegated_ops": len(inside),
            "outside": dict(sorted(outside.items())),
            "how": "LiteRT interpreter's node list: nodes reached backwards from a delegate node's outputs"}
