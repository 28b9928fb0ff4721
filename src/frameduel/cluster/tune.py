"""`frameduel sweep --search random [--early-stop asha]`: Ray Tune draws the trials and stops bad ones.

The trial function is the sweep's own: the accuracy worker in a fresh process, pinned to cores of its
own (node_tasks.claimed_cores), here told to stream each epoch to a file (accuracy.worker.EpochProgress)
so the Tune function can report it and ASHA can decide while the run goes on. A stopped trial's
worker ends after its current epoch. The driver's Tune callback builds each trial's TrialResult from
what was reported and hands it to the sweep, which stores it as kind "sweep-trial" like a grid trial.

One Tuner per (workload, framework, seed), one after another: ASHA compares a trial's accuracy at an
epoch with other trials' at the same epoch, which only means something between runs of one model in
one framework.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frameduel.accuracy.run import TrainingRun, resolve_modes, spawn_training
from frameduel.cluster.cells import driver_thread_settings
from frameduel.cluster.node_tasks import claimed_cores, placement, use_thread_settings
from frameduel.cluster.session import RaySession
from frameduel.errors import FrameduelError
from frameduel.sweep import GRID_KEYS, LogRange, SweepRequest, Trial, TrialResult, trial_options, trial_spec

POLL_S = 0.1
# ASHA: every trial trains at least GRACE_EPOCHS; at each rung only the best 1/REDUCTION go on.
GRACE_EPOCHS = 2
REDUCTION = 3


def trial_of(config: dict[str, Any]) -> Trial:
    return Trial(config["workload"], config["framework"], config["mode"], config["seed"],
                 tuple((key, config[key]) for key in GRID_KEYS if key in config))


def epoch_metrics(epoch: dict[str, float], index: int) -> dict[str, Any]:
    return {"accuracy": epoch["accuracy"], "loss": epoch["loss"], "epoch_s": epoch["epoch_seconds"], "epoch": index}


def tune_trial(config: dict[str, Any], request_data: dict[str, Any], cpus: int, thread_env: dict[str, str]) -> None:
    """The Tune function: one trial, its epochs reported as the worker finishes them, then its whole run."""
    from ray import tune

    use_thread_settings(thread_env)
    request = SweepRequest.from_dict(request_data)
    trial = trial_of(config)
    spec, a = trial_spec(trial, request, cpus), request.accuracy
    with tempfile.TemporaryDirectory(prefix="frameduel-tune-") as tmp, claimed_cores(cpus) as cores:
        progress = Path(tmp) / "progress.jsonl"
        outcome: dict[str, TrainingRun] = {}
        training = threading.Thread(target=lambda: outcome.update(run=spawn_training(
            spec, a.max_epochs, a.timeout_s, **trial_options(trial, request), cpus=cores or None,
            progress=str(progress))), daemon=True)
        started = time.time()
        training.start()
        reported = 0
        try:
            while True:
                running = training.is_alive()  # read before the file: a finished run has written every epoch
                epochs = progress.read_text().splitlines() if progress.exists() else []
                for line in epochs[reported:]:
                    reported += 1
                    tune.report(epoch_metrics(json.loads(line), reported))
                if not running:
                    break
                time.sleep(POLL_S)
            run = outcome["run"]
            final = {"run": {**run.to_dict(), "spec": spec.to_dict()}, "cpus": cores, "started_at": started,
                     "finished_at": time.time(), "placement": placement()}
            last = {"accuracy": run.accuracy[-1] if run.accuracy else 0.0, "loss": 0.0, "epoch_s": 0.0}
            tune.report({**epoch_metrics({**last, "epoch_seconds": 0.0}, reported), "final": json.dumps(final)})
        finally:
            progress.with_name(progress.name + ".stop").touch()  # stopped by ASHA: the worker ends after this epoch
            training.join(timeout=a.timeout_s)


def trial_result(config: dict[str, Any], reports: list[dict[str, Any]], request: SweepRequest, cpus: int,
                 started: float, failure: str | None) -> TrialResult:
    """A finished Tune trial as the sweep stores it: its own run if it ended, else the epochs it reported."""
    trial = trial_of(config)
    spec = trial_spec(trial, request, cpus)
    final = next((json.loads(r["final"]) for r in reports if "final" in r), None)
    if final is not None:
        return TrialResult(trial, TrainingRun(**{**final["run"], "spec": spec}), final["cpus"],
                           final["started_at"] - started, final["finished_at"] - started, final["placement"])
    epochs = [r for r in reports if "final" not in r]
    status, error = ("failed", failure) if failure else ("stopped", f"stopped by ASHA after epoch {len(epochs)}")
    run = TrainingRun(spec, status, error, epoch_seconds=[r["epoch_s"] for r in epochs],
                      accuracy=[r["accuracy"] for r in epochs], loss=[r["loss"] for r in epochs])
    return TrialResult(trial, run, [], 0.0, time.time() - started)


class TuneSearch:
    """A TrialSearch on a Ray cluster at `address` (None: a local one-node cluster for the search)."""

    def __init__(self, address: str | None, cpus_per_trial: int = 1) -> None:
        if cpus_per_trial < 1:
            raise FrameduelError(f"--cpus-per-trial must be >= 1, got {cpus_per_trial}")
        self.session = RaySession(address)
        self.cpus_per_trial = cpus_per_trial

    def search(self, remaining: dict[tuple[str, str, int], int], request: SweepRequest,
               emit: Callable[[TrialResult], None]) -> None:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the reporter that honours verbose=0
        with self.session, tempfile.TemporaryDirectory(prefix="frameduel-tune-") as storage:
            started = time.time()
            for (workload, framework, seed), samples in remaining.items():
                self.fit(workload, framework, seed, samples, request, storage,
                         lambda config, reports, failure: emit(trial_result(
                             config, reports, request, self.cpus_per_trial, started, failure)))

    def fit(self, workload: str, framework: str, seed: int, samples: int, request: SweepRequest, storage: str,
            finish: Finish) -> None:
        # Imported here, after RaySession chose how to reach the cluster (it sets what Ray reads on import).
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.basic_variant import BasicVariantGenerator

        from frameduel.cluster.tune_callback import StoreTrials, forget, receive

        a = request.accuracy
        space: dict[str, Any] = {"workload": workload, "framework": framework, "seed": seed,
                                 "mode": resolve_modes((framework,), a.modes)[framework]}
        for key, values in request.grid.items():
            space[key] = tune.loguniform(values.low, values.high) if isinstance(values, LogRange) \
                else tune.choice(list(values))
        # max_t past the last epoch: ASHA stops a trial at max_t, before its final report; the worker ends itself.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=a.max_epochs + 1,
                                  grace_period=min(GRACE_EPOCHS, a.max_epochs), reduction_factor=REDUCTION,
                                  ) if request.early_stop == "asha" else None
        trainable = tune.with_parameters(tune_trial, request_data=request.to_dict(), cpus=self.cpus_per_trial,
                                         thread_env=driver_thread_settings())
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": self.cpus_per_trial}), param_space=space,
            tune_config=tune.TuneConfig(metric="accuracy", mode="max", num_samples=samples, scheduler=scheduler,
                                        # the same draws on a rerun: seeded by the trials' own seed
                                        search_alg=BasicVariantGenerator(random_state=seed)),
            run_config=tune.RunConfig(storage_path=storage, name=f"{workload}-{framework}-s{seed}", verbose=0,
                                      callbacks=[StoreTrials(receive(finish))]),
        )
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Tune prints tables; our stdout may be --json
                tuner.fit()
        finally:
            forget()


Finish = Callable[[dict[str, Any], list[dict[str, Any]], str | None], None]
