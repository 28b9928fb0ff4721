"""A data-parallel group across the nodes of a Ray cluster, started by Ray Train.

torch: Ray Train's TorchTrainer, which joins its workers to one process group (gloo on CPU, nccl on
GPUs) before the job starts; the job wraps the model in DDP over that group. TF: Ray Train's
TensorflowTrainer, which writes each worker's TF_CONFIG; the job's MultiWorkerMirroredStrategy reads
it. Either way each worker runs the very job a local group's worker runs
(jobs/rank.run_part), so a cell measured on the cluster and one measured by
torchrun differ only in who started the processes and where they are.

Workers are placed one per node where the cluster has enough nodes (STRICT_SPREAD), else spread as
far as they go; each is pinned to cores no other frameduel job on its machine holds (node_tasks'
ledger: a test cluster's nodes share one host). The coordinator, a Ray task of its own, collects
each worker's result in a small actor (Ray Train keeps only rank 0's reported metrics, and only with
a checkpoint) and fails the group at the first worker that fails or dies, or at the deadline, by
killing its worker actors: never a hang.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from typing import Any

from frameduel.cluster.node_tasks import claimed_cores, placement, use_thread_settings
from frameduel.cluster.session import failure_cause
from frameduel.jobs.group import COLLECTIVE_TIMEOUT_S, POLL_S, RANK_ENV, SETTLE_S, TIMEOUT_ENV
from frameduel.jobs.rank import run_part
from frameduel.spec import RunSpec

TRAINERS = {"torch": "Ray Train TorchTrainer", "tf": "Ray Train TensorflowTrainer"}
ACTOR_PING_S = 2.0  # a worker actor that does not answer within this is alive but busy


class ResultInbox:
    """Where the workers leave their actor handle and placement as they start, and their result at the end."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.results: dict[int, dict[str, Any]] = {}

    def start(self, rank: int, actor: Any, where: dict[str, Any]) -> None:
        self.started[rank] = (actor, where)

    def finish(self, rank: int, result: dict[str, Any]) -> None:
        self.results[rank] = result

    def state(self) -> tuple[dict[int, tuple[Any, dict[str, Any]]], dict[int, dict[str, Any]]]:
        return self.started, self.results


def worker_in_ray_train(config: dict[str, Any]) -> None:
    """Ray Train's train_loop_per_worker: this worker's part of the job, its result left in the inbox."""
    import ray
    import ray.train

    # Ray's TF backend asks tf.keras for Keras 2 (tf_keras); the models are Keras 3's own.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    use_thread_settings(config["thread_env"])
    os.environ[TIMEOUT_ENV] = str(COLLECTIVE_TIMEOUT_S)  # TF's collectives read it; torch's group has it
    rank = ray.train.get_context().get_world_rank()
    os.environ[RANK_ENV] = str(rank)
    inbox = config["inbox"]
    ray.get(inbox.start.remote(rank, ray.get_runtime_context().current_actor, {**placement(), "pid": os.getpid()}))
    job = config["job"]
    with claimed_cores(RunSpec.from_dict(job["spec"]).threads) as cpus:
        if cpus:  # this thread runs the job; the framework's pools, started from it, inherit the cores
            os.sched_setaffinity(0, cpus)
        result = run_part(job)
    ray.get(inbox.finish.remote(rank, {"status": result.status, "error": result.error, **result.data, "cpus": cpus}))


