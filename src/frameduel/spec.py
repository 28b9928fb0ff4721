"""What one measured cell is, and what it produced: the serialisable vocabulary of frameduel.

Everything here is framework-free and round-trips through JSON, so a stored result can always be
traced back to exactly what was run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from frameduel.errors import FrameduelError, Unsupported


@dataclass(frozen=True)
class FrameworkInfo:
    """What frameduel knows of one framework: the one registry every other table reads from.

    The capabilities a framework may lack are None: capability() then says "unsupported" with the reason,
    so adding a framework never meets a KeyError (README, "Adding a framework")."""

    name: str
    label: str  # for people: "PyTorch", "Keras 3 on JAX"
    modes: tuple[str, ...]  # the first is the plain (eager) one
    backend_module: str  # frameduel.frameworks module exposing the backend contract (frameworks/__init__.py)
    # which of a workload's model files it runs: "torch" (model_torch.py), "tf" (model_tf.py, Keras), or "numpy"
    # (none: the backend builds its one model itself)
    models: str
    package: str  # the import it needs: a missing one is a one-line error naming the install
    colour: str  # in the report's plots
    training_mode: str  # the mode `accuracy`, sweeps and export's digits model train in
    # Shares of the documented ecosystem criteria (report/advise.py ECOSYSTEM_TEXTS), each in 0..1.
    ecosystem: tuple[tuple[str, float], ...] = ()
    data_parallel_module: str | None = None  # one worker of a group: the backend contract over DDP/tf.distribute
    data_parallel_launcher: str | None = None  # what starts its group here: "torchrun" or "TF_CONFIG" (jobs/group.py)
    export_module: str | None = None  # export_artefact(...) and its runtimes (frameworks/*_export.py)
    llm_module: str | None = None  # load_stepper(...): the LLM server's batched forward (frameworks/*_llm.py)


ECOSYSTEMS = ("research ecosystem", "serving ecosystem", "edge ecosystem", "llm ecosystem")


def ecosystem_shares(research: float, serving: float, edge: float, llm: float) -> tuple[tuple[str, float], ...]:
    return tuple(zip(ECOSYSTEMS, (research, serving, edge, llm), strict=True))


# One source of truth for the framework axis. Order matters: it is the display order. keras-torch and
# keras-jax run the very Keras models of the "tf" framework on another Keras backend.
FRAMEWORK_INFO: dict[str, FrameworkInfo] = {info.name: info for info in (
    FrameworkInfo("torch", "PyTorch", ("eager", "compile"), "frameduel.frameworks.torch_backend", "torch", "torch",
                  "#ee4c2c", "eager", ecosystem_shares(0.7, 0.4, 0.35, 0.8),
                  "frameduel.frameworks.torch_data_parallel", "torchrun", "frameduel.frameworks.torch_export",
                  llm_module="frameduel.frameworks.torch_llm"),
    FrameworkInfo("tf", "TensorFlow (Keras 3)", ("eager", "function", "xla"), "frameduel.frameworks.tf_backend",
                  "tf", "tensorflow", "#ff8f00", "function", ecosystem_shares(0.3, 0.6, 0.65, 0.2),
                  "frameduel.frameworks.tf_data_parallel", "TF_CONFIG", "frameduel.frameworks.tf_export",
                  llm_module="frameduel.frameworks.tf_llm"),
    FrameworkInfo("keras-torch", "Keras 3 on torch", ("eager", "compile"),
                  "frameduel.frameworks.keras_torch_backend", "tf", "torch", "#8e44ad", "eager",
                  ecosystem_shares(0.35, 0.3, 0.3, 0.3)),
    FrameworkInfo("keras-jax", "Keras 3 on JAX", ("eager", "jit"), "frameduel.frameworks.keras_jax_backend", "tf",
                  "jax", "#1f77b4", "jit", ecosystem_shares(0.45, 0.35, 0.35, 0.35)),
    # The reference framework: the mlp written out in NumPy (frameworks/numpy_backend.py); no model files,
    # no ecosystem, no data parallel, no export. The harness's tests run it: it imports in milliseconds.
    FrameworkInfo("numpy", "NumPy (reference mlp)", ("eager",), "frameduel.frameworks.numpy_backend", "numpy",
                  "numpy", "#4d77cf", "eager"),
)}
CAPABILITY_REASONS = {
    "data_parallel_module": "trains alone here: data parallel is torch's DDP and TF's tf.distribute",
    "data_parallel_launcher": "has no data-parallel launcher",
    "export_module": "has no exporter: deployment artefacts come from torch and tf (a Keras model on another "
                     "backend exports through its TF twin)",
    "llm_module": "has no LLM server: `serve --llm` runs torch (eager, compile) and tf (eager, function, xla); "
                  "Keras on torch or JAX would need a functional KV cache (JAX arrays are immutable) threaded "
                  "through every step",
}


def capability(framework: str, name: str) -> str:
    """A framework's capability (a FrameworkInfo field), or Unsupported naming what it lacks."""
    value = getattr(FRAMEWORK_INFO[check_choice("framework", framework, FRAMEWORKS)], name)
    if value is None:
        raise Unsupported(f"{framework} {CAPABILITY_REASONS[name]}")
    return value


