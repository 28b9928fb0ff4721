"""Run the sides of a parity check in their own processes and judge them.

Direction torch -> tf: the torch side initialises the model and exports its weights; the tf side
loads them through the workload's weight map; both run every pass (worker.py) in float64, the
proof, and in float32, the precision benchmarks run at. tf -> torch is the mirror image. Both
directions need three processes, not four: the tf process that loads torch's weights also
initialises its own. Meanwhile, on the other core, each framework's compiled modes are checked
against its own eager mode.
"""

from __future__ import annotations

import ast
import importlib.util
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.jobs.envelope import Envelope
from frameduel.jobs.process import run_job
from frameduel.jobs.spawn import Launcher, spawn_job
from frameduel.parity.judge import MODE_TOLERANCES, Finding, Judgement, judge, judge_loss, judge_output, judge_state
from frameduel.parity.worker import PARITY_OPTIMIZERS
from frameduel.spec import FRAMEWORKS, MODES, LoraSettings, RunSpec
from frameduel.store import Store
from frameduel.workloads import Workload

# Which framework's weights go to which. Keras' other backends are held to native torch, the reference
# the issue of "the same model" is about; torch and TF are checked both ways.
DIRECTIONS = {"torch-to-tf": ("torch", "tf"), "tf-to-torch": ("tf", "torch"),
              "torch-to-keras-torch": ("torch", "keras-torch"), "torch-to-keras-jax": ("torch", "keras-jax")}
NATIVE_DIRECTIONS = ("torch-to-tf", "tf-to-torch")


def directions_for(frameworks: tuple[str, ...], direction: str = "both") -> tuple[str, ...]:
    """The directions that check `frameworks`: torch and TF both ways ("both") or the one named, plus
    torch to each Keras backend asked for."""
    native = NATIVE_DIRECTIONS if direction == "both" else (direction,)
    chosen = [d for d in native if set(DIRECTIONS[d]) <= set(frameworks)]
    chosen += [f"torch-to-{fw}" for fw in frameworks if fw.startswith("keras-") and "torch" in frameworks]
    if not chosen:
        raise FrameduelError(f"--frameworks {','.join(frameworks)} gives nothing to compare: parity checks torch "
                             "against tf, keras-torch or keras-jax; name torch and at least one of them")
    return tuple(chosen)
PROOF_PRECISION = "fp64"
# The proof first; fp32, the precision benchmarks run at, is informational: it shows their noise level
# (Adam amplifies fp32 rounding in near-zero gradients until trained states differ by ~1e-4).
PRECISIONS = (PROOF_PRECISION, "fp32")
# What a passing report has proven; older stored results lack some (see analysis/evidence.py).
PROVEN = ("float64", "stressed weights", "post-training state")


@dataclass(frozen=True)
class ParityRequest:
    workload: str
    size: str = "tiny"
    directions: tuple[str, ...] = NATIVE_DIRECTIONS
    steps: int = 10
    batch_size: int = 8
    seed: int = 0
    threads: int = 1
    check_modes: bool = True
    timeout_s: float = 600.0
    checkpoint: str | None = None  # both sides start from these weights instead of the source's init
    task: str = "train"  # or "finetune": LoRA adapters on the frozen model, trained and compared
    lora: LoraSettings | None = None  # finetune's adapters (the source's A, B zero, go to the target)

    def __post_init__(self) -> None:
        for direction in self.directions:
            if direction not in DIRECTIONS:
                raise FrameduelError(f"unknown direction '{direction}'; choose from: both, {', '.join(DIRECTIONS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise FrameduelError("--steps and --batch-size must be >= 1")

    def spec(self, framework: str) -> RunSpec:
        return RunSpec(workload=self.workload, framework=framework, mode="eager", task=self.task, size=self.size,
                       batch_size=self.batch_size, seed=self.seed, threads=self.threads, checkpoint=self.checkpoint,
                       lora=self.lora)

    @property
    def model_label(self) -> str:
        return self.spec(FRAMEWORKS[0]).model_label

    @property
    def task_label(self) -> str:
        return self.spec(FRAMEWORKS[0]).task_label

    @property
    def frameworks(self) -> tuple[str, ...]:
        """Every framework a direction names, in display order."""
        named = {fw for direction in self.directions for fw in DIRECTIONS[direction]}
        return tuple(fw for fw in FRAMEWORKS if fw in named)


@dataclass
class ParityReport:
    """One direction: the source's weights in the target framework, judged per precision."""

    workload: str
    size: str
    source: str
    target: str
    judgements: list[Judgement] = field(default_factory=list)  # PRECISIONS order
    error: str | None = None
    task: str = "train"  # ParityRequest.task_label: "train", or "finetune-<adapters>"

    @property
    def proof(self) -> Judgement | None:
        return next((j for j in self.judgements if j.precision == PROOF_PRECISION), None)

    @property
    def findings(self) -> list[Finding]:
        """What the float64 proof found over tolerance, the most specific first."""
        return self.proof.findings if self.proof else []

    @property
    def passed(self) -> bool:
        return self.error is None and self.proof is not None and not self.findings

    def to_dict(self) -> dict[str, Any]:
        first = self.findings[0] if self.findings else None
        return {"workload": self.workload, "size": self.size, "task": self.task, "source": self.source,
                "target": self.target, "passed": self.passed, "error": self.error,
                "proven": list(PROVEN) if self.passed else [],
                "first_divergence": first.to_dict() if first else None,
                "informational": [j.precision for j in self.judgements if j.precision != PROOF_PRECISION],
                "judgements": [judgement.to_dict() for judgement in self.judgements]}


@dataclass
class ModesReport:
    """Each compiled mode against the same framework's eager mode, same weights, fp32."""

    workload: str
    size: str
    judgements: dict[str, dict[str, Judgement]] = field(default_factory=dict)  # framework -> mode -> judgement
    errors: dict[str, str] = field(default_factory=dict)  # framework -> why its check could not run
    task: str = "train"

    def failures(self) -> list[str]:
        lines = [f"{framework}: {error}" for framework, error in self.errors.items()]
        for framework, modes in self.judgements.items():
            lines += [f"{framework} {mode}: {finding.line()}" for mode, judgement in modes.items()
                      for finding in judgement.findings]
        return lines

    @property
    def passed(self) -> bool:
        return bool(self.judgements) and not self.failures()

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "size": self.size, "task": self.task, "passed": self.passed,
                "failures": self.failures(),
                "errors": self.errors, "judgements": {fw: {mode: j.to_dict() for mode, j in modes.items()}
                                                      for fw, modes in self.judgements.items()}}


