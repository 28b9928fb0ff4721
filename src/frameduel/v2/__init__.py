"""The Open Inference Protocol (KServe v2) on the wire: REST's JSON and binary tensors (protocol.py), gRPC's
messages (grpc_v2/, generated) and tensor contents (grpc_tensors.py). Shared by the server (serve/) and the
load generator (loadgen/), so a client never imports the server."""