def frameworks_with(name: str) -> tuple[str, ...]:
    """The frameworks that have a capability, in display order."""
    return tuple(fw for fw, info in FRAMEWORK_INFO.items() if getattr(info, name) is not None)


# The model files a workload ships, one per kind (Workload.model_modules): what FrameworkInfo.models names.
MODEL_FILES: tuple[str, ...] = ("torch", "tf")
MODES: dict[str, tuple[str, ...]] = {name: info.modes for name, info in FRAMEWORK_INFO.items()}
FRAMEWORKS: tuple[str, ...] = tuple(FRAMEWORK_INFO)
NATIVE_FRAMEWORKS: tuple[str, ...] = ("torch", "tf")  # the default pair; Keras' other backends are asked for
# fp64 runs everything in float64 (parity proofs; scientific code); bf16/fp16 are mixed precision.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp64")
# "finetune" trains LoRA adapters on a frozen base model; "train" is the full fine-tune.
TASKS: tuple[str, ...] = ("train", "infer", "generate", "finetune")
TRAINING_TASKS: tuple[str, ...] = ("train", "finetune")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
SIZES: tuple[str, ...] = ("tiny", "small", "base")

# Terminal states of a measured cell; every one of them counts as "finished" for --resume.
# "unsupported": the framework cannot run this workload, task or mode, and the error says why.
STATUSES: tuple[str, ...] = ("ok", "failed", "oom", "timeout", "unsupported")
# A cell or sweep trial whose machine was lost before it returned (its Ray node died): reported, never stored,
# so --resume runs it. Not a terminal state: nothing of the cell's own process came back.
LOST = "lost"


