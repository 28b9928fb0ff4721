"""Model serving: a KServe v2 (Open Inference Protocol) server, REST and gRPC, with dynamic batching, and a load
tester.

    protocol.py    v2 request/response bodies, JSON and the binary-tensor extension
    batcher.py     per model version: queue, batch formation, padding, splitting, deadlines
    repository.py  the model repository on disk, version policy, load/unload
    metrics.py     Prometheus metrics in a per-app registry
    service.py     what every transport shares: resolve, check, batch, metadata, repository parameters
    app.py         the REST face: FastAPI routes, auth, error mapping; the lifespan; run_server()
    grpc_app.py    the gRPC face (inference.GRPCInferenceService, grpc.aio on the same event loop)
    drain.py       SIGTERM: admitted requests finish, new ones get 503, then the server stops
    connections.py HTTP connections that send nothing (slowloris), or too many: 408 / 429 and closed
    grpc_v2/       the reduced KServe v2 / Triton .proto and its committed generated stubs
    loadtest.py    closed- and open-loop load generator (grpc_load.py: its gRPC client); results go to the store

Framework-free: artefacts are executed by ``frameduel.export.runtimes.load_runtime``.
"""
