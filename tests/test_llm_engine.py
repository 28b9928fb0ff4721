"""The LLM server's framework-free parts, in the fast tier: the scheduler (slots, chunked prefill, continuous
batching), the engine's thread and inbox, output text (stop strings, partial characters), sampling, the
OpenAI and KServe request checks, the load generator's metric definitions, and the report's claim row.

The model here is a stand-in stepper in numpy (the next token is a fixed function of the fed token and its
position), so the engine's bookkeeping is tested apart from any framework; tests/test_llm_serving.py runs
the real servers.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from frameduel.checkpoints.synthetic import byte_level_backend
from frameduel.errors import FrameduelError
from frameduel.frameworks import LLM_CONTRACT
from frameduel.llm import sampling
from frameduel.llm.engine import Engine
from frameduel.llm.params import EngineConfig, SamplingParams
from frameduel.llm.scheduler import Scheduler, Sequence
from frameduel.llm.text import OutputText
from frameduel.llm.tokenizer import Tokenizer, byte_level_tokenizer
from frameduel.loadgen.llm_load import LLMLoadConfig, Record, parse_slo, summarize
from frameduel.loadgen.sse_client import EventSplitter
from frameduel.report.llm_serving import check_llm_claim
from frameduel.serve.openai_api import parse_request, sampling_params
from frameduel.spec import FRAMEWORK_INFO, frameworks_with
from frameduel.v2.protocol import ServeError
from tests.test_backend_contract import public_functions

VOCAB = 256


def next_token(token: int, position: int) -> int:
    return (token * 7 + position * 3 + 1) % VOCAB


class TableStepper:
    """Logits peaked at next_token(fed token, its position); records each step's rows."""

    vocab_size, kv_bytes = VOCAB, 0

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, int]] = []  # (tokens, sampled tokens) of each model call
        self.steps: list[tuple[int, int]] = []  # the same, summed over each step's calls
        self.delay = delay

    def step(self, ids, positions, slots, rows):
        """ids, positions (B, T); rows into the B*T tokens."""
        time.sleep(self.delay)
        self.calls.append((ids.size, len(rows)))
        logits = np.zeros((len(rows), VOCAB), np.float32)
        for out, row in enumerate(rows):
            logits[out, next_token(int(ids.reshape(-1)[row]), int(positions.reshape(-1)[row]))] = 10.0
        return logits


def expected(prompt: list[int], count: int) -> list[int]:
    tokens, position, last = [], len(prompt) - 1, prompt[-1]
    for _ in range(count):
        last = next_token(last, position)
        tokens.append(last)
        position += 1
    return tokens


def sequence(prompt: list[int], max_tokens: int, tokenizer: Tokenizer | None = None, **params) -> Sequence:
    tokenizer = tokenizer or byte_level_tokenizer()
    settings = SamplingParams(max_tokens, temperature=params.pop("temperature", 0.0), **params)
    return Sequence(prompt, settings, OutputText(tokenizer.decoder(), settings.stop), None, 0.0)


def run_all(scheduler: Scheduler, stepper: TableStepper) -> None:
    while scheduler.busy:
        scheduler.admit()
        plan = scheduler.plan()
        if plan is not None:
            logits = np.concatenate([stepper.step(f.ids, f.positions, f.slots, f.rows) for f in plan.forwards])
            stepper.steps.append((plan.tokens, len(plan.sampled)))
            scheduler.finish_step(plan, logits, 0.0)


def test_sequences_join_and_leave_the_batch_and_decode_what_they_would_alone():
    scheduler = Scheduler(slots=2, running_limit=2, prefill_chunk=4, eos_ids=frozenset(), vocab_limit=VOCAB)
    stepper = TableStepper()
    long, short, late = sequence([1, 2, 3, 4, 5, 6], 5), sequence([9], 2), sequence([7, 8], 3)
    for s in (long, short, late):
        scheduler.add(s)
    run_all(scheduler, stepper)
    assert long.output == expected([1, 2, 3, 4, 5, 6], 5) and long.finish_reason == "length"
    assert short.output == expected([9], 2) and late.output == expected([7, 8], 3)
    # step 1: 4 prompt tokens of `long` (the chunk), `short` waits for budget although it holds a slot;
    # `late` waits for a slot until `short` leaves.
    assert stepper.steps[0] == (4, 0)
    assert max(tokens for tokens, _ in stepper.steps) <= 2 + 4  # decode rows + one chunk, never more
    assert all(tokens == 1 or sampled <= 1 for tokens, sampled in stepper.calls if tokens > sampled)
    assert list(scheduler.free) and not scheduler.running


