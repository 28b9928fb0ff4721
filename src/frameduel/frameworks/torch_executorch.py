"""ExecuTorch programs (.pte) of a torch model, lowered to ExecuTorch's XNNPACK delegate.

    torch.export -> [PT2E int8] -> to_edge_transform_and_lower(XnnpackPartitioner) -> to_executorch -> .pte

The int8 formats go through torchao's PT2E flow with ExecuTorch's XNNPACKQuantizer (symmetric, int8
weights per output channel), the counterparts of LiteRT's two int8 formats:

    executorch-int8-dynamic   activations quantized per call from their own range    (~ tflite-int8)
    executorch-int8           activation ranges calibrated on the representative      (~ tflite-int8-full)
                              inputs, int8 between ops

What the quantizer leaves unannotated (embeddings, LayerNorm, softmax) stays float32, as in LiteRT.
Where the ops run is decided here, at lowering: get_delegation_info says which XNNPACK took and which
stay on ExecuTorch's portable kernels (Manifest.delegation). A program with an op that neither has is
refused here, naming the op (check_program), rather than written for the runtime to fail on.

The runtime that runs a .pte is executorch_runtime.py. Imported by torch_export.py, this module
imports ExecuTorch only when a program is written, so torch's other formats need no `edge` extra.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARTEFACT_FILE = "model.pte"
METHOD = "forward"  # torch.export's one method
QUANTIZATION = {
    "executorch-int8-dynamic": {"weights": "int8 per output channel (linear, conv)",
                                "activations": "float32 (quantized per call, dynamic range)", "io": "float32"},
    "executorch-int8": {"weights": "int8 per output channel (linear, conv)",
                        "activations": "int8 where XNNPACKQuantizer annotates (linear, conv, add, ...), else float32",
                        "io": "float32 (quantize/dequantize at the edges)"},
}
# Nodes get_delegation_info counts as not delegated that run no kernel: tuple indexing, and Python arithmetic
# on symbolic sizes (the dynamic batch axis: B * heads), which the runtime does as scalar instructions.
NOT_KERNELS = ("getitem", "sym_size", "executorch_call_delegate", "mul", "add", "sub", "floordiv", "truediv", "mod")
OP_NAME = re.compile(r"\b(?:aten|quantized_decomposed|torchao|dim_order_ops)(?:::|\.)[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?")


def write_program(fmt: str, model: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: tuple,
                  calibration: np.ndarray, max_batch: int, path: Path) -> dict[str, Any]:
    """Lower model to an XNNPACK-delegated .pte at path; returns the manifest facts (quantization, delegation)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    # exir re-runs the graph on fake tensors, and ATen's CPU convolution picks its backend by the batch size
    # (NNPACK and oneDNN at batch >= 16): with the batch symbolic, that choice became a guard (batch < 16,
    # true of the traced sample) that cut the planned batch axis to 15. With both off nothing asks.
    with torch.no_grad(), torch.backends.nnpack.flags(enabled=False), torch.backends.mkldnn.flags(enabled=False):
        program = torch.export.export(model, args, dynamic_shapes=dynamic)
        if fmt in QUANTIZATION:
            quantized = quantize(program.module(), fmt == "executorch-int8-dynamic", calibration, max_batch)
            program = torch.export.export(quantized, args, dynamic_shapes=dynamic)
        try:  # exir raises many types; the user needs the op it stopped at
            # Measured with executorch 1.5.1: with its IR validity check on, to_edge specialises the batch axis
            # of a graph holding aten.split (the transformer's q, k, v) to the traced sample's size. Without it
            # the axis stays 1..max_batch, which check_program verifies and the gate runs at 1, 2 and max.
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                               compile_config=EdgeCompileConfig(_check_ir_validity=False))
            placed = delegation(edge.exported_program().graph_module)  # before to_executorch plans memory
            program_manager = edge.to_executorch()
        except Exception as exc:  # noqa: BLE001 - see above
            raise ValueError(lowering_error(exc)) from None
    check_program(program_manager, max_batch)
    path.write_bytes(program_manager.buffer)
    facts: dict[str, Any] = {"delegation": placed}
    if fmt in QUANTIZATION:
        facts["quantization"] = dict(QUANTIZATION[fmt])
        if fmt == "executorch-int8":
            facts["quantization"]["calibration"] = f"{len(calibration)} representative inputs"
    return facts


def quantize(module: torch.nn.Module, dynamic: bool, calibration: np.ndarray, max_batch: int) -> torch.nn.Module:
    """PT2E: annotate with XNNPACKQuantizer, observe the calibration inputs, convert to quantize/dequantize ops."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                               is_dynamic=dynamic))
    prepared = prepare_pt2e(module, quantizer)
    # Observers record as the model runs, the weights' too: dynamic int8 needs a pass as well (its activations
    # then take their range per call, so only the weights' observations reach the program).
    for start in range(0, len(calibration), max_batch):  # the program's batch axis goes up to max_batch
        prepared(torch.from_numpy(np.ascontiguousarray(calibration[start : start + max_batch])))
    return convert_pt2e(prepared)


def delegation(graph_module: torch.fx.GraphModule) -> dict[str, Any]:
    """Which ops XNNPACK took, and which stayed on portable kernels ({op: count}), from the lowered program."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    outside = {op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items())
               if b.non_delegated and op not in NOT_KERNELS}
    return {"delegate": "XNNPACK", "partitions": info.num_delegated_subgraphs,
            "delegated_ops": info.num_delegated_nodes, "outside": outside,
            "how": "executorch.devtools.backend_debug.get_delegation_info on the lowered program"}


def check_program(program_manager: Any, max_batch: int) -> None:
    """Refuse a program the runtime cannot run as the manifest says, naming why: an op left outside XNNPACK
    needs a kernel of ExecuTorch's own, and exir writes the program whether or not the runtime has one
    (aten::median.dim_values, linalg's det and eigvalsh, special.erfinv have none in 1.5.1: loading then
    fails with "error 0x14", naming no op); and its input must be planned for the whole batch axis."""
    from executorch.runtime import Runtime

    runtime = Runtime.get()
    wanted = {f"{op.name}.{op.overload}" if op.overload else op.name
              for plan in program_manager.executorch_program.execution_plan for op in plan.operators}
    missing = sorted(wanted - runtime.operator_registry.operator_names)
    if missing:
        them = "them" if len(missing) > 1 else "it"
        raise ValueError(f"ExecuTorch cannot run {', '.join(missing)}: its runtime has no kernel for {them} and "
                         f"XNNPACK does not take {them} (export to onnx or tflite instead)")
    planned = runtime.load_program(program_manager.buffer).metadata(METHOD).input_tensor_meta(0).sizes()[0]
    if planned != max_batch:
        raise ValueError(f"ExecuTorch planned the batch axis up to {planned}, not --max-batch {max_batch}: a guard "
                         "on the batch size while lowering narrowed it")


def lowering_error(exc: BaseException) -> str:
    """One line naming the op(s) ExecuTorch could not lower, when its message names any."""
    message = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    ops = sorted(set(OP_NAME.findall(str(exc))))
    named = f" {', '.join(ops[:3])}" if ops else ""
    return f"ExecuTorch cannot lower{named}: {type(exc).__name__}: {message[:300]}"
