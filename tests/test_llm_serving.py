"""`frameduel serve --llm` for real: server processes on 127.0.0.1, in torch and in TF, always stopped, driven
by the third-party `openai` client (and raw HTTP where a client would hide what is sent).

The model is a tiny random Llama checkpoint with a trained BPE tokenizer and a chat template
(checkpoints/synthetic.py, written in the test, nothing downloaded), initialised wide so that greedy
decoding wanders through the vocabulary instead of settling in a loop any near-miss would also produce.

Greedy parity, the check: the token ids the server generates (vLLM's `return_token_ids`) must equal
`transformers`' `generate(do_sample=False)` ids exactly, for prompts sent alone and for the same prompts
sent together with sampled neighbours of other lengths (so each step batches them with others, prefills
beside decodes, and joins and leaves mid-run): batching may move logits by float noise, never a token.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from frameduel.checkpoints.synthetic import write_llama_checkpoint
from frameduel.store import Store
from frameduel.workloads.llama import LlamaConfig
from tests.conftest import cli_command, cli_in_process, run_cli
from tests.serve_support import free_port
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")
openai = require_module("openai")
transformers = require_module("transformers")
torch = require_module("torch")
tokenizers = require_module("tokenizers")

CONFIG = LlamaConfig(vocab_size=320, block_size=64, hidden_size=32, intermediate_size=72, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, rope_theta=50000.0, max_position_embeddings=256)
MODEL = "tiny-llama"
TOKEN = "llm-test-token"
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_checkpoint(tmp_path_factory.mktemp("llm") / MODEL, CONFIG, "bpe", seed=0, init_std=0.3)


@contextmanager
def llm_server(*options: str) -> Iterator[str]:
    """`frameduel serve --llm ...` in a process of its own, ready (its /health answers); always stopped."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(cli_command("serve", "--llm", *options, "--port", str(port), "--threads", "1"),
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not healthy(base):
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the LLM server did not start: {log.read()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module", params=["torch", "tf"])
def server(request: pytest.FixtureRequest, checkpoint: Path) -> Iterator[str]:
    """One server per framework, in its default (best) mode: 4 KV slots, 8 waiting places, a token."""
    with llm_server(str(checkpoint), "--framework", request.param, "--kv-slots", "4", "--max-waiting", "8",
                    "--token", TOKEN) as base:
        yield base


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def reference(checkpoint: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()

    def greedy(prompt: list[int], new_tokens: int = NEW_TOKENS) -> list[int]:
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False)
        return out[0, len(prompt):].tolist()

    return greedy


def completion_ids(base: str, prompt: list[int] | str, max_tokens: int = NEW_TOKENS,
                   **options) -> tuple[list[int], str]:
    choice = client(base).completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                             temperature=options.pop("temperature", 0.0),
                                             extra_body={"return_token_ids": True}, **options).choices[0]
    return choice.token_ids, choice.text


PROMPTS = [np.random.default_rng(i).integers(5, CONFIG.vocab_size, size=3 + 2 * i).tolist() for i in range(6)]


def test_greedy_ids_equal_transformers_alone_and_among_neighbours(server, reference):
    expected = [reference(prompt) for prompt in PROMPTS]
    assert all(len(set(ids)) >= 8 for ids in expected), "degenerate reference sequences would prove little"
    assert [completion_ids(server, prompt)[0] for prompt in PROMPTS[:2]] == expected[:2]
    with ThreadPoolExecutor(8) as pool:  # 6 greedy prompts and 2 sampled neighbours through 4 slots at once
        neighbours = [pool.submit(completion_ids, server, [7] * (40 + 9 * i), 30 + 5 * i, temperature=1.0, seed=i)
                      for i in range(2)]
        together = [pool.submit(completion_ids, server, prompt) for prompt in PROMPTS]
        assert [future.result()[0] for future in together] == expected
        assert all(len(future.result()[0]) == 30 + 5 * i for i, future in enumerate(neighbours))


