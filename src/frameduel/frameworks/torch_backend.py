"""PyTorch side: eager and torch.compile steps, fp32 and autocast mixed precision."""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from frameduel.checkpoints import model_config, open_checkpoint
from frameduel.checkpoints.adapters import base_model_name
from frameduel.frameworks import Generation, Step, plan_generation, torch_lora
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, OptimizerConfig, Workload
from frameduel.workloads.weight_layouts import check_weight_names

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Imported once by the zygote (jobs/zygote.py) rather than in every worker: torch.optim pulls in dynamo
# (~1.0 s) and torch.compile inductor (~0.8 s). Importing them starts no thread and runs no op.
ZYGOTE_PRELOAD = ("torch._dynamo", "torch._inductor.compile_fx")
# torch state_dict optimizer slots -> the canonical slot names both backends report (parity).
SLOT_NAMES = {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "vhat", "momentum_buffer": "momentum"}


def param_dtype(spec: RunSpec) -> torch.dtype:
    """The dtype weights live in, and the loss is computed in: float32 under mixed precision too."""
    return torch.float64 if spec.precision == "fp64" else torch.float32


def configure(spec: RunSpec) -> dict[str, Any]:
    """Pin threads and seeds before anything runs; report what is actually in force."""
    torch.set_num_threads(spec.threads)
    torch.set_num_interop_threads(spec.threads)
    torch.manual_seed(spec.seed)
    if spec.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return {
        "framework_version": torch.__version__,
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "device_name": torch.cuda.get_device_name() if spec.device == "cuda" else "cpu",
        "cuda_version": torch.version.cuda,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def use_precision(spec: RunSpec) -> None:
    """Switch precision between models of one process: torch keeps it per model (build_model's dtype)."""


def autocast(spec: RunSpec) -> contextlib.AbstractContextManager:
    if spec.precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=spec.device, dtype=AUTOCAST_DTYPES[spec.precision])