@dataclass
class SideJob:
    framework: str
    weight_sets: dict[str, str | None] = field(default_factory=dict)  # label -> weights file, None: initialise


def side_jobs(request: ParityRequest, out_dir: Path) -> list[SideJob]:
    """Sources before targets; consecutive work of one framework shares a process."""
    jobs: list[SideJob] = []
    done: set[tuple[str, str]] = set()  # (framework, weight set): torch's own passes run once for every target

    def add(framework: str, label: str, path: str | None) -> None:
        if (framework, label) in done:
            return
        done.add((framework, label))
        if not jobs or jobs[-1].framework != framework:
            jobs.append(SideJob(framework))
        jobs[-1].weight_sets[label] = path

    for direction in request.directions:
        source, target = DIRECTIONS[direction]
        add(source, source, None)  # the source initialises and writes init-<source>.npz
        add(target, source, str(out_dir / f"init-{source}.npz"))
    return jobs


# Which job launcher runs a framework's parity job: (framework, slot) -> run_job's signature. Slot 0 runs the
# chain of side jobs, slot 1 the modes checks beside it; `compare` forks both from its zygotes.
LauncherFor = Callable[[str, int], Launcher]


def spawned(framework: str, slot: int) -> Launcher:
    """Every job in a new interpreter (the `parity` command's default)."""
    return run_job


def spawn_parity_job(kind: str, framework: str, spec: RunSpec, out_dir: Path, timeout_s: float,
                     launcher: Launcher = run_job, **job: Any) -> Envelope:
    """Run one side (kind "side") or one modes check (kind "modes") of a framework in its own process."""
    payload = {"kind": kind, "framework": framework, "spec": spec.to_dict(), "out_dir": str(out_dir), **job}
    return spawn_job("parity", payload, timeout_s, out_dir, f"{framework} {kind} job", launcher)


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays and their names in the order the worker wrote them."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}, list(archive.files)


def judge_direction(request: ParityRequest, direction: str, out_dir: Path,
                    shared: list[tuple[list[str], str]]) -> ParityReport:
    source, target = DIRECTIONS[direction]
    report = ParityReport(request.workload, request.model_label, source, target, task=request.task_label)
    for precision in PRECISIONS:
        reference, ref_order = load_arrays(out_dir / f"{source}-{source}-{precision}.npz")
        other, other_order = load_arrays(out_dir / f"{target}-{source}-{precision}.npz")
        torch_order = ref_order if source == "torch" else other_order
        report.judgements.append(judge(precision, reference, other, torch_order, shared))
    return report


