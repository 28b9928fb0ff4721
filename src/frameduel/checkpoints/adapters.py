"""LoRA adapters on disk in PEFT's format, and merging them into base weights (framework-free).

A PEFT adapter directory holds ``adapter_config.json`` (LoraConfig's fields) and
``adapter_model.safetensors``, whose tensors are named after the torch module they adapt:

    base_model.model.<module>.lora_A.weight   (r, in)
    base_model.model.<module>.lora_B.weight   (out, r)

frameduel's canonical weight names (torch state_dict names, see workloads/weight_layouts.py) of a
LoRA model are the base model's plus ``<module>.lora_A.weight`` and ``<module>.lora_B.weight``, so
the two forms differ by the prefix only. The torch side saves through PEFT itself; the TF side
(Keras' built-in LoRA) through save_adapter here, and a test loads the latter back through PEFT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.checkpoints.families import family_for
from frameduel.errors import FrameduelError
from frameduel.spec import LoraSettings, RunSpec

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLED_WEIGHTS = ("adapter_model.bin", "adapter_model.pt")
PEFT_PREFIX = "base_model.model."
LORA_PARTS = ("lora_A", "lora_B")


def adapter_file_bytes(directory: Path) -> int:
    """The adapter's weights on disk (PEFT also writes a model card, which is not the adapter)."""
    return (Path(directory) / WEIGHTS_FILE).stat().st_size


def is_adapter_weight(name: str) -> bool:
    """A canonical name of a LoRA matrix: '<module>.lora_A.weight' or '<module>.lora_B.weight'."""
    parts = name.split(".")
    return len(parts) >= 3 and parts[-2] in LORA_PARTS and parts[-1] == "weight"


def adapter_weights(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: value for name, value in weights.items() if is_adapter_weight(name)}


def adapted_modules(weights: Mapping[str, np.ndarray]) -> list[str]:
    """The module paths an adapter adapts, in order."""
    return list(dict.fromkeys(name.rsplit(".", 2)[0] for name in weights if is_adapter_weight(name)))


def base_model_name(spec: RunSpec) -> str:
    """What adapter_config.json names as the base model: the checkpoint directory, or the preset."""
    return spec.checkpoint or f"frameduel/{spec.workload}-{spec.size}"


def peft_config(settings: LoraSettings, base_model: str) -> dict[str, Any]:
    """LoraConfig's saved fields for a plain LoRA adapter (no DoRA, no rsLoRA, no bias training)."""
    return {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_model, "inference_mode": True,
            "r": settings.rank, "lora_alpha": settings.alpha, "lora_dropout": 0.0,
            "target_modules": list(settings.targets), "bias": "none", "fan_in_fan_out": False,
            "use_rslora": False, "use_dora": False, "modules_to_save": None, "init_lora_weights": True,
            "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {}}


def save_adapter(directory: Path, weights: Mapping[str, np.ndarray], settings: LoraSettings,
                 base_model: str) -> Path:
    """Write the LoRA matrices among `weights` (canonical names) as a PEFT adapter directory."""
    from safetensors.numpy import save_file  # noqa: PLC0415 - only adapter writers need it

    adapters = adapter_weights(weights)
    if not adapters:
        raise FrameduelError("the model has no LoRA adapters to save; train with task finetune")
    directory.mkdir(parents=True, exist_ok=True)
    save_file({PEFT_PREFIX + name: np.ascontiguousarray(value) for name, value in adapters.items()},
              str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(peft_config(settings, base_model), indent=2) + "\n")
    return directory


def read_adapter(directory: Path) -> tuple[LoraSettings, dict[str, np.ndarray]]:
    """A PEFT LoRA adapter directory -> its settings and its matrices under canonical names.

    Refused in one line each: no config, pickled weights only, a non-LoRA or DoRA/rsLoRA adapter
    (other formulas than W + alpha/r BA), a tensor that is not a LoRA matrix, A and B that disagree.
    """
    from safetensors.numpy import load_file  # noqa: PLC0415

    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise FrameduelError(f"{directory} is not a PEFT adapter directory: {CONFIG_FILE} is missing")
    if not (directory / WEIGHTS_FILE).is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (directory / name).is_file()]
        why = (f"only pickled {pickled[0]} is there, which frameduel never loads (it can run code); "
               "save the adapter with safe_serialization=True") if pickled else f"{WEIGHTS_FILE} is missing"
        raise FrameduelError(f"adapter {directory}: {why}")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise FrameduelError(f"adapter {directory}: {CONFIG_FILE} is not valid JSON ({exc})") from None
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("use_rslora"):
        raise FrameduelError(f"adapter {directory}: only plain LoRA adapters are supported (peft_type "
                             f"{config.get('peft_type')}, use_dora {config.get('use_dora')}, "
                             f"use_rslora {config.get('use_rslora')})")
    targets = config.get("target_modules")
    if not isinstance(targets, list):
        raise FrameduelError(f"adapter {directory}: target_modules must be a list of module names, got {targets!r}")
    settings = LoraSettings(rank=int(config["r"]), alpha=float(config["lora_alpha"]), targets=tuple(targets))
    weights = {}
    for name, value in load_file(str(directory / WEIGHTS_FILE)).items():
        canonical = name.removeprefix(PEFT_PREFIX)
        if not name.startswith(PEFT_PREFIX) or not is_adapter_weight(canonical):
            raise FrameduelError(f"adapter {directory}: tensor {name} is not a LoRA matrix "
                                 f"({PEFT_PREFIX}<module>.lora_A|lora_B.weight)")
        weights[canonical] = value
    check_adapter_shapes(weights, settings, str(directory))
    return settings, weights


