"""Popular claims checked against synthetic runs whose speedups are known (no framework needed)."""

from __future__ import annotations

import json
import re

import numpy as np

from frameduel.analysis.summary import summarize_run
from frameduel.report.claims import NO_EVIDENCE, SMALL_MODEL_CLAIM, check_claims
from frameduel.report.finetuning import LORA_CLAIM, lora_comparisons
from frameduel.spec import LoraSettings, Measurement, RunSpec

COMPILE = "torch.compile speeds up training/inference by 30–60%"
XLA = "XLA speeds up TensorFlow by 15–20%"


def fake(framework: str, mode: str, median_s: float, workload: str = "mlp", task: str = "train", batch: int = 32,
         spread: float = 0.01, seed: int = 0) -> Measurement:
    rng = np.random.default_rng(seed)
    spec = RunSpec(workload=workload, framework=framework, mode=mode, task=task, batch_size=batch, size="tiny")
    samples = median_s * (1 + spread * rng.standard_normal(200))
    return Measurement(spec=spec, status="ok", step_seconds=samples.tolist())


def speedup_in(line: str) -> float:
    return float(re.search(r"([0-9.]+)x \[", line).group(1))


def claims_of(*measurements: Measurement) -> dict:
    summary = summarize_run([(0, m) for m in measurements], [m.spec for m in measurements])
    return {result.claim: result for result in check_claims(summary)}


def compile_pair(speedup: float, workload: str, seed: int, spread: float = 0.01) -> list[Measurement]:
    return [fake("torch", "eager", 0.010 * speedup, workload, spread=spread, seed=seed),
            fake("torch", "compile", 0.010, workload, spread=spread, seed=seed + 1)]


def test_compile_speedup_inside_the_claimed_range_supports_it():
    result = claims_of(*compile_pair(1.45, "mlp", 0), *compile_pair(1.45, "cnn", 2))[COMPILE]
    assert result.status == "supported"
    assert "2 of 2 group(s) in range" in result.evidence[0]
    [cnn] = [line for line in result.evidence if line.startswith("cnn/tiny/train/b32/fp32/cpu: ")]
    assert abs(speedup_in(cnn) - 1.45) < 0.01 and cnn.endswith(" in range")


def test_small_compile_speedup_with_a_tight_ci_does_not_support_it():
    result = claims_of(*compile_pair(1.05, "mlp", 0), *compile_pair(1.05, "cnn", 2))[COMPILE]
    assert result.status == "not supported"
    assert all(line.endswith(" below") for line in result.evidence[1:])


def test_a_speedup_far_above_the_range_does_not_support_the_range_either():
    result = claims_of(*compile_pair(3.0, "mlp", 0))[COMPILE]
    assert result.status == "not supported" and result.evidence[1].endswith(" above")


def test_split_groups_are_inconclusive():
    result = claims_of(*compile_pair(1.45, "mlp", 0), *compile_pair(1.05, "cnn", 2))[COMPILE]
    assert result.status == "inconclusive"
    assert "1 of 2 group(s) in range, 1 outside" in result.evidence[0]


def test_no_compile_cells_is_inconclusive_with_no_evidence():
    results = claims_of(fake("torch", "eager", 0.01), fake("tf", "eager", 0.01, seed=1))
    assert (results[COMPILE].status, results[COMPILE].evidence) == ("inconclusive", [NO_EVIDENCE])
    assert (results[XLA].status, results[XLA].evidence) == ("inconclusive", [NO_EVIDENCE])


def test_xla_is_judged_against_graph_mode_from_the_cells_samples():
    # XLA is 1.17x graph mode but 2.34x eager: only the graph-mode baseline makes the claim hold.
    results = claims_of(fake("tf", "eager", 0.0234), fake("tf", "function", 0.0117, seed=1),
                        fake("tf", "xla", 0.010, seed=2))
    assert results[XLA].status == "supported"
    assert results[XLA].evidence[0].startswith("tf xla vs tf function")
    assert abs(speedup_in(results[XLA].evidence[1]) - 1.17) < 0.01


