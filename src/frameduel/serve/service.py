"""What the model server does whatever the transport; the REST face (app.py) and the gRPC face (grpc_app.py) call it.

Each face decodes its own wire format into an ``InferRequest`` and encodes the outputs back. Resolving the
model version, checking the inputs against the model's metadata, the batcher, timing, the request metrics,
metadata, readiness and the repository extension's parameters live here once. Errors are ``ServeError``s
whose reason each face maps to its own status (``protocol.REASONS``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from frameduel import __version__
from frameduel.errors import FrameduelError
from frameduel.serve.metrics import ServerMetrics
from frameduel.serve.repository import LoadedVersion, ModelRepository, parse_version
from frameduel.v2.protocol import REASONS, InferRequest, ServeError, tensor_metadata

log = logging.getLogger("frameduel.serve")
SERVER_NAME = "frameduel"
EXTENSIONS = ("binary_tensor_data", "model_repository")
PROTOCOLS = ("rest", "grpc")  # the request metrics' protocol label; each is a column of REASONS
OK_CODES = {"rest": "200", "grpc": "OK"}
Answer = TypeVar("Answer")


def status_code(protocol: str, reason: str | None) -> str:
    """The status a protocol answers with, as the request metrics label it; reason None: success."""
    if reason is None:
        return OK_CODES[protocol]
    return str(REASONS[reason][PROTOCOLS.index(protocol)])


def reason_of(exc: FrameduelError) -> str:
    return getattr(exc, "reason", "bad_request")  # a plain FrameduelError comes from an input check


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())  # constant time: no guessing by timing


def optional_version(text: str | None) -> int | None:
    """A version from a URL or a message; None or "" (gRPC's unset string) means the newest loaded."""
    return parse_version(text) if text else None


def is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def version_list(value: Any) -> list[int] | None:
    """The load parameter "versions": absent, one version number or a non-empty list of them."""
    values = [value] if is_version(value) else value
    if values is not None and (not isinstance(values, list) or not values or not all(map(is_version, values))):
        raise ServeError("parameter 'versions' must be a version number or a non-empty list of them")
    return values


@dataclass(frozen=True)
class Inferred:
    """What an infer call produced, for the face to encode."""

    loaded: LoadedVersion
    request: InferRequest
    outputs: dict[str, np.ndarray]  # in answer order (as requested, else the model's), C-contiguous


class ModelService:
    """One repository and its metrics behind every transport of one server process."""

    def __init__(self, repository: ModelRepository, metrics: ServerMetrics) -> None:
        self.repository = repository
        self.metrics = metrics
        self.ready = False
        self.draining = False  # after SIGTERM: infer calls already admitted finish, new ones get 503 (drain.py)
        self.in_flight = 0  # infer calls admitted and not yet answered
        self.last_admitted = 0.0  # time.monotonic() of the latest admitted infer call

    async def start(self) -> None:
        for name in self.repository.models_on_disk():
            try:
                await self.repository.load(name)
            except ServeError as exc:  # one broken model must not keep the others from serving
                log.warning("not serving %s: %s", name, exc)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.repository.close()

    def begin_drain(self) -> None:
        """Stop admitting infer calls (503, reason shutting_down); readiness turns false for load balancers."""
        self.draining = True
        self.ready = False

    @contextmanager
    def admitted(self, protocol: str) -> Iterator[None]:
        """One infer call while it is in flight; refused once the server drains. A face enters this before it
        reads the request, so a request whose body is still arriving when SIGTERM comes is still answered."""
        if self.draining:
            error = ServeError("the server is shutting down; retry on another replica", "shutting_down")
            self.count_failure(protocol, error)
            raise error
        self.in_flight += 1
        self.last_admitted = time.monotonic()
        try:
            yield
        finally:
            self.in_flight -= 1

    def count_auth_failure(self, protocol: str) -> None:
        self.metrics.auth_failures.labels(protocol).inc()

    # -- health and metadata -----------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        """Without a version: the newest loaded one, listing every loaded version."""
        loaded = self.repository.get(model, optional_version(version))
        manifest = loaded.manifest
        versions = sorted(self.repository.loaded.get(loaded.name, {})) if not version else [loaded.version]
        return {
            "name": loaded.name,
            "versions": [str(v) for v in versions],
            "platform": f"{manifest.runtime}_{manifest.format}",
            "inputs": tensor_metadata(manifest.inputs),
            "outputs": tensor_metadata(manifest.outputs),
            # What the artefact was exported from, so a load test can be attributed to a framework.
            "parameters": {"workload": manifest.workload, "size": manifest.size, "framework": manifest.framework,
                           "format": manifest.format},
        }

    def model_ready(self, model: str, version: str | None) -> bool:
        """False for a model or version on disk but not loaded; an unknown one is an error."""
        try:
            loaded = self.repository.get(model, optional_version(version))
        except ServeError as exc:
            if exc.reason != "not_loaded":
                raise
            return False
        return loaded.batcher.healthy and not self.draining

    # -- inference ---------------------------------------------------------------------------------
    def count_failure(self, protocol: str, exc: FrameduelError) -> None:
        """A request refused before it named a loaded model (by its face: too large, malformed)."""
        reason = reason_of(exc)
        self.metrics.observe_request(protocol, "", "", status_code(protocol, reason), reason)

    async def infer(self, protocol: str, model: str, version: str | None, decode: Callable[[], InferRequest],
                    encode: Callable[[Inferred], Answer]) -> Answer:
        """Resolve, decode, check, batch, encode; every outcome is counted under protocol."""
        start = time.perf_counter()
        labels = ("", "")  # until the model resolves: unknown names never become label values
        try:
            # From resolving the version to the batcher's queue nothing awaits (decode is synchronous), so
            # a version swap (new loaded, then old closed) cannot slip in between and fail the request.
            loaded = self.repository.get(model, optional_version(version))
            labels = (loaded.name, str(loaded.version))
            request = decode()
            loaded.check(request.inputs)
            names = self.output_names(loaded, request)
            result = await loaded.batcher.submit(request.inputs)
            outputs = {name: np.ascontiguousarray(result.outputs[name]) for name in names or result.outputs}
            answer = encode(Inferred(loaded, request, outputs))
        except FrameduelError as exc:
            reason = reason_of(exc)
            self.metrics.observe_request(protocol, *labels, status_code(protocol, reason), reason)
            raise
        phases = {"queue": result.queue_s, "compute": result.compute_s, "total": time.perf_counter() - start}
        self.metrics.observe_request(protocol, *labels, status_code(protocol, None), phases=phases)
        return answer

    @staticmethod
    def output_names(loaded: LoadedVersion, request: InferRequest) -> tuple[str, ...] | None:
        """The outputs asked for (None: all), each one the model has."""
        known = [spec.name for spec in loaded.manifest.outputs]
        unknown = sorted(set(request.outputs or ()) - set(known))
        if unknown:
            raise ServeError(f"unknown outputs {unknown}; the model has {known}")
        return request.outputs

    # -- the repository extension ------------------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return [entry for entry in self.repository.index() if not ready_only or entry["state"] == "READY"]

    async def load(self, model: str, parameters: dict[str, Any]) -> list[int]:
        """Serve the newest version, or exactly parameters["versions"]; new versions load before old unload. Other
        parameters (Triton's "config", "file:..." uploads) are refused: a load only ever reads the repository."""
        unknown = sorted(set(parameters) - {"versions"})
        if unknown:
            raise ServeError(f"unknown load parameters {unknown}; a load takes only 'versions' (models are read from "
                             "the repository, never sent)")
        return await self.repository.load(model, version_list(parameters.get("versions")))

    async def unload(self, model: str, parameters: dict[str, Any]) -> list[int]:
        """Unload every version, or only parameters["version"]; queued requests finish first. -> still loaded."""
        version = parameters.get("version")
        if version is not None and not is_version(version):
            raise ServeError("parameter 'version' must be a version number")
        await self.repository.unload(model, version)
        return sorted(self.repository.loaded.get(model, {}))
