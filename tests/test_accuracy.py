"""Time to accuracy on the digits data: the split, the bookkeeping, and real training runs in both frameworks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frameduel.accuracy.run import AccuracyRequest, TrainingRun, run_accuracy, summarize
from frameduel.datasets import (
    TEST_FRACTION,
    TRAIN_IMAGES,
    epoch_batches,
    load_digits_split,
    shuffle_rng,
    stratified_split,
)
from frameduel.spec import RunSpec
from frameduel.workloads import WORKLOADS
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier


def test_digits_split_is_deterministic_stratified_and_scaled():
    first, second = load_digits_split(), load_digits_split()
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.train_images.shape == (TRAIN_IMAGES, 8, 8) and first.train_images.dtype == np.float32
    assert first.train_labels.dtype == np.int64
    assert 0.0 <= first.train_images.min() and first.train_images.max() == 1.0
    class_counts = np.bincount(first.train_labels, minlength=10) + np.bincount(first.test_labels, minlength=10)
    np.testing.assert_array_equal(np.bincount(first.test_labels, minlength=10),
                                  np.round(TEST_FRACTION * class_counts))


def test_stratified_split_partitions_every_class():
    labels = np.repeat(np.arange(3), [10, 20, 31])
    train_idx, test_idx = stratified_split(labels, 0.2, seed=1)
    assert not set(train_idx) & set(test_idx) and len(train_idx) + len(test_idx) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[test_idx]), [2, 4, 6])
    np.testing.assert_array_equal(stratified_split(labels, 0.2, seed=1)[1], test_idx)


def test_epoch_batches_are_seeded_full_and_reshuffled():
    batches = epoch_batches(100, 32, shuffle_rng(3))
    assert [len(batch) for batch in batches] == [32, 32, 32]  # the partial batch of 4 is dropped
    assert len(np.unique(np.concatenate(batches))) == 96
    np.testing.assert_array_equal(np.concatenate(batches), np.concatenate(epoch_batches(100, 32, shuffle_rng(3))))
    rng = shuffle_rng(3)
    assert not np.array_equal(epoch_batches(100, 32, rng)[0], epoch_batches(100, 32, rng)[0])


@pytest.mark.parametrize(("workload", "shape"), [("mlp", (5, 64)), ("cnn", (5, 1, 8, 8))])
def test_digits_adapters_give_canonical_inputs(workload, shape):
    adapter = WORKLOADS[workload].digits
    images = np.arange(5 * 64, dtype=np.float32).reshape(5, 8, 8)
    inputs = adapter.to_inputs(images)
    assert inputs.shape == shape and inputs.dtype == np.float32 and inputs.flags.c_contiguous
    np.testing.assert_array_equal(inputs.reshape(5, 8, 8), images)
    assert adapter.config.classes == 10


def curve(framework: str, seed: int, accuracy: list[float]) -> TrainingRun:
    spec = RunSpec(workload="mlp", framework=framework, mode="eager", task="train", seed=seed)
    return TrainingRun(spec, "ok", epoch_seconds=[2.0] + [1.0] * (len(accuracy) - 1), accuracy=accuracy)


def test_medians_count_unreached_seeds_as_infinitely_slow():
    runs = [curve("torch", 0, [0.5, 0.96, 0.97]), curve("torch", 1, [0.5, 0.9, 0.95]),
            curve("torch", 2, [0.5, 0.6, 0.7]), curve("tf", 0, [0.96, 0.9, 0.9]), curve("tf", 1, [0.5, 0.6, 0.9])]
    torch_summary, tf_summary = summarize(runs, target=0.95)
    assert torch_summary.reached == 2 and torch_summary.epochs_to_target == 3  # median of 2, 3, inf
    assert torch_summary.seconds_to_target == 4.0  # epochs 2 + 1 + 1
    assert torch_summary.first_epoch_s == 2.0 and torch_summary.steady_epoch_s == 1.0
    assert torch_summary.final_accuracy == 0.95 and torch_summary.best_accuracy == 0.95
    assert tf_summary.reached == 1 and tf_summary.epochs_to_target is None  # median of 1, inf
    assert tf_summary.seconds_to_target is None and tf_summary.best_accuracy == pytest.approx(0.93)


def test_mlp_reaches_target_in_both_frameworks():
    result = run_cli("accuracy", "--workloads", "mlp", "--seeds", "1", "--target", "0.9", "--max-epochs", "15",
                     "--threads", "1", "--json", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    report = json.loads(result.stdout)
    summaries = {summary["framework"]: summary for summary in report["summaries"]}
    runs = {run["spec"]["framework"]: run for run in report["runs"]}
    assert set(summaries) == set(runs) == {"torch", "tf"}
    assert runs["torch"]["spec"]["mode"] == "eager" and runs["tf"]["spec"]["mode"] == "function"
    for framework, summary in summaries.items():
        run = runs[framework]
        assert run["status"] == "ok", run
        assert len(run["accuracy"]) == len(run["epoch_seconds"]) == len(run["loss"]) == 15
        assert all(seconds > 0 for seconds in run["epoch_seconds"])
        assert run["loss"][-1] < run["loss"][0]  # it learned
        assert summary["reached"] == 1 and 1 <= summary["epochs_to_target"] <= 15
        epochs = int(summary["epochs_to_target"])
        assert run["accuracy"][epochs - 1] >= 0.9 and all(acc < 0.9 for acc in run["accuracy"][: epochs - 1])
        assert summary["seconds_to_target"] == pytest.approx(sum(run["epoch_seconds"][:epochs]))
        assert summary["first_epoch_s"] == run["epoch_seconds"][0] > 0
        assert summary["final_accuracy"] == run["accuracy"][-1]
        assert summary["best_accuracy"] == max(run["accuracy"]) >= 0.9
    assert "0.9 at epoch" in result.stderr  # per-run progress lines go to stderr under --json


def test_cnn_trains_on_8x8_digits_in_both_frameworks():
    runs, summaries = run_accuracy(AccuracyRequest(workloads=("cnn",), seeds=1, target=0.5, max_epochs=2, threads=1))
    assert [run.status for run in runs] == ["ok", "ok"], [run.error for run in runs]
    for run in runs:
        assert len(run.accuracy) == 2 and max(run.accuracy) > 0.3  # well above chance (0.1) after two epochs
    assert [summary.framework for summary in summaries] == ["torch", "tf"]


@pytest.mark.parametrize(("args", "message"), [
    (["--workloads", "lstm"], "choose from: mlp, cnn"),
    (["--workloads", "nope"], "unknown workload 'nope'"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--target", "0"], "--target is a test accuracy in (0, 1]"),
    (["--target", "1.5"], "--target is a test accuracy in (0, 1]"),
    (["--modes", "torch=xla"], "mode 'xla' is not valid for torch"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run_cli("accuracy", *args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
