"""Generated gRPC stubs of the KServe v2 inference service (grpc_predict_v2.proto, see its header for the sources).

The *_pb2*.py files are protoc's output, committed; after editing the .proto, regenerate them from ``src/``:

    pip install grpcio-tools==1.81.1
    cd src && python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \\
        frameduel/v2/grpc_v2/grpc_predict_v2.proto && \\
    sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \\
        frameduel/v2/grpc_v2/grpc_predict_v2_pb2.py

The sed line gives the messages a descriptor pool of their own: tritonclient and KServe's SDK register
the same names (package ``inference``) in protobuf's default pool, and one process holding both would
fail with "duplicate symbol". The wire format does not carry message names, only the rpc paths
(``/inference.GRPCInferenceService/...``), which stay as the protocol has them.

Made with grpcio-tools 1.81.1, whose protoc writes protobuf 6.33.5 gencode: the runtime must be
protobuf >= 6.33.5 (checked at import; 6.33 and 7.x runtimes both load it) and grpcio >= 1.81.1
(checked by the _pb2_grpc module), as the [serve] extra requires.
"""
