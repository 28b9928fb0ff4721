"""LLM serving in the report: the stored `loadtest --llm` results as a table, and the claim row
"High-throughput batched LLM serving is a PyTorch story".

The claim is judged on frameduel's own two servers, the same engine in each framework at its best
serving mode, under the same load: per model and load at concurrency >= BATCHED_CONCURRENCY (where
batching is what serves), torch is faster when its output tok/s beats TF's by more than the noise
threshold, TF when the reverse, else they are even. *Supported* when torch is faster in most loads,
*not supported* when TF is as fast or faster in most (TF then serves batched LLM load too), otherwise,
and without both servers measured, *inconclusive*. Peers measured at the same load (transformers serve,
llama.cpp, vLLM: all PyTorch or C++) are quoted beside, for scale, not judged.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from frameduel.stats import NOISE_THRESHOLD

LLM_CLAIM = "High-throughput batched LLM serving is a PyTorch story"
BATCHED_CONCURRENCY = 8
LLM_COLUMNS = ("server", "model", "load", "req/s", "out tok/s", "TTFT ms p50/p99", "TPOT ms p50/p99",
               "ITL ms p50/p99", "E2EL ms p50", "errors")


def pair(figures: dict[str, Any]) -> str:
    if figures.get("median") is None:
        return "-"
    return f"{figures['median']:.3g}/{figures['p99']:.3g}"


def load_text(result: dict[str, Any]) -> str:
    config = result["config"]
    load = f"{config['mode']} c{config['concurrency']}"
    if config.get("rate"):
        load += f" {config['rate']:g}/s"
    mean_prompt = result.get("prompt_tokens_mean")
    prompt = f"{mean_prompt:.0f} tok" if mean_prompt else f"{config['input_len']} words"
    return f"{load}, in {prompt}, out {config['output_len']}"


def llm_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One row per load test, by model, then server, then concurrency."""
    ordered = sorted(results, key=lambda r: (r["model"], r["label"], r["config"]["concurrency"]))
    return [[r["label"], r["model"], load_text(r), f"{r['request_throughput']:.2f}", f"{r['output_throughput']:,.0f}",
             pair(r["ttft_ms"]), pair(r["tpot_ms"]), pair(r["itl_ms"]),
             "-" if r["e2el_ms"]["median"] is None else f"{r['e2el_ms']['median']:.4g}",
             ", ".join(f"{code}: {n}" for code, n in r["errors"].items()) or "none"] for r in ordered]


def quirks(result: dict[str, Any]) -> list[str]:
    """What the server did differently, which the figures rest on."""
    notes = []
    if result["requests"] and not result.get("sends_done"):
        notes.append("never sent data: [DONE] (the stream's end was the body's)")
    if result["requests"] and not result.get("sends_usage"):
        notes.append("sent no usage: output tokens counted as text chunks")
    return notes


def load_key(result: dict[str, Any]) -> tuple[Any, ...]:
    config = result["config"]
    return (result["model"], config["mode"], config["concurrency"], config["input_len"], config["output_len"],
            config.get("rate"))


def batched_server(result: dict[str, Any], framework: str) -> bool:
    source = result.get("source") or {}
    return source.get("framework") == framework and source.get("max_running") != 1


def check_llm_claim(results: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(status, evidence lines) for LLM_CLAIM, from stored llm-loadtest results."""
    loads: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for result in results:
        if result["config"]["concurrency"] < BATCHED_CONCURRENCY or not result["requests"]:
            continue
        for framework in ("torch", "tf"):
            if batched_server(result, framework):
                loads.setdefault(load_key(result), {})[framework] = result
    judged = {key: found for key, found in loads.items() if len(found) == 2}
    if not judged:
        return "inconclusive", ["needs `loadtest --llm` results of frameduel's torch and tf servers (continuous "
                                f"batching) at the same load, concurrency >= {BATCHED_CONCURRENCY}"]
    torch_faster = tf_as_fast = 0
    lines = []
    for key, found in sorted(judged.items(), key=lambda item: str(item[0])):
        torch_tps, tf_tps = found["torch"]["output_throughput"], found["tf"]["output_throughput"]
        faster = torch_tps > (1 + NOISE_THRESHOLD) * tf_tps
        torch_faster += faster
        tf_as_fast += not faster and tf_tps >= torch_tps / (1 + NOISE_THRESHOLD)
        peers = [f"{r['label']} {r['output_throughput']:,.0f}" for r in results
                 if load_key(r) == key and not r.get("source")]
        lines.append(f"{key[0]} c{key[2]}: torch {found['torch']['source'].get('mode')} {torch_tps:,.0f} vs tf "
                     f"{found['tf']['source'].get('mode')} {tf_tps:,.0f} output tok/s"
                     + (f" (peers: {', '.join(peers)})" if peers else ""))
    headline = (f"frameduel's engine in both frameworks, same load: torch faster (beyond the {NOISE_THRESHOLD:.0%} "
                f"noise threshold) in {torch_faster} of {len(judged)} loads, tf as fast or faster in {tf_as_fast}")
    if 2 * torch_faster > len(judged):
        return "supported", [headline, *lines]
    if 2 * tf_as_fast > len(judged):
        return "not supported", [headline, *lines]
    return "inconclusive", [headline, *lines]


def llm_loadtest_lines(result: dict[str, Any]) -> list[str]:
    """What `loadtest --llm` prints under its table: throughput, goodput, the server's quirks."""
    lines = [f"{result['requests']} requests in {result['duration_s']:.2f} s: {result['request_throughput']:.2f} "
             f"req/s, {result['output_throughput']:,.0f} output tok/s, {result['total_token_throughput']:,.0f} "
             f"total tok/s; output tokens from {result['output_tokens_from']}"]
    if result.get("goodput"):
        goodput = result["goodput"]
        slo = ", ".join(f"{metric} <= {ms:g} ms" for metric, ms in goodput["slo_ms"].items())
        lines.append(f"goodput ({slo}): {goodput['request_throughput']:.2f} req/s, {goodput['share']:.0%} of requests")
    return lines + [f"server quirk: {note}" for note in quirks(result)]


def print_llm_loadtest(console: Console, result: dict[str, Any]) -> None:
    table = Table(header_style="bold")
    for column in LLM_COLUMNS:
        table.add_column(column)
    table.add_row(*llm_rows([result])[0])
    console.print(table)
    for line in llm_loadtest_lines(result):
        console.print(line, highlight=False)