def test_a_seeded_sampled_stream_repeats_whatever_runs_beside_it(server):
    alone = completion_ids(server, "model server", 16, temperature=0.9, top_p=0.95, seed=11)
    with ThreadPoolExecutor(4) as pool:
        others = [pool.submit(completion_ids, server, "stream slot", 20, temperature=1.0, seed=i) for i in range(3)]
        again = pool.submit(completion_ids, server, "model server", 16, temperature=0.9, top_p=0.95, seed=11)
        assert again.result() == alone
        assert len({tuple(future.result()[0]) for future in others}) > 1  # other seeds, other streams


def test_completions_chat_and_streams_through_the_openai_client(server, checkpoint):
    api = client(server)
    listed = api.models.list().data
    assert [m.id for m in listed] == [MODEL] and listed[0].model_extra["frameduel"]["kv_cache_bytes"] > 0
    tokenizer = tokenizers.Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    whole = api.completions.create(model=MODEL, prompt="model server", max_tokens=10, temperature=0)
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 10
    assert whole.usage.prompt_tokens == len(tokenizer.encode("model server").ids)  # with its BOS
    stream = api.completions.create(model=MODEL, prompt="model server", max_tokens=10, temperature=0, stream=True,
                                    stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 10 and chunks[-2].choices[0].finish_reason == "length"
    chat = api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "the cache"}],
                                       max_completion_tokens=6, temperature=0)
    rendered = "<|user|>\nthe cache\n<|assistant|>\n"  # the checkpoint's template
    assert chat.usage.prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False).ids)
    pieces = api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "the cache"}],
                                         max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in pieces) == chat.choices[0].message.content
    with httpx.stream("POST", f"{server}/v1/completions", headers=auth(), timeout=60,
                      json={"model": MODEL, "prompt": "a", "max_tokens": 3, "stream": True}) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and raw.headers["content-type"].startswith("text/event-stream")


def test_a_stop_string_ends_the_text_before_it(server):
    _, text = completion_ids(server, "model server", 30)
    stop = text[6:9]
    stopped = client(server).completions.create(model=MODEL, prompt="model server", max_tokens=30, temperature=0,
                                                stop=[stop, "\u2603"]).choices[0]
    assert stopped.finish_reason == "stop" and stopped.text == text[:text.index(stop)]


def test_kserve_generate_and_generate_stream(server):
    _, text = completion_ids(server, "the model", 8)
    body = {"text_input": "the model", "parameters": {"max_tokens": 8, "temperature": 0}}
    answer = httpx.post(f"{server}/v2/models/{MODEL}/generate", json=body, headers=auth(), timeout=60).json()
    assert answer["model_name"] == MODEL and answer["text_output"] == text
    with httpx.stream("POST", f"{server}/v2/models/{MODEL}/generate_stream", json=body, headers=auth(),
                      timeout=60) as raw:
        events = [json.loads(line[5:]) for line in raw.iter_lines() if line.startswith("data:")]
    assert "".join(e["text_output"] for e in events) == text and events[-1]["done"]
    refused = httpx.post(f"{server}/v2/models/{MODEL}/generate", headers=auth(), timeout=60,
                         json={"text_input": "a", "parameters": {"beam_width": 2}})
    assert refused.status_code == 422 and "beam_width" in refused.json()["error"]


@pytest.mark.parametrize(("request_options", "error", "words"), [
    ({"model": "no-such-model"}, "NotFoundError", "does not exist"),
    ({"prompt": "model " * 400}, "BadRequestError", "context"),
    ({"n": 2}, "BadRequestError", "'n'=2"),
    ({"max_tokens": -1}, "BadRequestError", "max_tokens"),
    ({"frequency_penalty": 0.5}, "BadRequestError", "frequency_penalty"),
    ({"extra_body": {"top_k": 5}}, "BadRequestError", "'top_k' is not supported"),
])
def test_bad_input_is_a_4xx_in_one_line(server, request_options, error, words):
    arguments = {"model": MODEL, "prompt": "hello", "max_tokens": 4, **request_options}
    with pytest.raises(getattr(openai, error)) as caught:
        client(server).completions.create(**arguments)
    message = caught.value.body["message"]
    assert 400 <= caught.value.status_code < 500 and words in message and "\n" not in message