def run_sides(request: ParityRequest, out_dir: Path, launcher: LauncherFor = spawned) -> list[ParityReport]:
    error, shared = None, []
    for job in side_jobs(request, out_dir):
        envelope = spawn_parity_job("side", job.framework, request.spec(job.framework), out_dir, request.timeout_s,
                                    launcher(job.framework, 0), weight_sets=job.weight_sets,
                                    precisions=list(PRECISIONS), steps=request.steps)
        if not envelope.ok:
            error = envelope.error
            break
        shared += envelope.data["shared_weights"]
    reports = []
    for direction in request.directions:
        source, target = DIRECTIONS[direction]
        reports.append(ParityReport(request.workload, request.model_label, source, target, error=error,
                                    task=request.task_label) if error
                       else judge_direction(request, direction, out_dir, shared))
    return reports


def run_modes(request: ParityRequest, framework: str, out_dir: Path,
              launcher: LauncherFor = spawned) -> tuple[str, dict[str, Judgement] | str]:
    """One framework's compiled modes against its eager mode: {mode: judgement}, or why it could not run."""
    envelope = spawn_parity_job("modes", framework, request.spec(framework), out_dir, request.timeout_s,
                                launcher(framework, 1))
    if not envelope.ok:
        return framework, envelope.error
    arrays, order = load_arrays(out_dir / f"{framework}-modes.npz")
    return framework, {mode: judge_mode(arrays, order, mode) for mode in MODES[framework][1:]}


def judge_mode(arrays: dict[str, np.ndarray], order: list[str], mode: str) -> Judgement:
    """One compiled mode against eager: the forward output, then per optimizer one step's loss and state."""
    eager, compiled = (mode_arrays(arrays, name) for name in ("eager", mode))
    judgement = Judgement("fp32", MODE_TOLERANCES)
    judge_output(judgement, eager, compiled, "output", "forward", MODE_TOLERANCES.forward)
    eager_order = [key.removeprefix("eager/") for key in order if key.startswith("eager/")]
    for optimizer in PARITY_OPTIMIZERS:
        judge_state(judgement, eager, compiled, optimizer, eager_order)
        judge_loss(judgement, eager, compiled, optimizer)
    return judgement


def mode_arrays(arrays: dict[str, np.ndarray], mode: str) -> dict[str, np.ndarray]:
    return {key.removeprefix(f"{mode}/"): value for key, value in arrays.items() if key.startswith(f"{mode}/")}


def check_parity(request: ParityRequest,
                 launcher: LauncherFor = spawned) -> tuple[list[ParityReport], ModesReport | None]:
    """Both sides of every direction, and (unless asked not to) every framework's modes.

    Two at a time, for the two cores here: torch's modes check (torch.compile, the slowest job) runs
    beside the chain of side jobs, then TF's modes check takes whichever core frees first.
    """
    with tempfile.TemporaryDirectory(prefix="frameduel-parity-") as tmp:
        out_dir = Path(tmp)
        with ThreadPoolExecutor(max_workers=2) as pool:
            frameworks = request.frameworks if request.check_modes else ()
            modes = [pool.submit(run_modes, request, frameworks[0], out_dir, launcher)] if frameworks else []
            sides = pool.submit(run_sides, request, out_dir, launcher)
            modes += [pool.submit(run_modes, request, framework, out_dir, launcher) for framework in frameworks[1:]]
            reports = sides.result()
            if not frameworks:
                return reports, None
            report = ModesReport(request.workload, request.size, task=request.task_label)
            for framework, outcome in (future.result() for future in modes):
                if isinstance(outcome, str):
                    report.errors[framework] = outcome
                else:
                    report.judgements[framework] = outcome
            return reports, report


PARITY_FUNCTIONS = ("weight_map", "probe_points", "activation_to_canonical")


def check_parity_support(workload: Workload) -> None:
    """A workload's TF model module must define the weight transfer, checked without importing it
    (that would load TensorFlow here, in the parent)."""
    spec = importlib.util.find_spec(workload.model_modules["tf"])
    source = Path(spec.origin).read_text() if spec and spec.origin else ""
    defined = {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    missing = [name for name in PARITY_FUNCTIONS if name not in defined]
    if missing:
        raise FrameduelError(f"workload '{workload.name}' does not support parity: its TF model module lacks "
                             f"{', '.join(missing)}; see workloads/cnn/model_tf.py for the weight transfer")


def save_parity(store: Store, reports: list[ParityReport], modes: ModesReport | None,
                environment: dict[str, Any]) -> None:
    """Kept for `advise` and the report, which cite parity as evidence that the comparison is fair."""
    for report in reports:
        store.save_result("parity", f"{task_key(report)}/{report.source}-to-{report.target}", report.to_dict(),
                          environment)
    if modes is not None:
        store.save_result("parity-modes", task_key(modes), modes.to_dict(), environment)


def task_key(report: ParityReport | ModesReport) -> str:
    """workload/size, and the task where it is not plain training (keys stored before LoRA stay as they were)."""
    key = f"{report.workload}/{report.size}"
    return key if report.task == "train" else f"{key}/{report.task}"
