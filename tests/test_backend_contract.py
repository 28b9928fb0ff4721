"""Every backend module exposes the same public functions with the same arguments (Keras 3's backend
pattern), read from the source, so that no framework is imported here: a function a module imports
from another frameduel.frameworks module (keras_common's, shared by the Keras backends) counts as its own."""

from __future__ import annotations

import ast
from pathlib import Path

from frameduel.frameworks import BACKEND_CONTRACT
from frameduel.spec import FRAMEWORK_INFO

FRAMEWORKS_DIR = Path(__file__).resolve().parents[1] / "src" / "frameduel" / "frameworks"


def public_functions(module: str) -> dict[str, list[str]]:
    """name -> argument names of every public function the module defines or imports from a sibling."""
    tree = ast.parse((FRAMEWORKS_DIR / f"{module}.py").read_text())
    found = {node.name: [arg.arg for arg in node.args.args] for node in tree.body
             if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("frameduel.frameworks."):
            sibling = public_functions(node.module.rsplit(".", 1)[-1])
            for alias in node.names:
                if alias.name == "*":
                    found.update(sibling)
                elif alias.name in sibling and not (alias.asname or alias.name).startswith("_"):
                    found[alias.asname or alias.name] = sibling[alias.name]
    return found


def test_every_backend_has_the_contract_with_the_same_arguments():
    apis = {name: public_functions(info.backend_module.rsplit(".", 1)[-1]) for name, info in FRAMEWORK_INFO.items()}
    reference = apis["torch"]
    for framework, api in apis.items():
        missing = set(BACKEND_CONTRACT) - set(api)
        assert not missing, f"{framework} lacks {sorted(missing)}"
        for name in BACKEND_CONTRACT:
            assert api[name] == reference[name], (framework, name)
