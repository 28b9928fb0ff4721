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

The tail section (issue 17) puts frameduel's server beside KServe's own Python model server
(benchmarks/kserve_onnx_server.py, ONNX Runtime, 1 thread, KServe's defaults) on the same tiny MLP and
CNN model.onnx, under the load a new user tries first: concurrency 32, one-sample JSON requests, from
the same load generator. Both servers stay up and take the load in alternating rounds (frameduel,
KServe, frameduel, ...), so drift in what else the machine does falls on both; the verdict is on the
median of the rounds: p99 <= 3 x p50, and p50 and p99 at or below KServe's. KServe lives in a venv of
its own, named by --kserve-python; without it frameduel's rows are printed alone, with the reason.

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
                                           [--tail-workloads mlp,cnn] [--tail-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from frameduel.export.manifest import MANIFEST_FILE
from frameduel.loadgen.loadtest import LoadTestConfig, run_loadtest, save_loadtest
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
TAIL_RATIO = 3.0  # issue 17: p99 within 3 x p50

# The runtime called directly, in a child process of its own (torch or TF never load in this one).
OFFLINE = """
import json, sys
from pathlib import Path
from frameduel.loadgen.loadtest import offline_throughput
print(json.dumps(offline_throughput(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
"""


def export_model(workload: str, size: str, fmt: str, work: Path) -> Path:
    """The directory of the workload exported to fmt by `frameduel export` (gated before it is served)."""
    out = work / "export"
    command = [sys.executable, "-m", "frameduel.cli", "export", workload, "--framework", FORMAT_SOURCES[fmt],
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


def start_server(repo: Path, port: int, grpc_port: int | None = None) -> subprocess.Popen:
    log = repo.parent / "server.log"
    grpc = ["--grpc-port", str(grpc_port)] if grpc_port else []
    server = subprocess.Popen(
        [sys.executable, "-m", "frameduel.cli", "serve", "--repository", str(repo), "--port", str(port), *grpc,
         "--threads", str(THREADS), "--max-batch-size", str(MAX_BATCH), "--max-queue-delay-us", "2000"],
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


def start_kserve(args: argparse.Namespace, model: str, onnx_file: Path, work: Path) -> tuple[subprocess.Popen, int]:
    """KServe's server on the ONNX file, once ready; -> (process, HTTP port)."""
    port, grpc_port, log = free_port(), free_port(), work / "kserve.log"
    server = subprocess.Popen(
        [str(args.kserve_python), str(KSERVE_SERVER), "--model_name", model, "--model_file", str(onnx_file),
         "--http_port", str(port), "--grpc_port", str(grpc_port), "--threads", str(THREADS)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return await_ready(server, port, log), port


def kserve_unavailable(args: argparse.Namespace) -> str | None:
    """Why KServe's rows are skipped, or None when its venv is there."""
    if args.kserve_python is None:
        return "no --kserve-python given (a venv with kserve and onnxruntime; see README, Serving)"
    if not args.kserve_python.exists():
        return f"--kserve-python {args.kserve_python} does not exist"
    return None


def stop(server: subprocess.Popen) -> None:
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
    artefact = export_model("cnn", size, fmt, work)
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
        stop(server)
    return figures


def measure_tail(args: argparse.Namespace, workload: str, work: Path) -> dict[str, list[dict]]:
    """frameduel's server and KServe's on the same tiny model.onnx, c32 one-sample JSON, in alternating rounds.

    -> server name: its runs, in round order. Both servers stay up; the idle one only waits on its socket.
    """
    work = work / f"tail-{workload}"
    artefact = export_model(workload, "tiny", "onnx", work)
    shutil.copytree(artefact, work / "repo" / workload / "1")
    urls, servers = {}, []
    try:
        port = free_port()
        servers.append(start_server(work / "repo", port))
        urls["frameduel"] = f"http://127.0.0.1:{port}/v2/models/{workload}"
        if kserve_unavailable(args) is None:
            server, port = start_kserve(args, workload, artefact / "model.onnx", work)
            servers.append(server)
            urls["kserve"] = f"http://127.0.0.1:{port}/v2/models/{workload}"
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for _ in range(args.tail_rounds):
            for name, url in urls.items():
                runs[name].append(run_loadtest(LoadTestConfig(url, 32, args.duration, warmup_s=2.0, binary=False)))
    finally:
        for server in servers:
            stop(server)
    return runs


def report_tail(args: argparse.Namespace, workload: str, runs: dict[str, list[dict]]) -> None:
    """Each round's rows, then the medians over rounds and the issue-17 verdict."""
    print(f"\ntail: {workload} tiny, model.onnx (ONNX Runtime, {THREADS} thread), c32, one-sample JSON requests, "
          f"{args.tail_rounds} alternating rounds")
    for index in range(args.tail_rounds):
        for name, server_runs in runs.items():
            print(row(name[:6], f"round {index + 1}", server_runs[index]))
    medians = {name: {"throughput_sps": statistics.median(r["throughput_sps"] for r in server_runs),
                      **{q: statistics.median(r["latency_ms"][q] for r in server_runs) for q in ("p50", "p99")}}
               for name, server_runs in runs.items()}
    for name, m in medians.items():
        print(f"  median {name:9s} {m['throughput_sps']:8.0f} samples/s  p50 {m['p50']:6.1f}  p99 {m['p99']:6.1f} ms  "
              f"p99/p50 {m['p99'] / m['p50']:.2f}")
    ours = medians["frameduel"]
    print(f"  p99 <= {TAIL_RATIO:g} x p50: {verdict(ours['p99'] <= TAIL_RATIO * ours['p50'])}")
    if "kserve" not in medians:
        print(f"  kserve: skipped, {kserve_unavailable(args)}")
        return
    theirs = medians["kserve"]
    for what in ("p50", "p99"):
        passed = verdict(ours[what] <= theirs[what])
        print(f"  {what} <= KServe's: {passed} ({ours[what]:.1f} vs {theirs[what]:.1f} ms)")
    print(f"  throughput vs KServe's: {ours['throughput_sps'] / theirs['throughput_sps']:.2f}x")


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
    parser.add_argument("--tail-workloads", default="mlp,cnn",
                        help="tiny models for the tail section (frameduel vs KServe), comma-separated; '' skips it")
    parser.add_argument("--tail-rounds", type=int, default=3, help="alternating rounds per server in the tail section")
    args = parser.parse_args()
    formats, sizes = [f for f in args.formats.split(",") if f], [s for s in args.sizes.split(",") if s]
    tail_workloads = [w for w in args.tail_workloads.split(",") if w]
    if unknown := set(tail_workloads) - {"mlp", "cnn"}:
        parser.error(f"unknown tail workloads {sorted(unknown)}; choose from: mlp, cnn")
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
        for workload in tail_workloads:
            report_tail(args, workload, measure_tail(args, workload, Path(tmp)))
    if not ratios:
        return
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
