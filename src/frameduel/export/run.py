"""Export one workload from one framework to deployment formats, gate every artefact, benchmark the valid ones.

Framework-free: everything that touches torch or tensorflow runs in worker processes.

    1. convert_worker, in the source framework's process: the source model (trained on digits for
       size "digits"; a Hugging Face checkpoint's config and weights with one), its weights, the gate's
       reference data, and that framework's formats.
    2. convert_worker, in the other framework's process, only for routes that convert there
       (torch -> TFLite through the Keras twin; see routes.py).
    3. per artefact: published into the model repository (``<out>/<model name>/<version>/``) with its
       manifest and reference data, then validate_worker in a fresh process of the runtime's own:
       load time, the gate (gate.py), and for a valid artefact the benchmark (bench.py).

Unsupported pairs, conversion failures, crashed or timed-out workers all become results with a reason;
nothing here raises for them.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from frameduel import __version__
from frameduel.browser.page import require_chromium, require_playwright
from frameduel.browser.setup import require_converter, require_npm_packages
from frameduel.checkpoints import model_config, open_checkpoint, resolve_workload
from frameduel.environment import default_threads, package_version
from frameduel.errors import FrameduelError
from frameduel.export.bench import BenchBudget
from frameduel.export.convert_worker import SOURCE_FILE
from frameduel.export.manifest import (
    BROWSER_FORMATS,
    DEFAULT_FORMATS,
    Manifest,
    TensorSpec,
    Validation,
    model_name,
    write_manifest,
)
from frameduel.export.reference import (
    DIGITS_SIZE,
    INPUT_NAME,
    OUTPUT_NAME,
    REFERENCE_FILE,
    load_reference,
    sequence_logits,
)
from frameduel.export.routes import BROWSER_TOKEN_IDS, Route, check_formats, check_packages, route
from frameduel.jobs.spawn import spawn_job
from frameduel.spec import FRAMEWORKS, MODES, SIZES, RunSpec, check_choice, split_list
from frameduel.store import Store, now_iso
from frameduel.workloads import get_workload

STATUSES = ("valid", "invalid", "unsupported", "failed")  # failed: the conversion produced no artefact
RUNTIME_PACKAGES = ("onnx", "onnxruntime", "onnxscript", "tf2onnx", "ai-edge-litert", "executorch", "torchao")


@dataclass(frozen=True)
class ExportRequest:
    workload: str
    framework: str
    formats: tuple[str, ...] = DEFAULT_FORMATS  # the browser formats only when asked for
    out: Path = Path("frameduel-models")
    size: str = DIGITS_SIZE  # a workload preset, or "digits": its digits config trained on load_digits
    # A Hugging Face model directory (gpt2, llama, mistral): its config and weights replace the preset's
    # (size then stays a preset, unused, as RunSpec.size does).
    checkpoint: str | None = None
    epochs: int = 5  # digits training epochs (size "digits" only)
    max_batch: int = 32  # largest batch an artefact accepts; the gate and the throughput figure use it
    seed: int = 0
    threads: int = 1  # intra-op threads of every runtime
    timeout_s: float = 600.0  # per worker process
    budget: BenchBudget = field(default_factory=BenchBudget)

    @property
    def model_label(self) -> str:
        """What is exported: the size, or "ckpt:<directory name>", the label a benchmark cell of the same
        checkpoint carries (RunSpec.model_label)."""
        if self.checkpoint is None:
            return self.size
        return RunSpec(self.workload, self.framework, MODES[self.framework][0], "infer",
                       checkpoint=self.checkpoint).model_label


@dataclass
class ArtefactResult:
    """One requested format's outcome. manifest is the artefact's final manifest (validation included)."""

    workload: str
    size: str
    framework: str
    format: str
    status: str  # one of STATUSES
    reason: str = ""
    directory: str | None = None
    manifest: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return model_name(self.workload, self.size, self.framework, self.format)  # = Manifest.model_name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_request(workload: str | None, checkpoint: Path | None, framework: str, formats: str, out: Path,
                   size: str | None, epochs: int, max_batch: int, threads: int | None, seed: int, timeout_s: float,
                   bench_seconds: float) -> ExportRequest:
    """`export`'s options; run_export checks them. Workload None: the checkpoint's family (a bad checkpoint
    refused now); size None: digits where the workload has a digits model and no checkpoint is given, else
    tiny; threads None: all cores."""
    workload, checkpoint_path = resolve_workload(workload, checkpoint, usage="to export (e.g. frameduel export mlp "
                                                 "--framework torch)")
    if size is None:  # a checkpoint's config sets the model; the preset is only RunSpec's placeholder
        size = DIGITS_SIZE if get_workload(workload).digits is not None and not checkpoint_path else "tiny"
    return ExportRequest(workload=workload, framework=framework, formats=split_list(formats) or (), out=out,
                         size=size, checkpoint=checkpoint_path, epochs=epochs, max_batch=max_batch, seed=seed,
                         threads=threads or default_threads(), timeout_s=timeout_s,
                         budget=BenchBudget(max_seconds=bench_seconds))


def check_request(request: ExportRequest) -> None:
    """Every user mistake becomes one FrameduelError before any worker starts."""
    workload = get_workload(request.workload)
    check_choice("framework", request.framework, FRAMEWORKS)
    check_formats(request.formats)
    check_packages(request.framework, request.formats)
    if request.checkpoint is not None:
        if request.size == DIGITS_SIZE:
            raise FrameduelError(f"size '{DIGITS_SIZE}' trains the workload's digits model; a checkpoint is "
                                 "exported with its own weights (leave --size out)")
        model_config(workload, request.checkpoint, request.size)  # a bad checkpoint, or another family's: refused
    if request.size == DIGITS_SIZE and workload.digits is None:
        raise FrameduelError(f"workload '{request.workload}' has no digits model; pass --size tiny (or small, base)")
    check_choice("size", request.size, (*SIZES, DIGITS_SIZE))
    if request.max_batch < 2:
        raise FrameduelError(f"--max-batch must be >= 2 (artefacts are traced at batch 2), got {request.max_batch}")
    if request.epochs < 1 or request.threads < 1:
        raise FrameduelError("--epochs and --threads must be >= 1")
    check_browser_tools(request.formats)


def check_browser_tools(formats: tuple[str, ...]) -> None:
    """Browser formats need Chromium, Playwright, the npm runtimes and (tfjs) the converter's venv:
    whichever is missing is one line naming its fix, before any worker starts; nothing is installed here."""
    if not set(formats) & set(BROWSER_FORMATS):
        return
    require_chromium()
    require_playwright()
    require_npm_packages()
    if "tfjs" in formats:
        require_converter()


def run_convert(request: ExportRequest, framework: str, formats: list[str], work_dir: Path) -> str:
    """Run one convert worker; return "" or why it left no results behind."""
    job = {"workload": request.workload, "size": request.size, "framework": framework, "source": request.framework,
           "formats": formats, "work_dir": str(work_dir), "epochs": request.epochs, "seed": request.seed,
           "threads": request.threads, "max_batch": request.max_batch, "checkpoint": request.checkpoint}
    envelope = spawn_job("convert", job, request.timeout_s, work_dir, f"{framework} converter")
    return "" if envelope.files else envelope.error or ""


def artefact_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def publish(request: ExportRequest, fmt: str, facts: dict[str, Any], source: dict[str, Any], how: Route,
            work_dir: Path, export_id: str) -> tuple[Path, Manifest]:
    """Move an artefact into the next version directory of its model and write its manifest there."""
    reference = load_reference(work_dir / REFERENCE_FILE)
    inputs, outputs = reference.batches[max(reference.batches)]
    manifest = Manifest(
        workload=request.workload, size=request.model_label, framework=request.framework, format=fmt,
        artefact=facts["artefact"],
        inputs=(TensorSpec(INPUT_NAME, (None, *inputs.shape[1:]), str(inputs.dtype)),),
        outputs=(TensorSpec(OUTPUT_NAME, (None, *outputs.shape[1:]), str(outputs.dtype)),),
        batch_sizes=None, max_batch=request.max_batch, opset=facts.get("opset"),
        size_bytes=artefact_bytes(work_dir / fmt / facts["artefact"]),
        source={"export_id": export_id, "route": how.how, "converter": how.converter, "seed": request.seed,
                "weights_sha256": source["weights_sha256"], "framework_version": source["framework_version"],
                "train": source["train"], "frameduel": __version__,
                **({"checkpoint": checkpoint_facts(request.checkpoint)} if request.checkpoint else {})},
        created=now_iso(), quantization=facts.get("quantization") or {}, delegation=facts.get("delegation") or {},
    )
    directory = new_version_dir(request.out / manifest.model_name)
    shutil.move(str(work_dir / fmt / facts["artefact"]), directory / facts["artefact"])
    shutil.copy(work_dir / REFERENCE_FILE, directory / REFERENCE_FILE)
    write_manifest(directory, manifest)
    return directory, manifest


def checkpoint_facts(checkpoint: str) -> dict[str, Any]:
    """Which checkpoint an artefact holds: its directory, the config frameduel built from it, its size."""
    loaded = open_checkpoint(checkpoint)
    return {"directory": loaded.directory.name, "path": str(loaded.directory), "workload": loaded.workload,
            "parameters": loaded.parameters, "config": asdict(loaded.config)}


def new_version_dir(model_dir: Path) -> Path:
    """<model_dir>/<n+1>, n the highest existing version; mkdir is the lock against a concurrent export."""
    model_dir.mkdir(parents=True, exist_ok=True)
    while True:
        versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        directory = model_dir / str(max(versions, default=0) + 1)
        try:
            directory.mkdir()
            return directory
        except FileExistsError:
            continue


class Checked(NamedTuple):
    """What the validation worker found: the gate's verdict, the benchmark (null unless it passed and a
    budget was given), and the delegation its runtime reported at load ({} where the export decided it)."""

    validation: Validation
    benchmark: dict[str, Any] | None
    delegation: dict[str, Any]


def validate_artefact(directory: Path, threads: int = 1, budget: BenchBudget | None = BenchBudget(),
                      timeout_s: float = 600.0) -> Checked:
    """Gate (and, if it passes and budget is given, benchmark) the artefact in directory, in a fresh process."""
    payload = {"directory": str(directory), "threads": threads, "budget": asdict(budget) if budget else None}
    with tempfile.TemporaryDirectory(prefix="frameduel-validate-") as tmp:
        envelope = spawn_job("validate", payload, timeout_s, Path(tmp), "validation worker")
    if not envelope.ok:
        return Checked(Validation(False, envelope.error), None, {})
    result = envelope.data
    validation = result["validation"]
    return Checked(Validation(**{**validation, "batch_sizes": tuple(validation["batch_sizes"])}), result["benchmark"],
                   result.get("delegation") or {})


def convert_all(request: ExportRequest, work_dir: Path) -> tuple[dict[str, Route | str], dict[str, str]]:
    """Run the convert workers; return each format's route (or unsupported reason) and, per converter
    framework, why it left results missing ("source" when the source model itself failed)."""
    routes = {fmt: route(request.framework, fmt) for fmt in request.formats}
    by_converter = {fw: [fmt for fmt, how in routes.items() if isinstance(how, Route) and how.converter == fw]
                    for fw in FRAMEWORKS}
    deaths = {request.framework: run_convert(request, request.framework, by_converter[request.framework], work_dir)}
    source_path = work_dir / SOURCE_FILE
    source = json.loads(source_path.read_text()) if source_path.exists() else {"error": deaths[request.framework]}
    if source.get("status") != "ok":
        return routes, {"source": source["error"] or "the source model could not be built"}
    for framework, formats in by_converter.items():
        if framework != request.framework and formats:
            deaths[framework] = run_convert(request, framework, formats, work_dir)
    return routes, deaths


def format_outcome(request: ExportRequest, fmt: str, how: Route | str, work_dir: Path, deaths: dict[str, str],
                   export_id: str) -> ArtefactResult:
    result = ArtefactResult(request.workload, request.model_label, request.framework, fmt, status="failed")
    if isinstance(how, str):
        return replace(result, status="unsupported", reason=how)
    if fmt in BROWSER_FORMATS and sequence_logits(get_workload(request.workload)):
        return replace(result, status="unsupported", reason=BROWSER_TOKEN_IDS)
    if "source" in deaths:
        return replace(result, reason=deaths["source"])
    facts_path = work_dir / f"{fmt}.json"
    if not facts_path.exists():
        return replace(result, reason=deaths.get(how.converter) or f"the {how.converter} converter wrote no {fmt}")
    facts = json.loads(facts_path.read_text())
    if facts["status"] != "ok":
        return replace(result, reason=facts["error"])
    source = json.loads((work_dir / SOURCE_FILE).read_text())
    directory, manifest = publish(request, fmt, facts, source, how, work_dir, export_id)
    validation, bench, delegation = validate_artefact(directory, request.threads, request.budget, request.timeout_s)
    manifest = replace(manifest, validation=validation, delegation=manifest.delegation or delegation)
    write_manifest(directory, manifest)
    return replace(result, status="valid" if validation.valid else "invalid", reason=validation.reason,
                   directory=str(directory), manifest=json.loads(manifest.to_json()), benchmark=bench)


def run_export(request: ExportRequest,
               on_result: Callable[[ArtefactResult], None] | None = None) -> tuple[str, list[ArtefactResult]]:
    """Export, gate and benchmark every requested format; returns (export id, one result per format)."""
    if request.checkpoint is not None:  # absolute, as RunSpec.checkpoint and the manifests' source.checkpoint
        request = replace(request, checkpoint=str(Path(request.checkpoint).expanduser().resolve()))
    check_request(request)
    export_id = time.strftime("export-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    results = []
    with tempfile.TemporaryDirectory(prefix="frameduel-export-") as tmp:
        work_dir = Path(tmp)
        routes, deaths = convert_all(request, work_dir)
        for fmt in request.formats:
            results.append(format_outcome(request, fmt, routes[fmt], work_dir, deaths, export_id))
            if on_result:
                on_result(results[-1])
    return export_id, results


def save_results(store: Store, export_id: str, request: ExportRequest, results: list[ArtefactResult],
                 environment: dict[str, Any]) -> None:
    """One row per format in the results table: kind "export", key = the model name (newest wins).

    data (JSON): export_id; request {workload, size, checkpoint, framework, formats, out, epochs, max_batch,
    seed, threads, budget}; runtime_packages {name: version}; and ArtefactResult's fields: workload, size,
    framework, format, status (valid | invalid | unsupported | failed), reason, directory (the
    version directory, or null), manifest (manifest.json's content, validation included: valid,
    reason, batch_sizes, max_abs_diff, max_rel_diff, tolerance, metric {source_accuracy,
    artefact_accuracy, accuracy_drop, agreement}; and delegation {delegate, partitions, delegated_ops,
    outside {op: count}, how}), benchmark (null unless valid: runtime, threads, size_bytes, load_s, import_s,
    latency_ms_p50, latency_ms_p99, latency_calls, latency_noise, throughput_batch, throughput_sps,
    throughput_sps_ci [low, high], throughput_calls, harness_rss_mb, runtime_rss_mb, peak_rss_mb).
    """
    packages = {name: package_version(name) for name in RUNTIME_PACKAGES}
    request_data = {**asdict(request), "out": str(request.out), "formats": list(request.formats)}
    for result in results:
        data = {"export_id": export_id, "request": request_data, "runtime_packages": packages, **result.to_dict()}
        store.save_result("export", result.key, data, environment)