def check_choice(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return value if it is one of choices, else raise an error that lists the valid ones."""
    if value not in choices:
        raise FrameduelError(f"unknown {kind} '{value}'; choose from: {', '.join(choices)}")
    return value


def split_list(value: str | None) -> tuple[str, ...] | None:
    """'mlp, cnn' -> ("mlp", "cnn"): an option's comma-separated names; None (the option left out) stays None."""
    if value is None:
        return None
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise FrameduelError(f"empty list '{value}'; give comma-separated names, e.g. mlp,cnn")
    return items


# --modes, one syntax for every command: a bare mode ("compile") applies to every framework that has it;
# FRAMEWORK=MODE ("tf=xla") pins one framework; the two mix ("eager,tf=xla"). A framework nothing is pinned
# to, when no bare mode is given either, keeps the command's default.
def mode_items(requested: tuple[str, ...]) -> list[tuple[str | None, str]]:
    """("eager", "tf=xla") -> [(None, "eager"), ("tf", "xla")]; an unknown framework is one line."""
    items: list[tuple[str | None, str]] = []
    for item in requested:
        framework, pinned, mode = item.partition("=")
        items.append((check_choice("framework", framework.strip(), FRAMEWORKS), mode.strip()) if pinned
                     else (None, item))
    return items


def check_bare_modes(frameworks: tuple[str, ...], requested: tuple[str, ...]) -> None:
    """Each bare mode is one of some framework's, and every framework nothing is pinned to has one of them."""
    for fw in frameworks:
        check_choice("framework", fw, FRAMEWORKS)
    items = mode_items(requested)
    bare = [mode for framework, mode in items if framework is None]
    for mode in bare:
        if not any(mode in MODES[fw] for fw in frameworks):
            valid = "; ".join(f"{fw}: {', '.join(MODES[fw])}" for fw in frameworks)
            raise FrameduelError(f"mode '{mode}' is not valid for {', '.join(frameworks)}; valid modes: {valid}")
    pinned = {framework for framework, _ in items}
    for fw in frameworks:
        if bare and fw not in pinned and not any(mode in MODES[fw] for mode in bare):
            raise FrameduelError(f"none of the modes {', '.join(requested)} applies to {fw}; "
                                 f"add one of: {', '.join(MODES[fw])}")


def check_modes(frameworks: tuple[str, ...], requested: tuple[str, ...] | None) -> None:
    """--modes of a command that runs every mode asked for (compare, generate): one line for a mode that
    is none of the frameworks' (naming the valid ones), or a framework left without a mode."""
    if requested is None:
        return
    check_bare_modes(frameworks, requested)
    for fw, mode in mode_items(requested):
        if fw in frameworks and mode not in MODES[fw]:  # pins of frameworks not run are left alone
            raise FrameduelError(f"mode '{mode}' is not valid for {fw}; choose from: {', '.join(MODES[fw])}")


def modes_for(framework: str, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The modes a framework runs, in its registry order: those pinned to it, else the bare ones it has,
    else (no bare mode given) all of them."""
    items = mode_items(requested or ())
    wanted = ({mode for fw, mode in items if fw == framework}
              or {mode for fw, mode in items if fw is None} or set(MODES[framework]))
    return tuple(mode for mode in MODES[framework] if mode in wanted)


def one_mode_each(frameworks: tuple[str, ...], requested: tuple[str, ...] | None,
                  defaults: dict[str, str]) -> dict[str, str]:
    """framework -> the one mode it trains in (accuracy, sweep, finetune): the last mode pinned to it, else
    the last bare one it has, else its default. Pinned modes are checked where they are used."""
    modes = dict(defaults)
    if requested is None:
        return modes
    check_bare_modes(frameworks, requested)
    # Bare modes first, then pins (sorted is stable): a pin wins over a bare mode, a later one over an earlier.
    for pinned, mode in sorted(mode_items(requested), key=lambda item: item[0] is not None):
        for fw in [pinned] if pinned else [fw for fw in modes if mode in MODES[fw]]:
            modes[fw] = mode
    return modes


def directory_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter as PEFT's LoraConfig describes it: W x + (alpha / r) B A x on each target module.

    targets are module names matched as the last dotted component of a torch module path (PEFT's
    suffix match): "q_proj" adapts every model.layers.N.self_attn.q_proj. B starts at zero.
    """

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))  # a list after a JSON round trip
        if self.rank < 1:
            raise FrameduelError(f"LoRA rank must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise FrameduelError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not self.targets:
            raise FrameduelError("LoRA needs at least one target module, e.g. --lora-targets q_proj,v_proj")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    @property
    def label(self) -> str:
        return f"r{self.rank}a{self.alpha:g}-{'+'.join(self.targets)}"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the benchmark matrix: everything that determines what is measured."""

    workload: str
    framework: str
    mode: str
    task: str  # "train" = fwd + bwd + optimizer step; "infer" = forward; "generate" = KV-cache decoding;
    # "finetune" = a train step of LoRA adapters on the frozen model
    precision: str = "fp32"
    batch_size: int = 32
    device: str = "cpu"
    threads: int = 1  # intra-op threads given to the framework (resolved at plan time, never 0)
    size: str = "small"
    seed: int = 0
    # A Hugging Face-layout model directory (absolute path) whose config and weights replace the preset's.
    checkpoint: str | None = None
    lora: LoraSettings | None = None  # the adapters of a "finetune" cell (and only of one)
    # A PEFT LoRA adapter directory (absolute path) applied to the model of an infer or generate cell.
    adapter: str | None = None
    # Data-parallel processes of a train cell (runner/data_parallel.py): batch_size is the global batch,
    # split evenly, and each worker gets `threads` threads on cores of its own.
    workers: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):  # from JSON
            object.__setattr__(self, "lora", LoraSettings(**self.lora))
        check_choice("framework", self.framework, FRAMEWORKS)
        if self.mode not in MODES[self.framework]:
            raise FrameduelError(
                f"mode '{self.mode}' is not valid for {self.framework}; "
                f"choose from: {', '.join(MODES[self.framework])}"
            )
        check_choice("task", self.task, TASKS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("device", self.device, DEVICES)
        check_choice("size", self.size, SIZES)
        if self.batch_size < 1:
            raise FrameduelError(f"batch size must be >= 1, got {self.batch_size}")
        if self.threads < 1:
            raise FrameduelError(f"threads must be >= 1, got {self.threads}")
        if (self.task == "finetune") != (self.lora is not None):
            raise FrameduelError("LoRA settings belong to a finetune cell, and a finetune cell needs them")
        if self.adapter and self.task not in ("infer", "generate"):
            raise FrameduelError("an adapter applies to inference and generation; finetune trains new ones")
        if self.workers < 1:
            raise FrameduelError(f"workers must be >= 1, got {self.workers}")
        if self.workers > 1 and self.task != "train":
            raise FrameduelError(f"data-parallel workers train; a {self.task} cell runs in one process")
        if self.batch_size % self.workers:
            raise FrameduelError(f"a global batch of {self.batch_size} does not split evenly over {self.workers} "
                                 f"workers; choose a batch size divisible by {self.workers}")

    @property
    def key(self) -> str:
        """Stable, human-readable identity of the cell inside a run."""
        return (
            f"{self.workload}/{self.model_label}/{self.task_label}/b{self.batch_size}/{self.precision}/"
            f"{self.device}/t{self.threads}{self.workers_label}/{self.framework}/{self.mode}/s{self.seed}"
        )

    @property
    def comparison_group(self) -> str:
        """Cells in the same group do the same work and may be compared with each other."""
        return (f"{self.workload}/{self.model_label}/{self.task_label}/b{self.batch_size}/{self.precision}/"
                f"{self.device}{self.workers_label}")

    @property
    def workers_label(self) -> str:
        """'/w2' for data-parallel cells; empty for one process, so single-process keys stay as stored."""
        return f"/w{self.workers}" if self.workers > 1 else ""

    @property
    def task_label(self) -> str:
        """The task, with the adapters for finetune: another rank or target set is other work."""
        return f"{self.task}-{self.lora.label}" if self.lora else self.task

    @property
    def model_label(self) -> str:
        """The preset's name, or the checkpoint directory's (whose config replaces the preset); and the
        adapter directory's, where one is applied."""
        base = f"ckpt:{directory_name(self.checkpoint)}" if self.checkpoint else self.size
        return f"{base}+adapter:{directory_name(self.adapter)}" if self.adapter else base

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**data)


