"""Model serving: a KServe v2 (Open Inference Protocol) server with dynamic batching, and a load tester.

    protocol.py    v2 request/response bodies, JSON and the binary-tensor extension
    batcher.py     per model version: queue, batch formation, padding, splitting, deadlines
    repository.py  the model repository on disk, version policy, load/unload
    metrics.py     Prometheus metrics in a per-app registry
    app.py         FastAPI routes, auth, error mapping; run_server()
    loadtest.py    closed- and open-loop load generator; results go to the store

Framework-free: artefacts are executed by ``frameduel.export.runtimes.load_runtime``.
"""