def worker_layout(spec: RunSpec) -> tuple[str, str | None]:
    """(Ray's placement strategy, or why the cluster cannot hold the group): one worker per node where
    there are enough nodes with `threads` CPUs, else as spread as the CPUs allow."""
    import ray

    cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]]
    fitting = sum(count // spec.threads for count in cpus)
    if fitting < spec.workers:
        return "SPREAD", (f"the Ray cluster has room for {fitting} worker(s) of {spec.threads} CPU(s) "
                          f"(nodes' CPUs: {cpus}), the cell needs {spec.workers}; add nodes or lower --threads")
    roomy_nodes = sum(1 for count in cpus if count >= spec.threads)
    return ("STRICT_SPREAD" if roomy_nodes >= spec.workers else "SPREAD"), None


def root_cause(failure: str, started: dict[int, tuple[Any, dict[str, Any]]], thread: threading.Thread,
               fitted: dict[str, BaseException]) -> str:
    """A dead worker is the cause where there is one: its peers' collective errors ("connection reset
    by peer") are only its echo, and often come first. Ray Train, which notices a death within its
    poll, names each failed worker's exception; a dead worker's is its actor's death."""
    import ray

    settle = time.monotonic() + SETTLE_S
    while thread.is_alive() and time.monotonic() < settle:
        time.sleep(POLL_S)
    # Ray Train's health check names a worker whose actor died: {rank: its check's error}.
    failures = {rank: getattr(exc, "health_check_failure", exc)
                for rank, exc in getattr(fitted.get("error"), "worker_failures", {}).items()}
    dead = sorted(rank for rank, exc in failures.items() if isinstance(exc, ray.exceptions.RayActorError))
    if not dead:
        return failure
    rank = dead[0]
    where = f" (pid {started[rank][1]['pid']} on {started[rank][1]['host']})" if rank in started else ""
    cause = f"worker {rank}{where}: {failure_cause(failures[rank])}"
    return cause if failure == trainer_failure(fitted["error"]) else f"{cause}; then {failure}"


def trainer_failure(error: BaseException) -> str:
    """Ray Train's error, worker by worker where it names them."""
    failures = getattr(error, "worker_failures", None)
    if not failures:
        return failure_cause(error)
    return "; ".join(f"worker {rank}: {failure_cause(getattr(exc, 'health_check_failure', exc))}"
                     for rank, exc in sorted(failures.items()))


def make_trainer(spec: RunSpec, config: dict[str, Any], strategy: str, storage: str) -> Any:
    from ray.train import FailureConfig, RunConfig, ScalingConfig

    scaling = ScalingConfig(num_workers=spec.workers, use_gpu=spec.device == "cuda",
                            resources_per_worker={"CPU": spec.threads}, placement_strategy=strategy)
    run = RunConfig(name=f"frameduel-{spec.framework}-w{spec.workers}", storage_path=storage,
                    failure_config=FailureConfig(max_failures=0))  # a retried timing cell would run twice
    if spec.framework == "torch":
        from ray.train.torch import TorchConfig, TorchTrainer

        return TorchTrainer(worker_in_ray_train, train_loop_config=config, scaling_config=scaling, run_config=run,
                            torch_config=TorchConfig(backend="nccl" if spec.device == "cuda" else "gloo",
                                                     timeout_s=int(COLLECTIVE_TIMEOUT_S)))
    from ray.train.tensorflow import TensorflowTrainer

    return TensorflowTrainer(worker_in_ray_train, train_loop_config=config, scaling_config=scaling, run_config=run)


def run_group_on_ray(job: dict[str, Any], thread_env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """A Ray task: `job` (a jobs/rank.py part's, with its "spec") on the spec's workers through
    Ray Train. {"results": each worker's result by rank (None: none came), "failure": why the group did
    not finish or None, "workers": where each worker ran (placement(); worker 0's with the node's
    whole environment), "trainer": which Ray Train trainer, "wall_s"}."""
    import ray

    begun = time.perf_counter()
    spec = RunSpec.from_dict(job["spec"])
    outcome: dict[str, Any] = {"results": [None] * spec.workers, "failure": None, "workers": [],
                               "trainer": TRAINERS[spec.framework], "wall_s": 0.0}
    strategy, no_room = worker_layout(spec)
    if no_room:  # Ray Train would wait for the resources for ever
        return {**outcome, "failure": no_room}
    inbox = ray.remote(num_cpus=0)(ResultInbox).remote()
    storage = tempfile.mkdtemp(prefix="frameduel-ray-train-")
    config = {"job": job, "thread_env": thread_env, "inbox": inbox}
    fitted: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            make_trainer(spec, config, strategy, storage).fit()
        except Exception as exc:  # noqa: BLE001 - a dead worker, reported as the group's failure
            fitted["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            started, results = ray.get(inbox.state.remote())
            failed = sorted(rank for rank, result in results.items() if result.get("status") != "ok")
            if failed:
                outcome["failure"] = f"worker {failed[0]}: {results[failed[0]].get('error')}"
            elif "error" in fitted:
                outcome["failure"] = trainer_failure(fitted["error"])
            elif time.monotonic() > deadline:
                outcome["failure"] = f"the group of {spec.workers} workers did not finish within {timeout_s:.0f} s"
            if outcome["failure"] or (len(results) == spec.workers and not thread.is_alive()):
                break
            time.sleep(POLL_S * 4)
        if outcome["failure"]:
            outcome["failure"] = root_cause(outcome["failure"], started, thread, fitted)
            for actor, _ in started.values():  # its peers may wait in a collective: end them all now
                ray.kill(actor)
        thread.join(30)
    finally:
        ray.kill(inbox)
        shutil.rmtree(storage, ignore_errors=True)
    outcome["results"] = [results.get(rank) for rank in range(spec.workers)]
    outcome["workers"] = [{"rank": rank, **started[rank][1], "cpus": (results.get(rank) or {}).get("cpus")}
                          for rank in sorted(started)]
    outcome["wall_s"] = time.perf_counter() - begun
    for worker in outcome["workers"][1:]:  # one fingerprint is enough where the machine class says the rest
        worker.pop("environment")
    return outcome