@dataclass(frozen=True)
class MeasureBudget:
    """How hard one worker measures: warm-up, then adaptive repeats until the CI is tight enough."""

    warmup_steps: int = 3
    warmup_seconds: float = 0.2  # warm-up runs at least this long (caches, allocator, CPU clocks)
    min_samples: int = 10
    max_samples: int = 5000
    target_ci_rel: float = 0.02  # stop once the 95% CI of the median is within +-2% of it
    min_seconds: float = 0.5  # ...but never before sampling this long, so a lucky start cannot stop it
    max_seconds: float = 3.0  # steady-state time budget per worker
    # Throughput samples group steps up to this length. Long enough that a sample's mean absorbs the
    # occasional slow step (GC, preemption): the median of such samples then tracks total/steps.
    min_sample_seconds: float = 0.05
    timeout_s: float = 600.0  # whole-worker wall clock limit, enforced by the scheduler

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasureBudget:
        return cls(**data)


@dataclass
class Measurement:
    """What one worker process reports for one round of one cell."""

    spec: RunSpec
    status: str
    error: str | None = None
    step_seconds: list[float] = field(default_factory=list)  # steady-state seconds per step
    # Further sample series of a step's phases, e.g. generation's "prefill" and "decode_token" seconds.
    series: dict[str, list[float]] = field(default_factory=dict)
    steps_per_sample: int = 1  # >1 when short steps were timed in groups (throughput cells)
    trace_s: float | None = None  # explicit trace/compile call before the first step, if any
    first_step_s: float | None = None  # first call, including lazy compilation
    compile_s: float | None = None  # trace_s + (first_step_s - steady median), never < 0
    warmup_steps: int = 0
    background_cores: float | None = None  # CPU other processes used while sampling (contention)
    peak_rss_mb: float | None = None  # whole worker process, import included
    baseline_rss_mb: float | None = None  # after imports, before the model is built
    peak_device_mb: float | None = None  # accelerator allocator peak (GPU only)
    wall_s: float | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # versions, threads actually in force
    # What was trained or run: parameters, trainable_parameters and, for finetune, adapter_bytes on disk.
    model_facts: dict[str, Any] = field(default_factory=dict)
    # Where it ran, filled by the executor: "executor", "host", "machine_class" (environment.machine_class),
    # "concurrent" (timing cells sharing the machine), and on Ray "ray_node_id" and the node's "environment".
    placement: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["spec"] = self.spec.to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        data = json.loads(text)
        data["spec"] = RunSpec.from_dict(data["spec"])
        return cls(**data)
