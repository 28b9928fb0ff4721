"""LLM serving benchmark: frameduel's server in torch and in TF beside `transformers serve --continuous-batching`,
same weights, same load, and frameduel's continuous batching against one request at a time.

Models, written by checkpoints/synthetic.py so that every server loads the very same files:
  - llama-small: the built-in llama small preset (vocab 256, width 128, 2 layers, GQA 4/2) as a Hugging
    Face checkpoint with the byte-level tokenizer (the built-in workloads' own), 256 positions;
  - tiny-hf-llama: a tiny Hugging Face Llama with a trained byte-level BPE tokenizer (vocab 480, width 64,
    4 layers, GQA 4/2, 512 positions) and a chat template.
Weights are random (N(0, 0.02)); no end-of-sequence id, so every request generates exactly its max_tokens.

Load (loadgen/llm_load.py, vLLM's metric definitions): closed loop at each --concurrency, prompts of
--input-len words, --output-len tokens, greedy; one unmeasured wave (one request per client) first. Servers
run one at a time, each with one compute thread (--threads 1 for frameduel; OMP_NUM_THREADS=1 for
transformers, whose torch then takes one intra-op thread), and this process is the load generator on
the other core.

Servers: frameduel torch and tf in their default (best) modes, or --modes; frameduel torch with
--max-running 1 (one request at a time) at the highest concurrency; transformers serve
--continuous-batching when `transformers[serving]` is installed (--no-transformers leaves it out); every
--url given (vLLM, TGI, llama.cpp's server: any OpenAI-compatible server already running the same model).

Checks printed (issue 32): frameduel torch >= 1.0x transformers serve's output tok/s at c8 and c32 with a
TTFT p99 at or below its p99; frameduel's own ITL p99 <= 3 x its ITL p50 at c32; the TF server's figures
with the same checks; continuous batching >= 4x one-at-a-time output tok/s at c32.

Peers' quirks that bear on the figures: transformers serve never sends `data: [DONE]` (the load generator
ends a stream with its HTTP body) and ignores `stop` under continuous batching (the load sends no stop);
its start-up includes a warm-up of ~40-50 s. llama.cpp (llama-cpp-python[server]) is not started here: its
sdist builds for ~13 min on 2 cores, and it needs `--interrupt_requests False` or it cuts off concurrent
streams, and a GGUF conversion (README, "Serving a language model" says how to add it with --url).

    .venv/bin/python benchmarks/llm_serving.py [--models llama-small,tiny-hf-llama] [--concurrency 1,8,32]
        [--output-len 64] [--input-len 16] [--frameworks torch,tf] [--modes torch=eager,tf=function]
        [--no-transformers] [--url LABEL=http://HOST:PORT ...] [--db PATH] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from frameduel.checkpoints.synthetic import write_llama_checkpoint
from frameduel.loadgen.llm_load import LLMLoadConfig, run_llm_loadtest, save_llm_loadtest
from frameduel.report.llm_serving import LLM_COLUMNS, llm_rows, quirks
from frameduel.store import Store, default_db_path
from frameduel.workloads.llama import PRESETS, LlamaConfig

MODELS = {
    "llama-small": (replace(PRESETS["small"], max_position_embeddings=256), "bytes"),
    "tiny-hf-llama": (LlamaConfig(vocab_size=480, block_size=64, hidden_size=64, intermediate_size=172,
                                  num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=512), "bpe"),
}
START_TIMEOUT_S = 600  # transformers serve's continuous batching warms up for ~40-50 s here
TTFT_CHECK_CONCURRENCY = (8, 32)
ITL_TAIL = 3.0
BATCHING_GAIN = 4.0


def port_free() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(base: str, model: str) -> bool:
    try:
        return httpx.get(f"{base}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def process(command: list[str], base: str, model: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A server process, ready; always stopped."""
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                              text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready(base, model):
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{command[:4]} did not start: {log.read()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def frameduel_server(checkpoint: Path, framework: str, mode: str | None, max_running: int | None,
                     slots: int) -> tuple[list[str], str, dict[str, str]]:
    port = port_free()
    command = [sys.executable, "-m", "frameduel.cli", "serve", "--llm", str(checkpoint), "--framework", framework,
               "--port", str(port), "--threads", "1", "--kv-slots", str(slots), "--max-waiting", "1024"]
    command += ["--mode", mode] if mode else []
    command += ["--max-running", str(max_running)] if max_running else []
    return command, f"http://127.0.0.1:{port}", {}


def transformers_server(checkpoint: Path) -> tuple[list[str], str, dict[str, str]]:
    """The checkpoint preloaded (FORCE_MODEL): every request is served by it, whatever model it names."""
    port = port_free()
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    command = [executable, "serve", str(checkpoint), "--continuous-batching", "--device", "cpu", "--port", str(port),
               "--host", "127.0.0.1", "--log-level", "warning"]
    return command, f"http://127.0.0.1:{port}", {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def load(base: str, model: str, label: str, concurrency: int, args: argparse.Namespace) -> dict:
    config = LLMLoadConfig(base, model=model, concurrency=concurrency, input_len=args.input_len,
                           output_len=args.output_len, label=label, requests=max(16, 4 * concurrency))
    return run_llm_loadtest(config)


def servers(checkpoint: Path, args: argparse.Namespace) -> Iterator[tuple[str, list[str], str, dict[str, str],
                                                                              tuple[int, ...]]]:
    """(label, command, base URL, environment, concurrencies) of every server to start, in turn."""
    top = max(args.concurrency)
    for framework in args.frameworks:
        mode = args.modes.get(framework)
        yield (f"frameduel {framework}", *frameduel_server(checkpoint, framework, mode, None, top), args.concurrency)
    yield ("frameduel torch, one at a time", *frameduel_server(checkpoint, "torch", args.modes.get("torch"), 1, top),
           (top,))
    if args.transformers:
        yield ("transformers serve --continuous-batching", *transformers_server(checkpoint), args.concurrency)


def run_model(name: str, args: argparse.Namespace, store: Store) -> list[dict]:
    config, tokenizer = MODELS[name]
    checkpoint = write_llama_checkpoint(args.work / name, config, tokenizer, seed=0)
    results = []
    for label, command, base, env, concurrencies in servers(checkpoint, args):
        # transformers serve names a model by its path; frameduel by the directory's name
        model = str(checkpoint) if label.startswith("transformers") else name
        try:
            with process(command, base, model, env):
                for concurrency in concurrencies:
                    result = load(base, model, label, concurrency, args)
                    result["model"] = name  # one name per model, whatever id each server uses
                    save_llm_loadtest(store, result)
                    results.append(result)
                    print(f"  {label} c{concurrency}: {result['output_throughput']:,.0f} tok/s", flush=True)
        except Exception as exc:  # noqa: BLE001 - one server failing leaves the others' rows
            print(f"  {label}: failed: {' '.join(str(exc).split())[:400]}", flush=True)
    for label, url in args.url:
        for concurrency in args.concurrency:
            result = load(url, None, label, concurrency, args)
            result["model"] = name
            save_llm_loadtest(store, result)
            results.append(result)
    return results


def by(results: list[dict], label: str, concurrency: int) -> dict | None:
    return next((r for r in results if r["label"] == label and r["config"]["concurrency"] == concurrency), None)


def checks(results: list[dict], frameworks: list[str], top: int) -> list[str]:
    lines = []
    peer = "transformers serve --continuous-batching"
    for framework in frameworks:
        label = f"frameduel {framework}"
        for concurrency in TTFT_CHECK_CONCURRENCY:
            ours, theirs = by(results, label, concurrency), by(results, peer, concurrency)
            if ours and theirs and theirs["requests"]:
                ratio = ours["output_throughput"] / theirs["output_throughput"]
                ttft_ok = ours["ttft_ms"]["p99"] <= theirs["ttft_ms"]["p99"]
                lines.append(f"{label} c{concurrency}: {ratio:.2f}x transformers serve's output tok/s "
                             f"({'ok' if ratio >= 1.0 else 'MISSED'}); TTFT p99 {ours['ttft_ms']['p99']:.0f} vs "
                             f"{theirs['ttft_ms']['p99']:.0f} ms ({'ok' if ttft_ok else 'MISSED'})")
        ours = by(results, label, top)
        if ours and ours["itl_ms"]["median"]:
            tail = ours["itl_ms"]["p99"] / ours["itl_ms"]["median"]
            lines.append(f"{label} c{top}: ITL p99 / p50 = {tail:.2f} ({'ok' if tail <= ITL_TAIL else 'MISSED'})")
    batched, single = by(results, "frameduel torch", top), by(results, "frameduel torch, one at a time", top)
    if batched and single:
        gain = batched["output_throughput"] / single["output_throughput"]
        lines.append(f"continuous batching vs one at a time, torch c{top}: {gain:.2f}x "
                     f"({'ok' if gain >= BATCHING_GAIN else 'MISSED'})")
    return lines


def print_table(name: str, results: list[dict]) -> None:
    print(f"\n{name}")
    print("| " + " | ".join(LLM_COLUMNS) + " |")
    print("|" + "---|" * len(LLM_COLUMNS))
    for row in llm_rows(results):
        print("| " + " | ".join(row) + " |")
    for note in sorted({f"{r['label']}: {note}" for r in results for note in quirks(r)}):
        print(f"- {note}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--input-len", type=int, default=16)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--frameworks", default="torch,tf")
    parser.add_argument("--modes", default="", help="e.g. torch=compile,tf=xla (default: each one's best)")
    parser.add_argument("--no-transformers", dest="transformers", action="store_false")
    parser.add_argument("--url", action="append", default=[], help="LABEL=http://HOST:PORT of a running server")
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="where the checkpoints are written")
    args = parser.parse_args()
    args.models = args.models.split(",")
    args.concurrency = tuple(int(c) for c in args.concurrency.split(","))
    args.frameworks = args.frameworks.split(",")
    args.modes = dict(part.split("=") for part in args.modes.split(",") if part)
    args.url = [tuple(item.split("=", 1)) for item in args.url]
    return args


def main() -> None:
    args = parse_args()
    store = Store(args.db or default_db_path())
    with tempfile.TemporaryDirectory(prefix="frameduel-llm-bench-") as tmp:
        args.work = args.work or Path(tmp)
        for name in args.models:
            print(f"{name}:", flush=True)
            results = run_model(name, args, store)
            print_table(name, results)
            for line in checks(results, args.frameworks, max(args.concurrency)):
                print(f"- {line}")


if __name__ == "__main__":
    main()
