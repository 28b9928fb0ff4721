"""A real multi-node Ray cluster on this machine, bound to 127.0.0.1: for the tests and the benchmarks.

Ray's own test cluster (ray.cluster_utils.Cluster): a head and worker nodes, each a real GCS/raylet
with real worker processes, as on separate machines except that they share this host (so frameduel
counts them as one machine for timing cells, machines.py). Always shut down on leaving the block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[tuple[str, float]]:
    """(the head's HOST:PORT, seconds the cluster took to start)."""
    from frameduel.cluster.session import allow_loopback_cluster

    allow_loopback_cluster()  # before ray is imported: this process may connect to the cluster too
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": cpus_per_node, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        yield cluster.address, time.perf_counter() - started
    finally:
        cluster.shutdown()
