"""A connection to a Ray cluster: its nodes, task submission, and results streamed back as tasks end.

The driver (the frameduel command) stays the only writer of the results database: tasks return their
results, and the driver stores each one as ray.wait hands it over. A task that dies with its Ray
worker (killed, crashed, its node lost) is reported as a `RemoteFailure` with the cause, never
retried: a retried timing cell would silently run twice.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from frameduel.errors import FrameduelError

CONNECT_TIMEOUT_S = 5.0
# A node that runs no task within this long is taken for lost (a live one answers in well under a second; Ray may
# need a new worker process first).
NODE_PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RayNode:
    node_id: str
    address: str  # the host it runs on: nodes that share one are one machine
    cpus: int


@dataclass(frozen=True)
class RemoteFailure:
    """A task that returned nothing: why, in one line. lost: its node died under it (or none was left to run it), so
    the task's own work said nothing about it: the cell or trial is not stored, and --resume runs it."""

    cause: str
    lost: bool = False
    raised: bool = False  # the task's own code raised (it ran): not a death of its worker or node


def check_address(address: str) -> None:
    """HOST:PORT of a running cluster's head (GCS), reachable now: else one line, before anything starts."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise FrameduelError(f"bad --address '{address}'; give the head node's HOST:PORT, e.g. 127.0.0.1:6379 "
                             "(what `ray start --head` prints)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise FrameduelError(f"cannot reach a Ray cluster at {address}: {reason}; start one with "
                             "`ray start --head --node-ip-address 127.0.0.1`, or leave --address out to start "
                             "a local one") from None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host.strip("[]"))).is_loopback
    except (OSError, ValueError):
        return False


def allow_loopback_cluster() -> None:
    """Let this process reach a cluster on 127.0.0.1. Ray rewrites a loopback address to the host's
    external one, where a cluster bound to 127.0.0.1 does not listen, unless "clusters" are off (its
    switch for laptops), which it reads when first imported: so before the first `import ray`."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def failure_cause(exc: BaseException) -> str:
    import ray.exceptions as rx

    if isinstance(exc, rx.OutOfMemoryError):
        return "Ray's memory monitor killed it: its node ran low on memory"
    if isinstance(exc, rx.NodeDiedError):
        return "its Ray node died while it ran"
    if isinstance(exc, rx.WorkerCrashedError):
        return "the Ray worker process running it died (killed or crashed) before it returned"
    if isinstance(exc, rx.RayActorError):  # an actor's process (a Ray Train worker) died
        return "its Ray actor process died (killed or crashed)"
    if isinstance(exc, rx.TaskCancelledError):
        return "cancelled"
    if isinstance(exc, rx.RayTaskError):  # the task's own exception, raised on the node
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300] if str(cause).strip() else ''}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"


class RaySession:
    """`with RaySession(address) as ray_session:` connects (address None: starts a one-node local
    cluster in this process) and disconnects at the end, shutting down what it started."""

    def __init__(self, address: str | None) -> None:
        if importlib.util.find_spec("ray") is None:
            raise FrameduelError("--executor ray needs Ray: pip install 'frameduel[cluster]'")
        if address is not None:
            check_address(address)
        self.address = address

    def __enter__(self) -> RaySession:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def connect(self) -> None:
        # A cluster on this machine (or the one started here) is reached over loopback.
        local = self.address is None or is_loopback(self.address.rpartition(":")[0])
        if local:
            allow_loopback_cluster()
        import ray

        # log_to_driver off: the workers' own output goes to their stderr files, not over our progress bar.
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True,
                 **({"_node_ip_address": "127.0.0.1"} if local else {}))

    def disconnect(self) -> None:
        import ray

        ray.shutdown()

    def nodes(self) -> list[RayNode]:
        import ray

        return [RayNode(node["NodeID"], node["NodeManagerAddress"], int(node["Resources"].get("CPU", 0)))
                for node in ray.nodes() if node["Alive"]]

    def submit(self, function: Callable[..., Any], *args: Any, cpus: float, node_id: str | None = None) -> Any:
        """Run function(*args) as a Ray task holding `cpus` CPUs (on node_id only, if given); never retried."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = {"num_cpus": cpus, "max_retries": 0}
        if node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        return ray.remote(function).options(**options).remote(*args)

    def node_answers(self, node_id: str, timeout_s: float = NODE_PROBE_TIMEOUT_S) -> bool:
        """Whether a node still runs tasks: a task pinned to it (no CPU needed) returns within timeout_s. The
        cluster's own view of a node lags its death by its health checks; a task that cannot run there does not."""
        import ray

        from frameduel.cluster.node_tasks import alive

        probe = self.submit(alive, cpus=0, node_id=node_id)
        done, _ = ray.wait([probe], timeout=timeout_s)
        if not done:
            ray.cancel(probe, force=True)
            return False
        try:
            return bool(ray.get(done[0]))
        except ray.exceptions.RayError:
            return False

    def completed(self, pending: dict[Any, Any]) -> Iterator[tuple[Any, Any]]:
        """Yield (tag, result or RemoteFailure) as each task in pending {object ref: tag} ends; the caller
        may add refs to pending between items."""
        import ray

        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            tag = pending.pop(done[0])
            try:
                yield tag, ray.get(done[0])
            except ray.exceptions.RayError as exc:
                yield tag, RemoteFailure(failure_cause(exc), raised=isinstance(exc, ray.exceptions.RayTaskError))

    def results_within(self, pending: dict[Any, Any], timeout_s: float) -> list[tuple[Any, Any]]:
        """(tag, result or RemoteFailure) of every task in pending {object ref: tag}; a task not done within
        timeout_s is cancelled and lost (its node may be dead without the cluster knowing it yet)."""
        import ray

        done, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        for ref in late:
            ray.cancel(ref, force=True)
        answers = list(self.completed({ref: pending[ref] for ref in done}))
        return answers + [(pending[ref], RemoteFailure(f"no answer within {timeout_s:g} s", lost=True))
                          for ref in late]