def check_adapter_shapes(weights: Mapping[str, np.ndarray], settings: LoraSettings, where: str) -> None:
    for module in adapted_modules(weights):
        a, b = weights.get(f"{module}.lora_A.weight"), weights.get(f"{module}.lora_B.weight")
        if a is None or b is None:
            raise FrameduelError(f"adapter {where}: {module} has only one of lora_A and lora_B")
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != settings.rank or b.shape[1] != settings.rank:
            raise FrameduelError(f"adapter {where}: {module} lora_A {a.shape} and lora_B {b.shape} do not "
                                 f"make a rank-{settings.rank} update")


def check_adapter_fits(weights: Mapping[str, np.ndarray], settings: LoraSettings, workload: str, config: Any,
                       where: str) -> None:
    """Every adapted module is a Linear of the model, and A (r, in) and B (out, r) fit its weight (out, in):
    checked in the parent, framework-free, because PEFT's loader only warns about keys it cannot place."""
    expected = family_for(workload).expected(config)
    for module in adapted_modules(weights):
        shape = expected.get(f"{module}.weight")
        if shape is None or len(shape) != 2:
            raise FrameduelError(f"adapter {where} adapts {module}, which is not a Linear of this {workload} model")
        out, fan_in = shape
        a, b = weights[f"{module}.lora_A.weight"], weights[f"{module}.lora_B.weight"]
        if a.shape != (settings.rank, fan_in) or b.shape != (out, settings.rank):
            raise FrameduelError(f"adapter {where}: {module} lora_A {a.shape} and lora_B {b.shape} do not fit its "
                                 f"weight {shape} at rank {settings.rank}")


def merge_adapter(weights: Mapping[str, np.ndarray], settings: LoraSettings) -> dict[str, np.ndarray]:
    """A LoRA model's canonical weights -> the plain model's: W + (alpha / r) B A per adapted module.

    The merged model computes in one matmul what the adapted one computes in two; outputs agree to
    rounding (a test holds both frameworks' adapted models to their merged twins).
    """
    merged = {name: value for name, value in weights.items() if not is_adapter_weight(name)}
    for module in adapted_modules(weights):
        a, b = weights[f"{module}.lora_A.weight"], weights[f"{module}.lora_B.weight"]
        base = merged[f"{module}.weight"]
        merged[f"{module}.weight"] = (base + settings.scaling * (b.astype(base.dtype) @ a.astype(base.dtype)))
    return merged
