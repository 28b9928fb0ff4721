"""Full fine-tune against LoRA, per framework and mode, from a run's train and finetune cells; and the
claim that LoRA is a PyTorch-only story, judged from what was run (framework-free).

A train cell trains every weight (a full fine-tune); a finetune cell trains LoRA adapters on the same
model frozen, at the same batch. Both are language models (gpt, llama), so a sample is a sequence of
block_size tokens and tokens/s = sequences/s x block_size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from frameduel.analysis.summary import CellSummary, RunSummary
from frameduel.checkpoints import model_config
from frameduel.errors import FrameduelError
from frameduel.workloads import get_workload

LORA_CLAIM = "LoRA is a PyTorch-only story; TensorFlow has no official LoRA library"
NOT_TESTED = ("4-bit QLoRA (bitsandbytes, a CUDA GPU) was not tested: it is out of scope on this machine, so "
              "the claim is judged for full-precision LoRA only")


@dataclass(frozen=True)
class LoraComparison:
    """One framework and mode: its full fine-tune cell and its LoRA cell of the same model and batch."""

    model: str  # workload/size, e.g. llama/small
    framework: str
    mode: str
    lora: str  # the adapters, e.g. r8a16-q_proj+v_proj
    full_step_s: float | None
    lora_step_s: float | None
    full_tokens_s: float | None
    lora_tokens_s: float | None
    full_peak_mb: float | None
    lora_peak_mb: float | None
    trainable_share: float | None  # LoRA's trainable parameters / all parameters
    adapter_bytes: int | None
    lora_status: str

    @property
    def speedup(self) -> float | None:
        """How many times faster a LoRA step is than a full fine-tune step."""
        return self.full_step_s / self.lora_step_s if self.full_step_s and self.lora_step_s else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}


def tokens_per_s(cell: CellSummary) -> float | None:
    try:
        config = model_config(get_workload(cell.spec.workload), cell.spec.checkpoint, cell.spec.size)
    except FrameduelError:  # a checkpoint since moved: no token count
        return None
    return cell.throughput * config.block_size if cell.throughput else None


def lora_comparisons(summary: RunSummary) -> list[LoraComparison]:
    """Every finetune cell beside the train cell of the same model, precision, device, batch, framework, mode."""
    def same_work(cell: CellSummary) -> tuple:
        s = cell.spec
        return (s.workload, s.model_label, s.precision, s.device, s.batch_size, s.framework, s.mode)

    full = {same_work(cell): cell for cell in summary.cells if cell.spec.task == "train"}
    rows = []
    for cell in summary.cells:
        if cell.spec.task != "finetune":
            continue
        base = full.get(same_work(cell))
        facts = cell.model_facts
        share = facts["trainable_parameters"] / facts["parameters"] if facts.get("parameters") else None
        rows.append(LoraComparison(
            model=f"{cell.spec.workload}/{cell.spec.model_label}", framework=cell.spec.framework,
            mode=cell.spec.mode, lora=cell.spec.lora.label,
            full_step_s=base.step.median if base and base.step else None,
            lora_step_s=cell.step.median if cell.step else None,
            full_tokens_s=tokens_per_s(base) if base else None, lora_tokens_s=tokens_per_s(cell),
            full_peak_mb=base.peak_rss_mb if base else None, lora_peak_mb=cell.peak_rss_mb,
            trainable_share=share, adapter_bytes=facts.get("adapter_bytes"), lora_status=cell.status))
    return rows


def check_lora_claim(summary: RunSummary) -> tuple[str, list[str]]:
    """(status, evidence). Not supported where TF's own Keras LoRA trained the same adapters as PEFT (the same
    trainable parameter count; `frameduel parity` proves the same loss curve), with its speed against
    PEFT's; supported where TF's LoRA cells could not run; inconclusive without finetune cells."""
    finetune = [cell for cell in summary.cells if cell.spec.task == "finetune"]
    if not finetune:
        return "inconclusive", ["no finetune cells in this run test this claim", NOT_TESTED]
    groups: dict[str, list[CellSummary]] = {}
    for cell in finetune:
        groups.setdefault(cell.spec.comparison_group, []).append(cell)
    lines, ran, failed = [], 0, 0
    for group, cells in groups.items():
        ok = {fw: [c for c in cells if c.spec.framework == fw and c.step is not None] for fw in ("torch", "tf")}
        if not ok["tf"]:
            failed += 1
            lines.append(f"{group}: Keras LoRA did not run ({next((c.error for c in cells if c.error), 'no cell')})")
            continue
        ran += 1
        tf_best = min(ok["tf"], key=lambda c: c.step.median)
        counts = {c.model_facts.get("trainable_parameters") for c in cells if c.model_facts}
        same = "the same" if len(counts) == 1 else "different"
        line = (f"{group}: Keras enable_lora trained {same} trainable parameters as PEFT "
                f"({', '.join(f'{n:,}' for n in sorted(counts))}); tf best ({tf_best.spec.mode}) "
                f"{tf_best.step.median * 1e3:.3g} ms/step, {tf_best.peak_rss_mb or 0:.0f} MB peak")
        if ok["torch"]:
            torch_best = min(ok["torch"], key=lambda c: c.step.median)
            line += (f"; torch best ({torch_best.spec.mode}) {torch_best.step.median * 1e3:.3g} ms/step, "
                     f"{torch_best.peak_rss_mb or 0:.0f} MB peak")
        lines.append(line)
    status = "not supported" if ran > failed else "supported" if failed > ran else "inconclusive"
    headline = (f"TensorFlow trained LoRA adapters with Keras 3's built-in LoRA (Dense.enable_lora) in {ran} of "
                f"{len(groups)} finetune groups; the same adapters give the same loss curve as PEFT's "
                "(`frameduel parity` proves it in float64 for every LoRA workload)")
    return status, [headline, *lines, NOT_TESTED]
