"""KServe's own Python model server over one ONNX file: the peer benchmarks/serving.py compares against.

Runs in a virtual environment of its own (kserve pins packages frameduel does not), never imported by
frameduel:

    python3 -m venv /work/kserve-venv && /work/kserve-venv/bin/pip install kserve onnxruntime
    /work/kserve-venv/bin/python benchmarks/kserve_onnx_server.py --model_name NAME --model_file model.onnx \
        --http_port 8080 --grpc_port 8081 [--threads 1]

A custom ``kserve.Model`` (KServe's documented way to serve a framework it has no runtime for here)
answers the v2 REST protocol with ONNX Runtime; every other setting is KServe's default, so the
comparison is with the server as a user would start it. Inputs and outputs are described from the ONNX
graph, so ``frameduel loadtest`` reads the model metadata and drives it like a frameduel server.
"""

from __future__ import annotations

import argparse
import uuid

import kserve  # parses its own options (--http_port, --grpc_port, ...) from the command line at import
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse

# ONNX Runtime's element types -> v2 datatypes (the float and integer types a frameduel export has).
DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
             "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
             "tensor(bool)": "BOOL"}


def describe(args: list[ort.NodeArg]) -> list[dict]:
    """v2 metadata of graph inputs or outputs; a symbolic (batch) axis is -1."""
    return [{"name": a.name, "datatype": DATATYPES[a.type],
             "shape": [d if isinstance(d, int) else -1 for d in a.shape]} for a in args]


class OnnxModel(kserve.Model):
    def __init__(self, name: str, path: str, threads: int) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # as frameduel serve --threads: one core stays with HTTP
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    def get_input_types(self) -> list[dict]:
        return describe(self.session.get_inputs())

    def get_output_types(self) -> list[dict]:
        return describe(self.session.get_outputs())

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        outputs = []
        for meta, array in zip(self.session.get_outputs(), self.session.run(None, feeds), strict=True):
            output = InferOutput(meta.name, list(array.shape), DATATYPES[meta.type])
            output.set_data_from_numpy(array, binary_data=False)  # JSON unless the request asks for binary
            outputs.append(output)
        # KServe refuses a null response id; echo the request's or make one.
        return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name,
                             infer_outputs=outputs)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_file", required=True, help="an ONNX file")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    kserve.ModelServer().start([OnnxModel(args.model_name, args.model_file, args.threads)])


if __name__ == "__main__":
    main()