def test_one_request_at_a_time_runs_them_in_turn():
    scheduler = Scheduler(slots=4, running_limit=1, prefill_chunk=64, eos_ids=frozenset(), vocab_limit=VOCAB)
    stepper = TableStepper()
    for prompt in ([1, 2], [3], [4, 5, 6]):
        scheduler.add(sequence(prompt, 3))
    run_all(scheduler, stepper)
    assert all(sampled <= 1 for _, sampled in stepper.steps)


def test_end_of_sequence_and_stop_strings_finish_a_sequence():
    first = expected([65], 3)
    scheduler = Scheduler(slots=1, running_limit=1, prefill_chunk=8, eos_ids=frozenset({first[1]}), vocab_limit=VOCAB)
    stopped = sequence([65], 10)
    scheduler.add(stopped)
    run_all(scheduler, TableStepper())
    assert stopped.output == first[:2] and stopped.finish_reason == "stop"


def test_stop_strings_are_held_back_and_left_out():
    tokenizer = byte_level_tokenizer()
    text = OutputText(tokenizer.decoder(), ("lo w", "xyz"))
    released = [text.add(b) for b in b"hello world"]
    assert "".join(released) == "hel" and text.stopped
    plain = OutputText(tokenizer.decoder(), ("zz",))
    pieces = [plain.add(b) for b in b"abz"] + [plain.flush()]
    assert pieces == ["a", "b", "", "z"]  # "z" might begin "zz": held until the end


def test_a_multibyte_character_arrives_whole():
    text = OutputText(byte_level_tokenizer().decoder())
    assert [text.add(b) for b in "é!".encode()] == ["", "é", "!"]


def test_greedy_is_argmax_and_a_seeded_draw_repeats():
    logits = np.array([[0.1, 3.0, 2.9], [5.0, 5.0, 1.0]], np.float32)
    assert sampling.greedy(logits).tolist() == [1, 0]
    params = SamplingParams(8, temperature=0.8, top_p=0.9, seed=3)
    draws = [[sampling.sample(logits[0], params, rng) for _ in range(20)]
             for rng in (np.random.default_rng(3), np.random.default_rng(3))]
    assert draws[0] == draws[1] and set(draws[0]) <= {1, 2}  # top_p 0.9 leaves token 0 out


class Recorder:
    def __init__(self) -> None:
        self.running: list[int] = []
        self.tokens = 0

    def on_step(self, rows, seconds): ...

    def on_occupancy(self, running, waiting):
        self.running.append(running)

    def on_token(self, first, gap):
        self.tokens += 1

    def on_finish(self, sequence, now): ...


def test_the_engine_serves_submits_and_a_cancel_frees_the_slot_at_the_next_step():
    async def scenario() -> None:
        done = asyncio.Event()

        def deliver(events):
            if any(event.finish_reason for event in events):
                done.set()

        config = EngineConfig(slots=1, max_waiting=1, prefill_chunk=16)
        engine = Engine(TableStepper(delay=0.002), byte_level_tokenizer(), config, 4096, Recorder(), deliver)
        engine.start()
        try:
            endless = engine.submit([1, 2, 3], SamplingParams(4000, temperature=0.0), None)
            while not endless.output:
                await asyncio.sleep(0.005)
            queued = engine.submit([4], SamplingParams(2, temperature=0.0), None)
            with pytest.raises(ServeError) as full:
                engine.submit([5], SamplingParams(2, temperature=0.0), None)
            assert full.value.status == 429 and "\n" not in str(full.value)
            engine.cancel(endless)
            await asyncio.wait_for(done.wait(), 5)  # the queued request got the freed slot
            assert endless.finish_reason == "cancelled" and len(endless.output) < 4000
            assert queued.output == expected([4], 2) and queued.finish_reason == "length"
        finally:
            await engine.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "prompt": "hi", "n": 2}, "'n'=2"),
    ({"model": "m", "prompt": "hi", "max_tokens": -1}, "'max_tokens' must be an integer >= 1"),
    ({"model": "m", "prompt": "hi", "logprobs": 3}, "parameter 'logprobs'=3 is not supported"),
    ({"model": "m", "prompt": "hi", "tools": []}, "parameter 'tools' is not supported"),
    ({"model": "m", "prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"model": "m", "prompt": "hi", "temperature": 3}, "0 <= temperature <= 2"),
    ({"model": "m", "prompt": ""}, "'prompt' must be a non-empty string"),
    ({"prompt": "hi"}, "'model' is required"),
    ({"model": "m", "prompt": "hi", "stream_options": {"include_usage": True}}, "only allowed with"),
])
def test_a_bad_completion_request_is_one_line_naming_the_parameter(body, message):
    with pytest.raises(ServeError) as caught:
        parse_request("completion", body)
    assert message in str(caught.value) and "\n" not in str(caught.value) and caught.value.status == 400


