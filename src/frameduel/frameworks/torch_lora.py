"""LoRA on the torch side through the real PEFT library: LoraConfig and get_peft_model.

PEFT wraps each target nn.Linear in a lora.Linear holding the original as ``base_layer`` and the
adapter as ``lora_A.default`` / ``lora_B.default`` (A Kaiming-uniform, B zero), freezes every other
parameter, and returns a PeftModel around frameduel's model. canonical_name turns PEFT's internal
names back into frameduel's canonical ones (see checkpoints/adapters.py), so weight transfer,
parity and adapters on disk see one naming in both frameworks.

peft is imported where an adapter is made, loaded or saved, never at module import: it pulls in
transformers (2.5 s and tens of MB), which every other torch cell would otherwise carry in its start-up
time and its peak memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from frameduel.errors import FrameduelError
from frameduel.spec import LoraSettings

if TYPE_CHECKING:
    import peft

ADAPTER_NAME = "default"  # PEFT's name for a model's only adapter
WRAPPER_PARTS = ("base_layer", "lora_A", "lora_B", "lora_dropout", "lora_embedding_A", "lora_embedding_B",
                 "lora_magnitude_vector")


def add_adapters(model: nn.Module, settings: LoraSettings) -> peft.PeftModel:
    """frameduel's model with LoRA on every Linear whose last name component is a target."""
    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    unmatched = [target for target in settings.targets if target not in linear_names]
    if unmatched:
        raise FrameduelError(f"LoRA target {', '.join(unmatched)} names no Linear module of this model; "
                             f"choose from: {', '.join(sorted(linear_names))}")
    import peft  # noqa: PLC0415 - see the module docstring

    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets),
                             lora_dropout=0.0, bias="none")  # dropout 0: both frameworks compute the same step
    return peft.get_peft_model(model, config)


def load_adapter(model: nn.Module, directory: str) -> peft.PeftModel:
    """A PEFT adapter directory on frameduel's model, through PEFT's own loader (the path every PEFT user
    takes; module names are Hugging Face's, so adapters trained on transformers' Llama load as they are)."""
    import peft  # noqa: PLC0415 - see the module docstring

    return peft.PeftModel.from_pretrained(model, directory, is_trainable=False)


def plain(model: nn.Module) -> nn.Module:
    """The model whose module names are frameduel's: inside a PeftModel, the (adapted) base model. Asked of
    the model, not by isinstance: peft may not be imported (see the module docstring)."""
    return model.get_base_model() if is_peft_model(model) else model


def is_peft_model(model: nn.Module) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "peft_config")


def canonical_name(name: str) -> str:
    """PEFT's 'q_proj.base_layer.weight' -> 'q_proj.weight', 'q_proj.lora_A.default.weight' ->
    'q_proj.lora_A.weight'; any other name is already canonical."""
    parts = [part for part in name.split(".") if part != "base_layer"]
    return ".".join(part for i, part in enumerate(parts)
                    if not (part == ADAPTER_NAME and i > 0 and parts[i - 1] in ("lora_A", "lora_B")))


def is_wrapper_part(module_name: str) -> bool:
    """A module PEFT added inside a wrapped Linear: it has no counterpart in the other framework."""
    return any(part in WRAPPER_PARTS for part in module_name.split("."))


def save_adapter(model: nn.Module, directory: Path, base_model: str) -> Path:
    """PEFT's own writer: adapter_config.json and adapter_model.safetensors."""
    if not is_peft_model(model):
        raise FrameduelError("the model has no LoRA adapters to save; train with task finetune")
    model.peft_config[ADAPTER_NAME].base_model_name_or_path = base_model
    model.save_pretrained(str(directory), safe_serialization=True)
    return directory


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameters; parameters() yields a tied weight once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def trainable_parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
