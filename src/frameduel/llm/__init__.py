"""The LLM server's engine, framework-free: continuous batching over a bounded KV cache.

    params.py     SamplingParams (one request) and EngineConfig (the server): frozen, serialisable
    tokenizer.py  the checkpoint's tokenizer.json through the `tokenizers` library, or the byte-level
                  tokenizer of the built-in workloads; the chat template
    text.py       a sequence's output text: incremental detokenization and stop strings
    sampling.py   greedy, temperature and top-p choices in numpy, one seeded generator per request
    scheduler.py  which tokens each step runs: admission to KV slots, chunked prefill beside decoding
    engine.py     the step loop (on the server's event loop), its inbox (submit, cancel), its observer (metrics)
    model.py      what `serve --llm` serves: a checkpoint or a workload, loaded into one framework

The tensor work of a step lives in frameworks/torch_llm.py and frameworks/tf_llm.py (load_stepper);
the HTTP faces (OpenAI-compatible and KServe's generate extension) in serve/.
"""
