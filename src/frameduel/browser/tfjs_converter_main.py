"""tensorflowjs_converter, run by the converter venv's own Python (it imports nothing of frameduel's).

tensorflowjs 4.22.0 imports tensorflow_decision_forests at the top of its SavedModel converter, for
SavedModels that hold decision-forest ops. frameduel's SavedModels hold none, and TF-DF 1.12.0
(the release for TF 2.19) aborts the process when it loads: its two op libraries register the same
yggdrasil protos twice ("File already exists in database: .../weight.proto", a protobuf CHECK
failure) with tensorflow-cpu 2.19.0 and protobuf 6.31.1. So TF-DF is not installed, and its name is
bound to an empty module before the converter loads; a SavedModel that did need its ops would fail
to convert, with that op named in the error.

It also corrects one pass of the converter. normalize_bias_add turns every Add that follows a Conv2D or
MatMul into a BiasAdd, which grappler then fuses into the conv as its bias, even when the other operand
is not a bias at all: in a residual block, conv + BatchNorm (folded) + the skip connection + ReLU
became a _FusedConv2D whose "bias" is the rank-4 skip tensor. WebGL and the CPU backend broadcast it;
TF.js's wasm backend refuses it ("FusedConv2D only supports rank-1 bias but got rank 4"), so the CNN
exported from either framework could not run there. The corrected pass renames an Add only when its
second operand is a rank-1 constant, which is what BiasAdd means; any other Add stays an Add.
"""

import sys
import types

sys.modules["tensorflow_decision_forests"] = types.ModuleType("tensorflow_decision_forests")

from tensorflowjs.converters import graph_rewrite_util, normalize_bias_add  # noqa: E402
from tensorflowjs.converters.converter import pip_main  # noqa: E402 - after the module above is bound

FUSABLE_PARENTS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def is_rank1_constant(node_map, name):
    node = graph_rewrite_util.node_from_map(node_map, name)
    return node.op == "Const" and len(node.attr["value"].tensor.tensor_shape.dim) == 1


def normalize_bias_add_op(graph_def):
    """normalize_bias_add.normalize_bias_add_op, renaming an Add to BiasAdd only when it adds a rank-1 constant."""
    node_map = {node.name: node for node in graph_def.node}
    for node in graph_def.node:
        if node.op not in ("AddV2", "Add") or not is_rank1_constant(node_map, node.input[1]):
            continue
        parent = graph_rewrite_util.node_from_map(node_map, node.input[0])
        if parent.op in FUSABLE_PARENTS and len(graph_rewrite_util.get_output_node_names(node_map, parent.name)) == 1:
            node.op = "BiasAdd"
            node.attr["data_format"].s = b"NHWC"
    return graph_def


normalize_bias_add.normalize_bias_add_op = normalize_bias_add_op  # the SavedModel converter calls it by module

if __name__ == "__main__":
    sys.exit(pip_main())