def test_a_malformed_body_and_a_missing_token_are_refused_in_one_line(server):
    malformed = httpx.post(f"{server}/v1/completions", content=b"{not json", headers=auth(), timeout=30)
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()


def test_a_full_queue_gives_429_and_the_server_serves_on(server):
    def attempt(i: int) -> str:
        try:
            completion_ids(server, [9] * 10, 60, temperature=1.0, seed=i)
        except openai.RateLimitError as exc:
            assert "\n" not in exc.body["message"]
            return "429"
        return "ok"

    with ThreadPoolExecutor(24) as pool:
        outcomes = list(pool.map(attempt, range(24)))  # 4 slots + 8 waiting places: the rest are refused
    assert outcomes.count("429") >= 1 and outcomes.count("ok") >= 4
    assert len(completion_ids(server, "model", 4)[0]) == 4


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=auth(), timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_disconnected_stream_frees_its_slot(server):
    cancelled = metric(server, 'frameduel_llm_finished_requests_total{reason="cancelled"}')
    body = {"model": MODEL, "prompt": "slot", "max_tokens": 240, "temperature": 0, "stream": True}
    with httpx.Client(timeout=60, headers=auth()) as http:
        for _ in range(4):  # every slot
            with http.stream("POST", f"{server}/v1/completions", json=body) as raw:
                next(line for line in raw.iter_lines() if line.startswith("data:"))  # the first token, then leave
    deadline = time.monotonic() + 5
    while metric(server, 'frameduel_llm_finished_requests_total{reason="cancelled"}') < cancelled + 4:
        assert time.monotonic() < deadline, "closed streams kept their slots"
        time.sleep(0.05)
    assert metric(server, "frameduel_llm_running_requests") == 0
    assert metric(server, "frameduel_llm_time_to_first_token_seconds_count") > 0


def test_loadtest_llm_measures_and_stores(server, db_path):
    result = run_cli("loadtest", server, "--llm", "--concurrency", "4", "--requests", "8", "--output-len", "8",
                     "--input-len", "6", "--slo", "ttft=5000,tpot=1000", "--token", TOKEN, "--json",
                     "--db", str(db_path))
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout)
    assert measured["requests"] == 8 and measured["errors"] == {} and measured["output_tokens_mean"] == 8
    assert measured["sends_done"] and measured["tpot_ms"]["median"] > 0 and measured["goodput"]["share"] == 1.0
    assert measured["source"]["framework"] in ("torch", "tf")
    stored = Store(db_path).results("llm-loadtest")
    assert [r.data["requests"] for r in stored] == [8]


def test_a_built_in_workload_serves_with_the_byte_level_tokenizer():
    with llm_server("llama", "--size", "small", "--framework", "torch", "--max-model-len", "64") as base:
        answer = httpx.post(f"{base}/v1/completions", timeout=60,
                            json={"model": "llama-small", "prompt": "héllo", "max_tokens": 5}).json()
    assert answer["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}  # UTF-8 bytes


@pytest.mark.parametrize(("options", "message"), [
    (("llama", "--framework", "keras-jax"), "keras-jax has no LLM server"),
    (("no-such-model",), "neither a checkpoint directory nor a built-in workload"),
    (("llama", "--mode", "xla"), "mode 'xla' is not valid for torch"),
])
def test_what_cannot_be_served_is_refused_in_one_line(options, message):
    result = cli_in_process("serve", "--llm", *options)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
