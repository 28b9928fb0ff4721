"""Serving benchmark: is the model server worth its overhead, and does dynamic batching pay?

Prints, from one run, the two ratios issue 6 asks for, with the raw figures behind them:
  1. served throughput under concurrency / offline batched throughput of the same runtime and model
     (requests of several samples, binary tensors; offline = the runtime called directly at the
     server's max batch size, same thread count)                                      target >= 0.9
  2. dynamic batching / unbatched (max_batch_size=1), single-sample requests at concurrency 32
                                                                                      target >= 3

The server runs in its own process (``frameduel serve``); the load generator runs in this one, so
the two compete for cores as a real client and server on one machine would. On a machine shared
with other work the figures are contended: rerun on a quiet one before quoting them.

    .venv/bin/python benchmarks/serving.py [--size small] [--duration 10] [--db results.sqlite]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from frameduel.export.manifest import MANIFEST_FILE
from frameduel.serve.loadtest import LoadTestConfig, offline_throughput, run_loadtest, save_loadtest
from frameduel.store import Store

MAX_BATCH = 32  # the server's max batch size, and the offline batch size it is held to
THREADS = 1  # runtime threads: the second core goes to the server's event loop and the load generator

# Until `frameduel export` is committed, the same CNN exported by torch's ONNX exporter in a child process
# (this script stays framework-free). Writes <out>/model.onnx and its manifest.
FALLBACK_EXPORT = """
import sys
from pathlib import Path
import torch
from frameduel.export.manifest import Manifest, TensorSpec, write_manifest
from frameduel.workloads.cnn import PRESETS
from frameduel.workloads.cnn.model_torch import build
size, out = sys.argv[1], Path(sys.argv[2])
config = PRESETS[size]
model = build(config).eval()
x = torch.randn(2, config.channels, config.image_size, config.image_size)
torch.onnx.export(model, (x,), str(out / "model.onnx"), dynamo=True, input_names=["x"], output_names=["logits"],
                  dynamic_shapes={"x": {0: torch.export.Dim("batch", max=1024)}})
spatial = (config.channels, config.image_size, config.image_size)
write_manifest(out, Manifest(workload="cnn", size=size, framework="torch", format="onnx", artefact="model.onnx",
               inputs=(TensorSpec("x", (None, *spatial), "float32"),),
               outputs=(TensorSpec("logits", (None, config.classes), "float32"),), batch_sizes=None, max_batch=1024))
"""


def export_cnn(size: str, work: Path) -> Path:
    """A directory holding the CNN as ONNX with its manifest."""
    out = work / "export"
    command = [sys.executable, "-m", "frameduel.cli", "export", "cnn", "--framework", "torch", "--formats", "onnx",
               "--size", size, "--max-batch", "1024", "--out", str(out), "--db", str(work / "export.sqlite")]
    if subprocess.run(command, capture_output=True, text=True).returncode == 0:
        print("artefact: frameduel export", file=sys.stderr)
        return next(p.parent for p in out.rglob(MANIFEST_FILE))
    print("artefact: torch.onnx.export fallback (frameduel export unavailable)", file=sys.stderr)
    directory = work / "fallback"
    directory.mkdir()
    subprocess.run([sys.executable, "-c", FALLBACK_EXPORT, size, str(directory)], check=True, capture_output=True)
    return directory


def build_repository(artefact: Path, repo: Path) -> None:
    """The same artefact twice: batched (server defaults) and unbatched (max_batch_size 1)."""
    for name, settings in (("cnn-batched", None), ("cnn-unbatched", {"max_batch_size": 1})):
        shutil.copytree(artefact, repo / name / "1")
        if settings:
            (repo / name / "serving.json").write_text(json.dumps(settings))


def start_server(repo: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "frameduel.cli", "serve", "--repository", str(repo), "--port", str(port),
         "--threads", str(THREADS), "--max-batch-size", str(MAX_BATCH), "--max-queue-delay-us", "2000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()}")
    raise RuntimeError("the server did not become ready in 120 s")


def batch_totals(base: str, model: str) -> tuple[float, float]:
    """(samples, batches) executed so far for model, from the server's own batch-size histogram."""
    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
              for s in f.samples if s.labels.get("model") == model and s.name.startswith("frameduel_batch_size_")}
    return values.get("frameduel_batch_size_sum", 0.0), values.get("frameduel_batch_size_count", 0.0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=("tiny", "small"))
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per load test")
    parser.add_argument("--request-batch", type=int, default=16, help="samples per request for ratio 1")
    parser.add_argument("--db", type=Path, help="also store the load-test results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        artefact = export_cnn(args.size, work)
        build_repository(artefact, work / "repo")
        offline = offline_throughput(artefact, MAX_BATCH, args.duration / 2, THREADS)
        offline_1 = offline_throughput(artefact, 1, args.duration / 2, THREADS)
        port = free_port()
        server = start_server(work / "repo", port)
        base = f"http://127.0.0.1:{port}"
        try:
            runs = {}
            for label, model, concurrency, batch in (
                ("served", "cnn-batched", 8, args.request_batch),
                ("batched c32", "cnn-batched", 32, 1),
                ("unbatched c32", "cnn-unbatched", 32, 1),
            ):
                samples, batches = batch_totals(base, model)
                runs[label] = run_loadtest(LoadTestConfig(f"{base}/v2/models/{model}", concurrency, args.duration,
                                                          warmup_s=2.0, batch=batch))
                after = batch_totals(base, model)
                runs[label]["mean_batch"] = (after[0] - samples) / max(1.0, after[1] - batches)
                if args.db:
                    save_loadtest(Store(args.db), runs[label])
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(args, offline, offline_1, runs)


def report(args: argparse.Namespace, offline: dict, offline_1: dict, runs: dict) -> None:
    print(f"CNN {args.size} as ONNX (ONNX Runtime, {THREADS} thread), server max batch {MAX_BATCH}; "
          f"{args.duration:g} s per load test")
    print(f"  offline b{MAX_BATCH}: {offline['throughput_sps']:.0f} samples/s   "
          f"offline b1: {offline_1['throughput_sps']:.0f} samples/s")
    for label, run in runs.items():
        latency = run["latency_ms"]
        batch = f", mean executed batch {run['mean_batch']:.1f}"
        print(f"  {label:14s} c{run['config']['concurrency']:<3d} b{run['config']['batch']:<2d} "
              f"{run['throughput_sps']:8.0f} samples/s  p50 {latency['p50']:.1f} ms  p99 {latency['p99']:.1f} ms  "
              f"errors {run['errors'] or 0}  stable {run['stable']}{batch}")
    served = runs["served"]["throughput_sps"] / offline["throughput_sps"]
    batching = runs["batched c32"]["throughput_sps"] / runs["unbatched c32"]["throughput_sps"]
    compute_gain = offline["throughput_sps"] / offline_1["throughput_sps"]
    print(f"ratio 1  served / offline batched    = {served:.2f}  (target >= 0.9: {verdict(served >= 0.9)})")
    print(f"ratio 2  batched / unbatched at c32  = {batching:.2f}  (target >= 3: {verdict(batching >= 3)})")
    print(f"  for scale: offline b{MAX_BATCH} / offline b1 = {compute_gain:.2f} (what batching buys the runtime alone)")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    main()
