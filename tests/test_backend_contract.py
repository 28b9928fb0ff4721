"""torch_backend and tf_backend expose the same public functions (Keras 3's backend pattern), read from
their source so that neither framework is imported here."""

from __future__ import annotations

import ast
from pathlib import Path

FRAMEWORKS_DIR = Path(__file__).resolve().parents[1] / "src" / "frameduel" / "frameworks"


def public_functions(module: str) -> dict[str, list[str]]:
    tree = ast.parse((FRAMEWORKS_DIR / f"{module}.py").read_text())
    return {node.name: [arg.arg for arg in node.args.args] for node in tree.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}


def test_both_backends_have_the_same_public_functions_and_arguments():
    torch_api, tf_api = public_functions("torch_backend"), public_functions("tf_backend")
    shared = {"configure", "use_precision", "build_model", "to_tensors", "make_optimizer", "make_train_fn",
              "make_infer_fn", "make_step", "make_generation", "compile_facts", "set_training", "to_numpy",
              "peak_device_memory_mb", "is_out_of_memory", "export_weights", "import_weights", "shared_weights",
              "forward", "capture_activations", "optimizer_state", "align_adam_epsilon"}
    assert shared <= set(torch_api) and shared <= set(tf_api)
    for name in shared:
        assert torch_api[name] == tf_api[name], name
