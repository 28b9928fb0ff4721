"""Analytic FLOPs per workload agree with torch's own FLOP counter; achieved GFLOP/s and % of GEMM peak."""

from __future__ import annotations

import importlib

import pytest

from frameduel.analysis.summary import summarize_run
from frameduel.spec import Measurement, RunSpec
from frameduel.workloads import WORKLOADS, get_workload
from tests.tools import require_module

COUNTED_BY_TORCH = ["mlp", "cnn", "transformer", "gpt", "gemm"]  # nn.LSTM is one fused op the counter skips


@pytest.mark.parametrize("size", ["tiny", "small"])
@pytest.mark.parametrize("name", COUNTED_BY_TORCH)
def test_analytic_forward_flops_match_torch_flop_counter(name, size):
    torch = require_module("torch")
    from torch.utils.flop_counter import FlopCounterMode

    workload = get_workload(name)
    config = workload.config(size)
    model = importlib.import_module(workload.model_modules["torch"]).build(config).eval()
    inputs = torch.from_numpy(workload.make_batch(config, 1, 0).inputs)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    assert counter.get_total_flops() == pytest.approx(workload.forward_flops(config), rel=1e-9)


def test_lstm_flops_by_hand():
    workload = get_workload("lstm")
    config = workload.config("tiny")
    H, E, T = config.hidden, config.embed_dim, config.seq_len
    layers = 8 * H * (E + H) + (config.n_layer - 1) * 8 * H * (H + H)  # four gates, 2 FLOPs a multiply-add
    assert workload.forward_flops(config) == T * layers + 2 * H * config.classes


def test_every_builtin_workload_models_its_flops():
    assert all(workload.forward_flops is not None for workload in WORKLOADS.values())


def cell(workload: str, task: str, batch: int, seconds: float) -> Measurement:
    spec = RunSpec(workload=workload, framework="torch", mode="eager", task=task, batch_size=batch, size="tiny")
    return Measurement(spec=spec, status="ok", step_seconds=[seconds] * 5)


def test_achieved_gflops_and_share_of_the_gemm_peak():
    gemm, mlp = cell("gemm", "infer", 1, 0.001), cell("mlp", "train", 32, 0.002)
    summary = summarize_run([(0, gemm), (0, mlp)], [gemm.spec, mlp.spec])
    by_workload = {c.spec.workload: c for c in summary.cells}
    gemm_gflops = 2 * 64**3 / 0.001 / 1e9
    assert by_workload["gemm"].gflops == pytest.approx(gemm_gflops)
    mlp_flops = 32 * 3 * WORKLOADS["mlp"].forward_flops(WORKLOADS["mlp"].config("tiny"))  # training: x3
    assert by_workload["mlp"].gflops == pytest.approx(mlp_flops / 0.002 / 1e9)
    assert by_workload["mlp"].peak_fraction == pytest.approx(by_workload["mlp"].gflops / gemm_gflops)
    assert by_workload["gemm"].peak_fraction == pytest.approx(1.0)
