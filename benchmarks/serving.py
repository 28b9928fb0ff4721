"""Serving benchmark: is the model server worth its overhead, and does dynamic batching pay?

Prints, from one run, the two ratios issue 6 asks for, with the raw figures behind them:
  1. served throughput under concurrency / offline batched throughput of the same runtime and model
     (requests of several samples, binary tensors; offline = the runtime called directly at the
     server's max batch size, same thread count)                                      target >= 0.9
  2. dynamic batching / unbatched (max_batch_size=1), single-sample requests at concurrency 32
                                                                                      target >= 3

Each load test runs over REST (binary tensors) and over gRPC (raw contents) against the same server
process, so the two protocols' rows sit side by side with the same model, batcher and runtime. Every
row reports p50/p90/p99/max latency: the tail, not only the median, is part of the verdict.

Beside them, for the ONNX artefact, KServe's own Python model server (benchmarks/kserve_onnx_server.py,
ONNX Runtime, 1 thread, KServe's defaults) serves the same model.onnx and takes the same load from the
same load generator in the same run: concurrency 32, one-sample JSON requests, next to frameduel's
"json c32" row. KServe lives in a venv of its own, named by --kserve-python; without it the row is
skipped with the reason printed.

Both ratios are printed per runtime and protocol (ONNX Runtime, torch.export, SavedModel, LiteRT), because what
batching can buy is bounded by what a larger batch buys the runtime itself ("offline b32 / b1"): an
ONNX Runtime or LiteRT call of a small CNN costs about the same per sample at batch 1 and 32, while
eager framework runtimes pay a fixed per-call overhead that batching amortises.

Each format's server runs in its own process (``frameduel serve``), and each offline measurement in
a child process; the load generator runs in this one, so it competes for cores as a real client and
server on one machine would. On a machine shared with other work the figures are contended: rerun
on a quiet one before quoting them.

    .venv/bin/python benchmarks/serving.py [--sizes tiny,small] [--formats onnx,torch-export] [--duration 8]
                                           [--protocols rest,grpc] [--kserve-python /work/kserve-venv/bin/python]
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
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from frameduel.export.manifest import MANIFEST_FILE
from frameduel.serve.loadtest import LoadTestConfig, run_loadtest, save_loadtest
from frameduel.store import Store

MAX_BATCH = 32  # the server's max batch size, and the offline batch size it is held to
THREADS = 1  # runtime threads: the second core goes to the server's event loop and the load generator
# format -> the framework that exports it. Each runtime's per-call overhead decides how much batching buys.
FORMAT_SOURCES = {"onnx": "torch", "torch-export": "torch", "savedmodel": "tf", "tflite": "tf"}
PROTOCOLS = ("rest", "grpc")
# (label, model, concurrency, samples per request or None for --request-batch, binary tensors): the load
# tests per protocol. "json c32" is the load the KServe peer takes too.
RUNS = (("served", "cnn-batched", 8, None, True), ("batched c32", "cnn-batched", 32, 1, True),
        ("unbatched c32", "cnn-unbatched", 32, 1, True), ("json c32", "cnn-batched", 32, 1, False))
KSERVE_SERVER = Path(__file__).with_name("kserve_onnx_server.py")

# The runtime called directly, in a child process of its own (torch or TF never load in this one).
OFFLINE = """
import json, sys
from pathlib import Path
from frameduel.serve.loadtest import offline_throughput
print(json.dumps(offline_throughput(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
"""


def export_cnn(size: str, fmt: str, work: Path) -> Path:
    """The directory of the CNN exported to fmt by `frameduel export` (gated before it is served)."""
    out = work / "export"
    command = [sys.executable, "-m", "frameduel.cli", "export", "cnn", "--framework", FORMAT_SOURCES[fmt],
               "--formats", fmt, "--size", size, "--max-batch", "1024", "--out", str(out),
               "--db", str(work / "export.sqlite"), "--bench-seconds", "0.5"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"frameduel export failed: {result.stderr[-2000:] or result.stdout[-2000:]}")
    return next(p.parent for p in out.rglob(MANIFEST_FILE) if f"-{fmt}/" in str(p))


def offline(artefact: Path, batch: int, seconds: float) -> dict:
    result = subprocess.run([sys.executable, "-c", OFFLINE, str(artefact), str(batch), str(seconds), str(THREADS)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def build_repository(artefact: Path, repo: Path) -> None:
    """The same artefact twice: batched (server defaults) and unbatched (max_batch_size 1)."""
    for name, settings in (("cnn-batched", None), ("cnn-unbatched", {"max_batch_size": 1})):
        shutil.copytree(artefact, repo / name / "1")
        if settings:
            (repo / name / "serving.json").write_text(json.dumps(settings))


def start_server(repo: Path, port: int, grpc_port: int) -> subprocess.Popen:
    log = repo.parent / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "frameduel.cli", "serve", "--repository", str(repo), "--port", str(port),
         "--grpc-port", str(grpc_port), "--threads", str(THREADS), "--max-batch-size", str(MAX_BATCH),
         "--max-queue-delay-us", "2000"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return await_ready(server, port, log)


def await_ready(server: subprocess.Popen, port: int, log: Path) -> subprocess.Popen:
    """server, once its v2 readiness route answers 200; it is stopped if it never does.

    Servers log to a file, never a pipe: KServe logs every request, and a pipe nobody reads fills and stalls it.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
    server.kill()
    raise RuntimeError("the server did not become ready in 120 s")


def measure_kserve(args: argparse.Namespace, artefact: Path, work: Path) -> dict[str, Any] | str:
    """KServe's server on the same ONNX file under the "json c32" load; -> its run, or why it was skipped."""
    if args.kserve_python is None:
        return "no --kserve-python given (a venv with kserve and onnxruntime; see README, Serving)"
    if not args.kserve_python.exists():
        return f"--kserve-python {args.kserve_python} does not exist"
    port, grpc_port, log = free_port(), free_port(), work / "kserve.log"
    server = await_ready(subprocess.Popen(
        [str(args.kserve_python), str(KSERVE_SERVER), "--model_name", "cnn", "--model_file",
         str(artefact / "model.onnx"), "--http_port", str(port), "--grpc_port", str(grpc_port),
         "--threads", str(THREADS)], stdout=subprocess.DEVNULL, stderr=log.open("w")), port, log)
    try:
        return run_loadtest(LoadTestConfig(f"http://127.0.0.1:{port}/v2/models/cnn", 32, args.duration,
                                           warmup_s=2.0, binary=False))
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def model_url(protocol: str, port: int, grpc_port: int, model: str) -> str:
    if protocol == "grpc":
        return f"grpc://127.0.0.1:{grpc_port}/{model}"
    return f"http://127.0.0.1:{port}/v2/models/{model}"


def measure_format(args: argparse.Namespace, size: str, fmt: str, work: Path) -> dict:
    """Offline b32 and b1, then the load tests per protocol against a server of this format's artefact alone."""
    work = work / f"{size}-{fmt}"
    artefact = export_cnn(size, fmt, work)
    build_repository(artefact, work / "repo")
    figures = {"offline": offline(artefact, MAX_BATCH, args.duration / 2),
               "offline_1": offline(artefact, 1, args.duration / 2), "runs": {}}
    port, grpc_port = free_port(), free_port()
    server = start_server(work / "repo", port, grpc_port)
    base = f"http://127.0.0.1:{port}"
    try:
        for protocol in args.protocols:
            for label, model, concurrency, batch, binary in RUNS:
                samples, batches = batch_totals(base, model)
                run = run_loadtest(LoadTestConfig(model_url(protocol, port, grpc_port, model), concurrency,
                                                  args.duration, warmup_s=2.0, batch=batch or args.request_batch,
                                                  binary=binary))
                after = batch_totals(base, model)
                run["mean_batch"] = (after[0] - samples) / max(1.0, after[1] - batches)
                figures["runs"][(protocol, label)] = run
                if args.db:
                    save_loadtest(Store(args.db), run)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if fmt == "onnx":  # KServe's peer after frameduel's server has stopped: the two never share the cores
        figures["kserve"] = measure_kserve(args, artefact, work)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="tiny,small", help="CNN presets, comma-separated: tiny, small")
    parser.add_argument("--formats", default="onnx,torch-export,savedmodel,tflite",
                        help=f"comma-separated, from: {', '.join(FORMAT_SOURCES)}")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per load test")
    parser.add_argument("--request-batch", type=int, default=16, help="samples per request for ratio 1")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated, from: rest, grpc")
    parser.add_argument("--db", type=Path, help="also store the load-test results here")
    parser.add_argument("--kserve-python", type=Path,
                        help="python of a venv with kserve and onnxruntime: adds KServe's server on the ONNX file")
    args = parser.parse_args()
    formats, sizes = [f for f in args.formats.split(",") if f], [s for s in args.sizes.split(",") if s]
    args.protocols = [p for p in args.protocols.split(",") if p]
    if not args.protocols or set(args.protocols) - set(PROTOCOLS):
        parser.error(f"--protocols takes a comma-separated subset of: {', '.join(PROTOCOLS)}")
    if unknown := set(formats) - set(FORMAT_SOURCES):
        parser.error(f"unknown formats {sorted(unknown)}; choose from: {', '.join(FORMAT_SOURCES)}")
    if unknown := set(sizes) - {"tiny", "small"}:
        parser.error(f"unknown sizes {sorted(unknown)}; choose from: tiny, small")
    print(f"CNN, {THREADS} runtime thread, server max batch {MAX_BATCH}, max queue delay 2 ms; "
          f"{args.duration:g} s per load test")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for fmt in formats:
                ratios |= {(size, fmt, protocol): pair
                           for protocol, pair in report(size, fmt, measure_format(args, size, fmt, Path(tmp))).items()}
    print("\nsummary: size, runtime, protocol -> ratio 1 (served / offline b32, target >= 0.9), "
          "ratio 2 (batched / unbatched at c32, target >= 3)")
    for (size, fmt, protocol), (served, batching) in ratios.items():
        print(f"  {size:5s} {fmt:12s} {protocol:4s} {served:5.2f} {verdict(served >= 0.9)}   "
              f"{batching:5.2f} {verdict(batching >= 3)}")


def report(size: str, fmt: str, figures: dict) -> dict[str, tuple[float, float]]:
    """Print one format's figures; -> protocol: (ratio 1, ratio 2)."""
    offline, offline_1, runs = figures["offline"], figures["offline_1"], figures["runs"]
    print(f"\nCNN {size}, {fmt} (exported from {FORMAT_SOURCES[fmt]}): offline b{MAX_BATCH} "
          f"{offline['throughput_sps']:.0f} "
          f"samples/s, offline b1 {offline_1['throughput_sps']:.0f} samples/s")
    for (protocol, label), run in runs.items():
        print(row(protocol, label, run) + f", mean executed batch {run['mean_batch']:.1f}")
    if isinstance(figures.get("kserve"), dict):
        print(row("kserve", "json c32", figures["kserve"]) + "  (KServe's Python server, same model.onnx)")
    elif "kserve" in figures:
        print(f"  kserve json c32: skipped, {figures['kserve']}")
    ratios = {}
    for protocol in dict.fromkeys(protocol for protocol, _ in runs):
        served = runs[(protocol, "served")]["throughput_sps"] / offline["throughput_sps"]
        batched, unbatched = runs[(protocol, "batched c32")], runs[(protocol, "unbatched c32")]
        batching = batched["throughput_sps"] / unbatched["throughput_sps"]
        print(f"  {protocol:4s} ratio 1  served / offline batched    = {served:.2f}  "
              f"(target >= 0.9: {verdict(served >= 0.9)})")
        print(f"  {protocol:4s} ratio 2  batched / unbatched at c32  = {batching:.2f}  "
              f"(target >= 3: {verdict(batching >= 3)})")
        ratios[protocol] = (served, batching)
    compute_gain = offline["throughput_sps"] / offline_1["throughput_sps"]
    print(f"  for scale: offline b{MAX_BATCH} / offline b1 = {compute_gain:.2f} (what batching buys the runtime alone)")
    return ratios


def row(server: str, label: str, run: dict) -> str:
    """One load test's line: throughput and the latency distribution, tail included."""
    latency = run["latency_ms"]
    return (f"  {server:6s} {label:14s} c{run['config']['concurrency']:<3d} b{run['config']['batch']:<2d} "
            f"{run['throughput_sps']:8.0f} samples/s  p50 {latency['p50']:6.1f}  p90 {latency['p90']:6.1f}  "
            f"p99 {latency['p99']:6.1f}  max {latency['max']:6.1f} ms  errors {run['errors'] or 0}  "
            f"stable {run['stable']}")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    main()