def build_model(workload: Workload, spec: RunSpec) -> torch.nn.Module:
    model_module = _model_module(workload)
    model = model_module.build(model_config(workload, spec.checkpoint, spec.size))
    model = model.to(spec.device, dtype=param_dtype(spec))
    if spec.checkpoint:
        import_weights(workload, model, open_checkpoint(spec.checkpoint).weights())
    if spec.lora:  # after the base weights are in: PEFT wraps the Linears that hold them
        model = torch_lora.add_adapters(model, spec.lora)
    if spec.adapter:
        model = torch_lora.load_adapter(model, spec.adapter)
    return model


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Place the batch on the device once: steps measure compute, not host-to-device copies."""
    model_module = _model_module(workload)
    inputs = np.ascontiguousarray(model_module.to_native_layout(batch.inputs))
    if inputs.dtype.kind == "f":  # token ids stay integers; features take the weights' dtype
        inputs = inputs.astype(np.float64 if spec.precision == "fp64" else np.float32)
    return torch.from_numpy(inputs).to(spec.device), torch.from_numpy(batch.targets).to(spec.device)


def make_optimizer(model: torch.nn.Module, spec: RunSpec, opt: OptimizerConfig) -> torch.optim.Optimizer:
    params = torch_lora.trainable_parameters(model)  # all of them, or a LoRA model's adapters
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.learning_rate)
    return torch.optim.Adam(params, lr=opt.learning_rate, betas=(opt.beta1, opt.beta2), eps=opt.epsilon)


def make_train_fn(
    model: torch.nn.Module, spec: RunSpec, optimizer: torch.optim.Optimizer
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One training step: forward, cross-entropy on full-precision logits, backward, optimizer step."""
    model.train()
    # The model is compiled, as training scripts do; the optimizer step stays eager.
    forward = torch.compile(model) if spec.mode == "compile" else model
    # fp16 needs loss scaling to keep small gradients from underflowing; bf16 does not.
    scaler = torch.amp.GradScaler(spec.device, enabled=spec.precision == "fp16")

    def train_step(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(spec):
            logits = forward(inputs)
        loss = F.cross_entropy(logits.to(param_dtype(spec)), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    return train_step


def make_infer_fn(model: torch.nn.Module, spec: RunSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    model.eval()
    forward = torch.compile(model) if spec.mode == "compile" else model

    def infer_step(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(spec):
            return forward(inputs)

    return infer_step


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    sync = torch.cuda.synchronize if spec.device == "cuda" else _no_sync
    if spec.task == "infer":
        infer = make_infer_fn(model, spec)
        return Step(run=lambda: infer(inputs), sync=sync, model=model)
    train = make_train_fn(model, spec, make_optimizer(model, spec, workload.optimizer))
    return Step(run=lambda: train(inputs, targets), sync=sync, model=model)


def make_generation(workload: Workload, spec: RunSpec, batch: Batch, prompt_ids: np.ndarray | None = None,
                    new_tokens: int | None = None) -> Generation:
    """Greedy fixed-length decoding with the model file's static KV cache (prefill, then decode_step);
    the lengths and the prompt as frameworks.plan_generation sets them."""
    # The model file's decoding reads the model's own attributes (model.model is Llama's decoder stack);
    # inside a PeftModel they would resolve to PEFT's wrappers, so it decodes the adapted model itself.
    model = torch_lora.plain(build_model(workload, spec)).eval()
    model_module, config = _model_module(workload), model_config(workload, spec.checkpoint, spec.size)
    plan = plan_generation(workload, config, batch, prompt_ids, new_tokens)
    prompt = to_tensors(workload, spec, plan.prompt)[0]  # (B, P)
    prefill, decode_step = model_module.prefill, model_module.decode_step
    if spec.mode == "compile":
        prefill, decode_step = torch.compile(prefill), torch.compile(decode_step)
    # Positions as tensors, not ints: one compiled decode graph serves every position.
    positions = [torch.tensor(plan.prompt_len + i, device=spec.device) for i in range(plan.decode_steps)]

    def run_prefill() -> object:
        with torch.no_grad(), autocast(spec):
            return prefill(model, prompt, model_module.new_cache(model, config, prompt.shape[0], plan.cache_length))

    def run_decode(state: object, index: int) -> object:
        tokens, cache = state
        with torch.no_grad(), autocast(spec):
            return decode_step(model, tokens, positions[index], cache)

    sync = torch.cuda.synchronize if spec.device == "cuda" else _no_sync
    return Generation(prefill=run_prefill, decode=run_decode, sync=sync, new_tokens=plan.decode_steps,
                      token_ids=lambda state: to_numpy(state[0]))


def compile_facts(spec: RunSpec) -> dict[str, Any]:
    """After the steps ran: how much of the model torch.compile really compiled.

    Dynamo falls back to eager Python at a graph break, or for a whole frame it cannot trace (nn.LSTM
    is never traced: "unimplemented"), so a "compile" cell may measure partly or wholly eager code;
    the report says so next to the number.
    """
    if spec.mode != "compile":
        return {}
    counters = torch._dynamo.utils.counters
    # A reason's first line names it ("Attempted to wrap RNN, GRU, or LSTM"); the rest is hints.
    reasons = {reason.splitlines()[0][:160] for kind in ("graph_break", "unimplemented") for reason in counters[kind]}
    return {"compiled_graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(counters["graph_break"].values())),
            "eager_fallback_reasons": sorted(reasons)[:5]}


def parameter_counts(workload: Workload, model: torch.nn.Module) -> tuple[int, int]:
    """(all, trainable) parameters: with LoRA, the adapters are the trainable ones."""
    return torch_lora.parameter_counts(model)


def save_adapter(workload: Workload, model: torch.nn.Module, spec: RunSpec, directory: Path) -> Path:
    """PEFT's own save_pretrained: the format every PEFT user loads."""
    return torch_lora.save_adapter(model, directory, base_model_name(spec))


def set_training(model: torch.nn.Module, training: bool) -> None:
    """Train/eval mode (BatchNorm, dropout) lives on the module in torch; make_*_fn set it once."""
    model.train(training)


def to_numpy(value: torch.Tensor) -> np.ndarray:
    """float64 stays float64; half types become float32 (numpy has no bfloat16)."""
    value = value.detach()
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value.cpu().numpy()


def _no_sync() -> None:
    """CPU kernels run synchronously: a step has finished when its call returns."""


def peak_device_memory_mb(spec: RunSpec) -> float | None:
    if spec.device != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError))


# -- Parity: weights in torch's own state_dict form, outputs, loss curves, per-module activations. --


def export_weights(workload: Workload, model: torch.nn.Module) -> dict[str, np.ndarray]:
    """torch's state_dict is the canonical form: names and layouts as they are."""
    return {name: t.detach().cpu().numpy().copy() for name, t in _state(model).items()}


def import_weights(workload: Workload, model: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Copy each array into the tensor it names, one at a time: `weights` may read lazily from disk (a
    checkpoint), so only one tensor is ever held beside the model. state_dict's tensors share storage
    with the parameters and buffers, so copying into them sets the model's own."""
    state = _state(model)
    check_weight_names(set(state), set(weights), "torch")
    filled: set[int] = set()  # a tied weight is listed under two names: one storage, copied once
    with torch.no_grad():
        for name, tensor in state.items():
            if tensor.data_ptr() in filled:
                continue
            filled.add(tensor.data_ptr())
            value = weights[name]
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"weight {name}: shape {value.shape} does not fit torch's {tuple(tensor.shape)}")
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # BatchNorm's step counter is bookkeeping, not a weight; Keras has no such thing.
    return {torch_lora.canonical_name(k): v for k, v in torch_lora.plain(model).state_dict().items()
            if not k.endswith("num_batches_tracked")}


def shared_weights(workload: Workload, model: torch.nn.Module) -> list[tuple[list[str], str]]:
    """torch's state_dict is the canonical form: every tensor stands for itself (see the tf twin)."""
    return []


def forward(workload: Workload, spec: RunSpec, model: torch.nn.Module, batch: Batch) -> np.ndarray:
    inputs, _ = to_tensors(workload, spec, batch)
    return to_numpy(make_infer_fn(model, spec)(inputs))


def capture_activations(workload: Workload, model: torch.nn.Module, run: Callable[[], object]) -> dict[str, np.ndarray]:
    """Output of every named submodule while run() executes (an eval forward, or a training step), in the
    order the modules finish (inner first)."""
    captured: dict[str, np.ndarray] = {}

    def recorder(name: str) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                captured[name] = to_numpy(output).copy()

        return record

    # A LoRA-wrapped Linear is recorded as the Linear it replaces; PEFT's parts inside it have no twin.
    handles = [module.register_forward_hook(recorder(name)) for name, module in torch_lora.plain(model).named_modules()
               if name and not torch_lora.is_wrapper_part(name)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return captured


def optimizer_state(
    workload: Workload, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, np.ndarray]:
    """Every optimizer slot as '<torch parameter name>/<slot>' (m, v, vhat, momentum), plus 'step'."""
    names = {id(param): torch_lora.canonical_name(name)  # a tied weight under its first name
             for name, param in torch_lora.plain(model).named_parameters()}
    state: dict[str, np.ndarray] = {}
    steps: set[float] = set()
    for param, slots in optimizer.state.items():
        for key, value in slots.items():
            if key == "step":
                steps.add(float(value))
            else:
                state[f"{names[id(param)]}/{SLOT_NAMES.get(key, key)}"] = to_numpy(value).copy()
    if steps:  # one count per parameter in torch; they differ only if some parameter missed a step
        state["step"] = np.asarray(sorted(steps), dtype=np.float64)
    return state


def align_adam_epsilon(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Parity only: make torch's Adam add epsilon where Keras' Adam does, before bias correction.

    torch:  p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
    Keras:  p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps) = lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps / sqrt(bc2))
    with bc_i = 1 - beta_i^t. So torch with eps_t = eps / sqrt(bc2_t) at step t *is* Keras' update, and
    everything else the two steps compute can then be held to float64 rounding. The eps the optimizer
    was built with (the one under test) is the one scaled.
    """
    if not all("eps" in group and "betas" in group for group in optimizer.param_groups):
        return optimizer  # not an Adam-family optimizer: nothing to align
    built_eps = [group["eps"] for group in optimizer.param_groups]

    def before_step(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        for group, eps in zip(opt.param_groups, built_eps, strict=True):
            done = max((float(opt.state[p]["step"]) for p in group["params"] if "step" in opt.state.get(p, {})),
                       default=0.0)
            group["eps"] = eps / math.sqrt(1.0 - group["betas"][1] ** (done + 1))

    optimizer.register_step_pre_hook(before_step)
    return optimizer


def _model_module(workload: Workload) -> ModuleType:
    return importlib.import_module(workload.model_modules["torch"])