def test_torch_winning_small_models_supports_the_overhead_claim():
    results = claims_of(fake("torch", "eager", 0.005), fake("tf", "function", 0.010, seed=1),
                        fake("torch", "eager", 0.030, workload="cnn", seed=2),
                        fake("tf", "eager", 0.010, workload="cnn", seed=3))  # cnn training is not a small model
    result = results[SMALL_MODEL_CLAIM]
    assert result.status == "supported"
    [line] = result.evidence[1:]
    assert "mlp/" in line and "torch eager vs tf function" in line and line.endswith(" faster")
    assert abs(speedup_in(line) - 2.0) < 0.02


def test_tf_winning_small_models_refutes_the_overhead_claim():
    results = claims_of(fake("torch", "eager", 0.020, workload="cnn", task="infer", batch=1),
                        fake("tf", "eager", 0.010, workload="cnn", task="infer", batch=1, seed=1))
    assert results[SMALL_MODEL_CLAIM].status == "not supported"  # batch-1 inference counts as small


def test_overhead_claim_without_small_model_groups_is_inconclusive():
    results = claims_of(fake("torch", "eager", 0.005, workload="cnn"), fake("tf", "eager", 0.010, workload="cnn"))
    assert results[SMALL_MODEL_CLAIM].evidence == [NO_EVIDENCE]
    assert results[SMALL_MODEL_CLAIM].status == "inconclusive"


def test_results_serialise_to_json():
    results = claims_of(*compile_pair(1.45, "mlp", 0))
    data = json.loads(json.dumps([r.to_dict() for r in results.values()]))
    assert [d["status"] for d in data] == ["supported"] + ["inconclusive"] * 7
    assert set(data[0]) == {"claim", "status", "evidence"}


# -- "LoRA is a PyTorch-only story": judged from the finetune cells. --

LORA = LoraSettings(rank=8, alpha=16.0, targets=("q_proj", "v_proj"))


def lm_cell(framework: str, task: str, median_s: float, status: str = "ok", trainable: int = 2048,
            seed: int = 0) -> Measurement:
    spec = RunSpec(workload="llama", framework=framework, mode="eager", task=task, size="tiny",
                   lora=LORA if task == "finetune" else None)
    if status != "ok":
        return Measurement(spec=spec, status=status, error="ValueError: no LoRA here")
    samples = median_s * (1 + 0.01 * np.random.default_rng(seed).standard_normal(200))
    facts = {"parameters": 30000, "trainable_parameters": trainable if task == "finetune" else 30000}
    if task == "finetune":
        facts["adapter_bytes"] = 4 * trainable + 400
    return Measurement(spec=spec, status="ok", step_seconds=samples.tolist(), peak_rss_mb=300.0, model_facts=facts)


def lora_summary(*measurements: Measurement):
    return summarize_run([(0, m) for m in measurements], [m.spec for m in measurements])


def test_keras_lora_training_the_same_adapters_refutes_the_pytorch_only_claim():
    result = claims_of(lm_cell("torch", "finetune", 0.002), lm_cell("tf", "finetune", 0.003, seed=1))[LORA_CLAIM]
    assert result.status == "not supported"
    assert "the same trainable parameters as PEFT (2,048)" in result.evidence[1]
    assert "QLoRA" in result.evidence[-1] and "not tested" in result.evidence[-1]


def test_keras_lora_that_could_not_run_supports_the_claim():
    result = claims_of(lm_cell("torch", "finetune", 0.002), lm_cell("tf", "finetune", 0, status="failed"))[LORA_CLAIM]
    assert result.status == "supported" and "Keras LoRA did not run (ValueError: no LoRA here)" in result.evidence[1]


def test_a_different_trainable_count_is_reported():
    result = claims_of(lm_cell("torch", "finetune", 0.002),
                       lm_cell("tf", "finetune", 0.003, trainable=4096, seed=1))[LORA_CLAIM]
    assert "different trainable parameters as PEFT (2,048, 4,096)" in result.evidence[1]


def test_without_finetune_cells_the_lora_claim_is_inconclusive():
    assert claims_of(*compile_pair(1.45, "mlp", 0))[LORA_CLAIM].status == "inconclusive"


