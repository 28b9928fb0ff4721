from __future__ import annotations

import pytest

from frameduel import environment
from frameduel.errors import FrameduelError
from frameduel.runner.plan import PRESETS, MatrixRequest, Plan, build_plan, interleave
from frameduel.spec import FRAMEWORKS, MODES, NATIVE_FRAMEWORKS, Measurement, RunSpec


def spec(**overrides) -> RunSpec:
    fields = dict(workload="mlp", framework="torch", mode="eager", task="train", size="tiny")
    return RunSpec(**{**fields, **overrides})


def test_spec_rejects_mode_of_other_framework_naming_valid_modes():
    with pytest.raises(FrameduelError, match="mode 'xla' is not valid for torch; choose from: eager, compile"):
        spec(mode="xla")


@pytest.mark.parametrize(
    "field, value, fragment",
    [("framework", "jax", "unknown framework 'jax'"), ("task", "fly", "unknown task 'fly'"),
     ("precision", "int4", "unknown precision"), ("batch_size", 0, "batch size must be >= 1")],
)
def test_spec_rejects_bad_fields(field, value, fragment):
    with pytest.raises(FrameduelError, match=fragment):
        spec(**{field: value})


def test_measurement_round_trips_through_json():
    m = Measurement(spec=spec(), status="ok", step_seconds=[0.1, 0.2], compile_s=1.5, runtime={"a": 1})
    assert Measurement.from_json(m.to_json()) == m


def test_plan_covers_every_mode_and_task_and_round_trips():
    plan = build_plan(MatrixRequest(workloads=("mlp", "cnn"), size="tiny", device="cpu", threads=1))
    modes_per_group = sum(len(MODES[f]) for f in NATIVE_FRAMEWORKS)  # the default: torch and tf
    assert len(plan.specs) == 2 * 2 * modes_per_group  # workloads x tasks (quick: infer b1 only) x modes
    assert {(s.framework, s.mode) for s in plan.specs} == {(f, m) for f in NATIVE_FRAMEWORKS for m in MODES[f]}
    assert Plan.from_dict(plan.to_dict()) == plan
    every = build_plan(MatrixRequest(workloads=("mlp",), frameworks=FRAMEWORKS, size="tiny", device="cpu",
                                     threads=1, workers=(1, 2)))
    assert {(s.framework, s.mode) for s in every.specs} == {(f, m) for f in MODES for m in MODES[f]}
    # Data parallel is torch's and TF's: Keras' other backends get one-process train cells only.
    assert {s.framework for s in every.specs if s.workers == 2} == {"torch", "tf"}


def test_peak_gemm_cells_come_with_the_full_preset_or_on_request():
    def gemm_cells(**fields):
        plan = build_plan(MatrixRequest(workloads=("mlp",), size="tiny", device="cpu", **fields))
        return [(s.framework, s.task, s.mode) for s in plan.specs if s.workload == "gemm"]

    assert gemm_cells() == []  # quick
    assert gemm_cells(preset="full") == [("torch", "infer", "eager"), ("tf", "infer", "eager")]
    assert gemm_cells(peak=True) == gemm_cells(preset="full")
    assert gemm_cells(preset="full", peak=False) == []


def test_frameworks_alternate_within_each_group():
    plan = build_plan(MatrixRequest(workloads=("mlp",), tasks=("train",), size="tiny", device="cpu"))
    order = [s.framework for s in plan.specs]
    assert order == ["torch", "tf", "torch", "tf", "tf"]  # torch has 2 modes, tf 3: A B A B B


def test_interleave_keeps_groups_together():
    specs = [spec(task=t, framework=f, mode=MODES[f][0]) for t in ("train", "infer") for f in MODES]
    assert [s.comparison_group for s in interleave(specs)] == [s.comparison_group for s in specs]


def test_schedule_is_round_major():
    plan = build_plan(MatrixRequest(workloads=("mlp",), tasks=("train",), modes=("eager",), size="tiny",
                                    device="cpu", repeats=2))
    assert [(r, s.framework) for r, s in plan.schedule()] == [(0, "torch"), (0, "tf"), (1, "torch"), (1, "tf")]


@pytest.mark.parametrize(
    "request_fields, message",
    [
        (dict(workloads=("bert9000",)), "unknown workload 'bert9000'; choose from: mlp"),
        (dict(frameworks=("torch",), modes=("xla",)), "mode 'xla' is not valid for torch"),
        (dict(modes=("compile",)), "none of the modes compile applies to tf"),
        (dict(preset="huge"), "unknown preset 'huge'; choose from: quick, full"),
        (dict(size="giant"), "unknown size 'giant'"),
        (dict(repeats=0), "repeats must be >= 1"),
    ],
)
def test_bad_requests_name_the_problem(request_fields, message):
    with pytest.raises(FrameduelError, match=message):
        build_plan(MatrixRequest(**{"device": "cpu", **request_fields}))


def test_unsupported_precision_is_rejected():
    if environment.precision_supported("bf16", "cpu"):
        pytest.skip("this CPU does bf16 natively")
    with pytest.raises(FrameduelError, match="precision 'bf16' is not supported natively on this cpu"):
        build_plan(MatrixRequest(precisions=("bf16",), device="cpu"))


def test_every_preset_measures_each_cell_in_at_least_three_processes():
    assert all(preset.repeats >= 3 for preset in PRESETS.values())
    plan = build_plan(MatrixRequest(workloads=("mlp",), size="tiny", device="cpu", threads=1))
    assert plan.repeats == 3 and plan.launch == "fork"
    schedule = plan.schedule()
    assert [round_index for round_index, _ in schedule] == sorted(round_index for round_index, _ in schedule)
