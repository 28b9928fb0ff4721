"""The fork server: every measured cell still runs in a fresh process of its own, in every workload and
mode, and a hung or killed child costs only its own cell."""

from __future__ import annotations

import dataclasses
import signal
import threading

import psutil
import pytest

from frameduel.jobs.process import Zygote
from frameduel.runner.plan import Plan
from frameduel.runner.scheduler import run_plan, spawn_measure, start_run
from frameduel.spec import MODES, NATIVE_FRAMEWORKS, RunSpec
from frameduel.store import Store
from frameduel.workloads import WORKLOADS
from tests.conftest import TINY_BUDGET

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier


def spec(workload: str, framework: str, mode: str, task: str = "train", batch_size: int = 4) -> RunSpec:
    return RunSpec(workload=workload, framework=framework, mode=mode, task=task, size="tiny",
                   batch_size=batch_size, threads=1)


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_every_workload_and_mode_runs_in_its_own_forked_process(db_path, cxx_compiler):
    native = {fw: MODES[fw] for fw in NATIVE_FRAMEWORKS}
    # torch.compile and XLA cost seconds a model on this CPU: two models prove their fork path
    # (inductor's compile workers start from the forked child); eager and tf.function run every workload.
    compiled = ("mlp", "gpt")
    cells = [spec(w, fw, mode) for w in WORKLOADS if w != "gemm" for fw in native for mode in native[fw]
             if mode not in ("compile", "xla") or w in compiled]
    cells += [spec("mlp", fw, mode, task="infer", batch_size=1) for fw in native for mode in native[fw]]
    cells += [spec("gpt", fw, mode, task="generate", batch_size=1) for fw in native for mode in native[fw]]
    # Keras on torch and JAX: their own zygotes, every mode; a compiled generate loop is refused by name.
    keras = [fw for fw in MODES if fw not in NATIVE_FRAMEWORKS]
    cells += [spec("mlp", fw, "eager") for fw in keras]  # compiled Keras cells: test_keras_backends
    cells += [spec("mlp", fw, "eager", task="infer", batch_size=1) for fw in keras]
    cells += [spec("gpt", "keras-torch", "eager", task="generate", batch_size=1)]  # JAX's: test_keras_backends
    refused = [spec("gpt", fw, mode, task="generate", batch_size=1) for fw in keras for mode in MODES[fw][1:]]
    cells += refused
    plan = Plan(preset="quick", specs=tuple(cells), budget=TINY_BUDGET, repeats=1, launch="fork")
    store = Store(db_path)
    run_id = start_run(store, plan)
    before = descendants()
    run_plan(store, run_id, plan)
    assert descendants() - before == set()  # zygotes and their children are all gone
    rounds = [measurement for _, measurement in store.measurements(run_id)]
    assert len(rounds) == len(cells)
    unsupported = {m.spec.key: m.error for m in rounds if m.status == "unsupported"}
    assert set(unsupported) == {cell.key for cell in refused}
    assert all("use --modes eager for generate" in error for error in unsupported.values()), unsupported
    assert [m.spec.key for m in rounds if m.status not in ("ok", "unsupported")] == [], \
        [m.error for m in rounds if m.status not in ("ok", "unsupported")]
    measured = [m for m in rounds if m.status == "ok"]
    processes = [m.runtime["process"] for m in measured]
    assert len({p["pid"] for p in processes}) == len(measured)  # one fresh process per cell
    parents = {m.spec.framework: set() for m in measured}
    for m, process in zip(measured, processes, strict=True):
        parents[m.spec.framework].add(process["parent_pid"])
        assert process["import_s"] < 0.5  # the framework came with the fork, not imported again
    assert all(len(pids) == 1 for pids in parents.values())  # one zygote per framework
    zygotes = set.union(*parents.values())
    assert len(zygotes) == len(parents) and psutil.Process().pid not in zygotes
    threads = {m.spec.framework: m.runtime["intra_op_threads"] for m in measured if m.spec.framework in native}
    assert threads == {"torch": 1, "tf": 1}  # each child configured its own runtime


def test_a_hung_or_killed_forked_worker_costs_only_its_cell(tmp_path):
    zygote = Zygote("numpy", tmp_path)  # the harness under test; the reference framework imports at once
    try:
        cell = spec("mlp", "numpy", "eager")
        # Samples for at least 30 s against a 0.3 s limit: it is cut off on any machine, fast or slow.
        hung = spawn_measure(cell, dataclasses.replace(TINY_BUDGET, min_seconds=30.0, max_seconds=60.0, timeout_s=0.3),
                             tmp_path, zygote.run_job)
        assert hung.status == "timeout" and "--timeout" in hung.error

        def kill_the_child_once_it_runs() -> None:
            for _ in range(400):
                children = psutil.Process(zygote.process.pid).children()
                if children:
                    children[0].send_signal(signal.SIGKILL)
                    return
                threading.Event().wait(0.025)

        killer = threading.Thread(target=kill_the_child_once_it_runs)
        killer.start()
        killed = spawn_measure(dataclasses.replace(cell, seed=1), dataclasses.replace(TINY_BUDGET, min_seconds=2.0,
                                                                                   max_seconds=3.0),
                            tmp_path, zygote.run_job)
        killer.join()
        assert killed.status == "failed" and "killed by SIGKILL" in killed.error
        after = spawn_measure(cell, TINY_BUDGET, tmp_path, zygote.run_job)
        assert after.status == "ok", after.error  # the same zygote serves the next cell
        assert psutil.Process(zygote.process.pid).children() == []
    finally:
        zygote.close()
    assert zygote.process is None
