"""`frameduel serve` with settings the CLI leaves at their defaults (drain and connection limits, body size):

    python -m tests.faults.server_main '{"repository": DIR, "port": P, "grpc_port": G, "connections": {...}, ...}'

The same run_server the CLI calls, in a process of its own, so a test can signal it and read its memory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from frameduel.serve.app import ServerConfig, run_server
from frameduel.serve.batcher import BatchingConfig
from frameduel.serve.connections import ConnectionLimits


def config_from_json(text: str) -> ServerConfig:
    data = json.loads(text)
    data["repository"] = Path(data["repository"])
    data["batching"] = BatchingConfig(**data.get("batching", {}))
    data["connections"] = ConnectionLimits(**data.get("connections", {}))
    return ServerConfig(**data)


if __name__ == "__main__":
    run_server(config_from_json(sys.argv[1]))