def test_accepted_requests_and_the_context_check():
    parts = [{"type": "text", "text": "a"}]
    chat = parse_request("chat", {"model": "m", "messages": [{"role": "user", "content": parts}],
                                  "max_completion_tokens": 5, "frequency_penalty": 0, "stream": True,
                                  "stream_options": {"include_usage": True}})
    assert chat.messages == ({"role": "user", "content": "a"},) and chat.max_tokens == 5 and chat.include_usage
    ids = parse_request("completion", {"model": "m", "prompt": [[1, 2, 3]], "stop": "x", "seed": 4})
    assert ids.prompt_ids == (1, 2, 3) and ids.stop == ("x",)
    generate = parse_request("generate", {"text_input": "hi", "parameters": {"max_tokens": 3, "temperature": 0}})
    assert generate.max_tokens == 3 and generate.temperature == 0.0
    assert sampling_params(ids, 3, 16).max_tokens == 13  # no max_tokens: the rest of the context
    for prompt, max_tokens in ((16, None), (10, 7)):
        with pytest.raises(ServeError, match="context"):
            sampling_params(parse_request("completion", {"model": "m", "prompt": "x", "max_tokens": max_tokens}),
                            prompt, 16)


def test_a_byte_level_checkpoint_tokenizer_round_trips():
    backend = byte_level_backend()
    assert backend.encode("héllo").ids == list("héllo".encode()) and backend.get_vocab_size() == 256


def test_the_load_generator_uses_vllm_definitions():
    config = LLMLoadConfig("http://127.0.0.1:1", concurrency=2, requests=2, warmup=0,
                           slo=parse_slo("ttft=150,tpot=20"))
    fast = Record(sent=0.0, prompt_words=4, max_tokens=5, first=0.1, last=0.18, gaps=[0.02] * 4, chunks=5,
                  usage={"prompt_tokens": 7, "completion_tokens": 5}, done=True)
    slow = Record(sent=0.0, prompt_words=4, max_tokens=5, first=0.2, last=0.6, gaps=[0.1] * 4, chunks=5,
                  usage={"prompt_tokens": 7, "completion_tokens": 5}, done=True)
    result = summarize([fast, slow], config)
    assert result["tpot_ms"]["median"] == pytest.approx((80 / 4 + 400 / 4) / 2)  # (E2EL - TTFT) / (out - 1)
    assert result["duration_s"] == pytest.approx(0.6) and result["output_throughput"] == pytest.approx(10 / 0.6)
    assert result["goodput"]["request_throughput"] == pytest.approx(1 / 0.6)  # only `fast` meets both SLOs
    assert result["sends_done"] and result["output_tokens_from"] == "usage"
    with pytest.raises(FrameduelError, match="METRIC=MS"):
        parse_slo("ttft:200")


def test_server_sent_events_split_across_reads():
    seen = []
    splitter = EventSplitter(lambda data, at: seen.append(data))
    for piece in (b'data: {"a"', b': 1}\r\n\r\ndata: [DO', b"NE]\n\n"):
        splitter.feed(piece, 0.0)
    assert seen == [b'{"a": 1}', b"[DONE]"]


def llm_result(framework: str | None, tokens_per_s: float, concurrency: int = 32) -> dict:
    return {"model": "tiny", "label": framework or "transformers serve", "requests": 10, "errors": {},
            "output_throughput": tokens_per_s,
            "source": {"framework": framework, "mode": "eager", "workload": "llama"} if framework else {},
            "config": {"mode": "closed", "concurrency": concurrency, "input_len": 16, "output_len": 64, "rate": None}}


def test_the_llm_claim_is_judged_on_frameduels_two_servers():
    status, lines = check_llm_claim([llm_result("torch", 3000), llm_result("tf", 2900), llm_result(None, 1800)])
    assert status == "not supported" and "peers: transformers serve 1,800" in lines[1]
    assert check_llm_claim([llm_result("torch", 3000), llm_result("tf", 1000)])[0] == "supported"
    assert check_llm_claim([llm_result("torch", 3000, concurrency=1), llm_result("tf", 1000, 1)])[0] == "inconclusive"


def test_every_llm_module_has_the_contract_with_the_same_arguments():
    apis = {framework: public_functions(FRAMEWORK_INFO[framework].llm_module.rsplit(".", 1)[-1])
            for framework in frameworks_with("llm_module")}
    assert set(apis) == {"torch", "tf"}
    for name in LLM_CONTRACT:
        assert apis["torch"][name] == apis["tf"][name], name
