"""Bring your own workload: `frameduel compare --workloads my_pkg.my_model`.

A plugin is an importable module that defines ``WORKLOAD = frameduel.workloads.Workload(...)``,
exactly like the built-in workloads do (see workloads/mlp/): presets per size, a data maker, and one
model module per framework exposing ``build(config)`` and ``to_native_layout(inputs)``. Weight
transfer for `frameduel parity` additionally needs ``weight_map``, ``probe_points`` and
``activation_to_canonical`` in the TF model module (see workloads/cnn/model_tf.py).

Validation here never imports torch or TensorFlow: model modules are only located, not loaded.
"""

from __future__ import annotations

import importlib
import importlib.util

from frameduel.errors import FrameduelError
from frameduel.spec import MODEL_FILES, SIZES
from frameduel.workloads.base import Workload

EXAMPLE = "WORKLOAD = Workload(name=..., description=..., presets=..., make_batch=..., model_modules=...)"


def module_exists(path: str) -> bool:
    try:
        return importlib.util.find_spec(path) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def load_plugin(path: str) -> Workload:
    """Import a plugin module and check it offers everything a benchmark cell needs."""
    if not module_exists(path):
        raise FrameduelError(f"cannot import workload module '{path}'; check the name and that it is on PYTHONPATH")
    try:
        module = importlib.import_module(path)
    except Exception as exc:  # noqa: BLE001 - the user's code: report it, do not crash
        raise FrameduelError(f"importing workload module '{path}' failed: {type(exc).__name__}: {exc}") from None
    workload = getattr(module, "WORKLOAD", None)
    if not isinstance(workload, Workload):
        raise FrameduelError(f"workload module '{path}' must define {EXAMPLE}")
    check_plugin(path, workload)
    return workload


def check_plugin(path: str, workload: Workload) -> None:
    missing_sizes = [size for size in SIZES if size not in workload.presets]
    if missing_sizes:
        raise FrameduelError(f"workload '{path}' has no preset for size(s) {', '.join(missing_sizes)}; "
                             f"add them to WORKLOAD.presets")
    if not callable(workload.make_batch):
        raise FrameduelError(f"workload '{path}': make_batch must be a function (config, batch_size, seed) -> Batch")
    for framework in MODEL_FILES:
        model_module = workload.model_modules.get(framework)
        if model_module is None:
            raise FrameduelError(f"workload '{path}' lacks model_modules['{framework}']; "
                                 f"name a module that defines build(config)")
        if not module_exists(model_module):
            raise FrameduelError(f"workload '{path}': model module '{model_module}' for {framework} cannot be found")
