"""The serving commands: `serve` (a model repository over KServe v2, or a language model over an OpenAI-
compatible API) and `loadtest` (load on any such server). cli.py registers them (register) after `advise`, where
`frameduel --help` lists them."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from frameduel import cli_help
from frameduel.cli_base import DbOption, console, output, user_errors
from frameduel.errors import FrameduelError
from frameduel.report.loadtest import print_loadtest
from frameduel.store import open_store


def serve(
    repository: Path | None = typer.Option(None, "--repository", help="model repository: "
                                           "DIR/MODEL/VERSION/manifest.json (or --llm)"),
    host: str = typer.Option("127.0.0.1", help="interface to bind; loopback unless you mean to expose it"),
    port: int = typer.Option(8000, help="TCP port"),
    token: str | None = typer.Option(None, "--token", envvar="FRAMEDUEL_SERVE_TOKEN", help=cli_help.SERVE_TOKEN),
    threads: int | None = typer.Option(None, help="runtime threads per model version (default: cores - 1)"),
    max_batch_size: int = typer.Option(32, help="samples per runtime call (dynamic batching; 1 turns it off)"),
    max_queue_delay_us: int = typer.Option(2000, help="longest the oldest request waits for a batch to fill"),
    max_queue_size: int = typer.Option(1024, help="samples allowed to wait per model version; more get 429"),
    timeout_s: float = typer.Option(30.0, help="a request still queued this long after arrival gets 503"),
    grpc_port: int | None = typer.Option(None, help=cli_help.SERVE_GRPC_PORT),
    llm: str | None = typer.Option(None, "--llm", help=cli_help.SERVE_LLM),
    framework: str = typer.Option("torch", "--framework", help="--llm: torch or tf"),
    mode: str | None = typer.Option(None, "--mode", help=cli_help.SERVE_LLM_MODE),
    size: str = typer.Option("small", help="--llm gpt/llama: the preset"),
    kv_slots: int = typer.Option(32, help="--llm: KV-cache slots, the sequences decoding at once"),
    max_model_len: int | None = typer.Option(None, help="--llm: positions per slot, prompt and output"),
    prefill_chunk: int = typer.Option(64, help="--llm: prompt tokens prefilled per step beside the decoding ones"),
    max_waiting: int = typer.Option(256, help="--llm: requests waiting for a slot; more get 429"),
    max_running: int | None = typer.Option(None, help=cli_help.SERVE_LLM_MAX_RUNNING),
    served_model_name: str | None = typer.Option(None, help="--llm: the model id clients name"),
) -> None:
    """Serve a model repository over the KServe v2 / Open Inference Protocol REST API (and gRPC with --grpc-port),
    or a language model (--llm) over an OpenAI-compatible API with continuous batching."""
    from frameduel.serve.app import ServerConfig, default_threads, run_server  # the [serve] extra: only here
    from frameduel.serve.batcher import BatchingConfig

    if llm is not None:
        from frameduel.llm.params import EngineConfig
        from frameduel.serve.llm_app import serve_llm

        engine = EngineConfig(kv_slots, max_model_len, prefill_chunk, max_waiting, max_running)
        serve_llm(llm, framework, mode, size, threads or default_threads(), served_model_name, engine, host, port,
                  token, say=lambda line: console.print(line, highlight=False, soft_wrap=True))
        return
    if repository is None:
        raise FrameduelError("name what to serve: --repository DIR (exported models) or --llm CHECKPOINT|WORKLOAD")

    batching = BatchingConfig(max_batch_size, max_queue_delay_us, max_queue_size, timeout_s)
    config = ServerConfig(repository, host, port, token, threads or default_threads(), batching, grpc_port=grpc_port)
    also = f" and grpc://{host}:{grpc_port}" if grpc_port is not None else ""
    console.print(f"serving {repository} at http://{host}:{port}/v2{also} (Ctrl-C stops)", highlight=False)
    run_server(config)


def loadtest(
    url: str = typer.Argument(..., help=cli_help.LOADTEST_URL),
    concurrency: int = typer.Option(8, help="closed loop: clients with one request in flight; open: connections"),
    duration: float = typer.Option(10.0, help="measured seconds, after the warm-up"),
    warmup: float = typer.Option(1.0, help="seconds of load before measuring"),
    mode: str = typer.Option("closed", help="closed (fixed concurrency) or open (Poisson arrivals at --rate)"),
    rate: float | None = typer.Option(None, help="open loop: mean requests per second"),
    batch: int = typer.Option(1, help="samples per request"),
    json_tensors: bool = typer.Option(False, "--json-tensors", help=cli_help.LOADTEST_JSON_TENSORS),
    token: str | None = typer.Option(None, "--token", envvar="FRAMEDUEL_SERVE_TOKEN", help="bearer token"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    db: Path | None = DbOption,
    llm: bool = typer.Option(False, "--llm", help=cli_help.LOADTEST_LLM),
    model: str | None = typer.Option(None, help="--llm: the model id (default: the first /v1/models lists)"),
    endpoint: str = typer.Option("completions", help="--llm: completions or chat"),
    requests: int | None = typer.Option(None, help="--llm: measured requests (default: max(16, 4 x concurrency))"),
    warmup_requests: int | None = typer.Option(None, help="--llm: unmeasured requests first (default: concurrency)"),
    input_len: int = typer.Option(16, help="--llm: prompt words, drawn with the seed from a fixed word list"),
    output_len: int = typer.Option(64, help="--llm: max_tokens per request"),
    range_ratio: float = typer.Option(0.0, help="--llm: lengths uniform in [len x (1-r), len x (1+r)]"),
    temperature: float = typer.Option(0.0, help="--llm: sampling temperature (0: greedy)"),
    slo: str | None = typer.Option(None, help="--llm: goodput SLOs in ms, e.g. ttft=200,tpot=50 (also e2el)"),
    label: str | None = typer.Option(None, help="--llm: the server's name in results (default: its metadata)"),
    seed: int = typer.Option(0, help="--llm: prompts, lengths and open-loop arrivals"),
) -> None:
    """Load-test a served model: throughput, latency percentiles, stability over time; the result is stored."""
    if llm:
        from frameduel.loadgen.llm_load import LLMLoadConfig, parse_slo, run_llm_loadtest, save_llm_loadtest
        from frameduel.report.llm_serving import print_llm_loadtest

        result = run_llm_loadtest(LLMLoadConfig(
            url, model, endpoint, mode, concurrency, rate, requests, warmup_requests, input_len, output_len,
            range_ratio, temperature, parse_slo(slo), label, token, seed))
        save_llm_loadtest(open_store(db), result)
        output(as_json, dict, print_llm_loadtest, result)
        return
    from frameduel.loadgen.loadtest import LoadTestConfig, run_loadtest, save_loadtest

    result = run_loadtest(LoadTestConfig(url, concurrency, duration, warmup, mode, rate, batch, not json_tensors,
                                         token=token))
    save_loadtest(open_store(db), result)
    output(as_json, dict, functools.partial(print_loadtest, mode=mode, concurrency=concurrency, batch=batch), result)


def register(app: typer.Typer) -> None:
    for command in (serve, loadtest):
        app.command()(user_errors(command))