def test_full_vs_lora_pairs_each_finetune_cell_with_its_train_cell():
    [row] = lora_comparisons(lora_summary(lm_cell("tf", "train", 0.004), lm_cell("tf", "finetune", 0.002, seed=1)))
    assert row.framework == "tf" and abs(row.speedup - 2.0) < 0.05
    assert abs(row.trainable_share - 2048 / 30000) < 1e-12 and row.adapter_bytes == 4 * 2048 + 400
    assert abs(row.lora_tokens_s / row.full_tokens_s - 2.0) < 0.05  # tokens/s: sequences/s x block_size


LINEAR = "DDP scales linearly across multiple GPUs"
GRAPH = "TensorFlow's graph compilation can achieve slightly better utilization in multi-GPU training"


def data_parallel(framework: str, mode: str, workers: int, median_s: float, drift: float = 0.01) -> list:
    """One cell of batch 32 (so 2 workers at the same global batch is strong scaling), in 3 processes whose
    medians drift apart by `drift` each."""
    cells = []
    for round_index in range(3):
        measurement = fake(framework, mode, median_s * (1 + drift * round_index), seed=round_index)
        measurement.spec = RunSpec(workload="mlp", framework=framework, mode=mode, task="train", batch_size=32,
                                   size="tiny", threads=1, workers=workers)
        cells.append((round_index, measurement))
    return cells


def scaling_claims(*cells: list) -> dict:
    rounds = [cell for group in cells for cell in group]
    summary = summarize_run(rounds, list({m.spec.key: m.spec for _, m in rounds}.values()))
    return {result.claim: result for result in check_claims(summary)}


def test_near_linear_ddp_supports_the_scaling_claim_and_names_the_hardware():
    # torch: 2 workers halve the step (efficiency 1.0); tf function: they take 0.8 of it (0.62).
    results = scaling_claims(data_parallel("torch", "eager", 1, 0.010), data_parallel("torch", "eager", 2, 0.005),
                             data_parallel("tf", "function", 1, 0.010), data_parallel("tf", "function", 2, 0.008))
    linear, graph = results[LINEAR], results[GRAPH]
    assert linear.status == "supported" and "CPU cores, not GPUs" in linear.evidence[0]
    assert "efficiency 1.00" in linear.evidence[1] and linear.evidence[1].endswith("linear")
    assert graph.status == "not supported" and graph.evidence[1].endswith("torch better")


def test_sublinear_ddp_refutes_and_no_data_parallel_cells_are_inconclusive():
    results = scaling_claims(data_parallel("torch", "eager", 1, 0.010), data_parallel("torch", "eager", 2, 0.009))
    assert results[LINEAR].status == "not supported" and results[LINEAR].evidence[1].endswith("sublinear")
    assert results[GRAPH].evidence == [NO_EVIDENCE]
    assert claims_of(*compile_pair(1.45, "mlp", 0))[LINEAR].evidence == [NO_EVIDENCE]


def test_a_scaling_ci_too_wide_to_tell_is_unclear_not_linear():
    # Efficiency 0.95 at the median, but the processes disagree by 40%: the CI reaches far below 0.9.
    results = scaling_claims(data_parallel("torch", "eager", 1, 0.010),
                             data_parallel("torch", "eager", 2, 0.0042, drift=0.4))
    assert results[LINEAR].status == "inconclusive" and results[LINEAR].evidence[1].endswith("unclear")


def test_keras_claims_compare_the_backends_with_native_torch():
    # torch 10 ms; Keras on JAX 5 ms (faster), on torch 20 ms (slower), TF (Keras) 12 ms.
    results = claims_of(fake("torch", "eager", 0.010), fake("keras-jax", "jit", 0.005, seed=1),
                        fake("keras-torch", "eager", 0.020, seed=2), fake("tf", "function", 0.012, seed=3))
    best = results["With the right backend, Keras 3 outperforms reference PyTorch implementations"]
    assert best.status == "supported" and "keras-jax vs torch 2.0" in best.evidence[1]
    assert results["Keras' torch backend is slower than native PyTorch"].status == "supported"
    only_native = claims_of(*compile_pair(1.45, "mlp", 0))
    assert only_native["Keras' torch backend is slower than native PyTorch"].evidence == [NO_EVIDENCE]
