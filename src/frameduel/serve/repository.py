"""A model repository on disk and the versions of it that are loaded and serving.

Layout (what ``frameduel export`` writes)::

    <root>/<model>/<version>/manifest.json     # plus the artefact it names
    <root>/<model>/serving.json                # optional: BatchingConfig fields for this model, and
                                               # "runtime": "package.module:Factory", a runtime of your own

Version policy: loading a model without naming versions serves its newest version on disk; naming
versions serves exactly those. Requests without a version go to the newest loaded one. A reload
loads the new versions first, switches requests to them, and only then drains and unloads the
versions no longer wanted, so no request sees the model missing.

A model that fails to load (whatever its runtime raises) is not served and the index says why; the others
serve on. A model deleted from disk while it is served keeps serving from memory, and says so in the index,
until it is unloaded. Only names that are plain directory names (MODEL_NAME) ever reach the filesystem, so no
request reads anything outside the repository.

A custom runtime (serving.json's "runtime") is imported by module name, so it must be installed or on the
server's path, never a file of the repository; its factory takes (directory, manifest, threads=N) and returns
an object with ``infer(inputs) -> outputs``, as every runtime in export/runtimes.py does.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.export.manifest import MANIFEST_FILE, Manifest, read_manifest
from frameduel.export.runtimes import Runtime, check_inputs, load_runtime
from frameduel.serve.batcher import BatchingConfig, DynamicBatcher, one_line
from frameduel.serve.metrics import ServerMetrics
from frameduel.v2.protocol import ServeError

MODEL_CONFIG_FILE = "serving.json"
RUNTIME_SETTING = "runtime"  # serving.json's key naming a custom runtime factory, "package.module:Factory"
# Model names are directory names; anything else (paths, dot-files, NUL bytes) never touches the filesystem.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass
class LoadedVersion:
    name: str
    version: int
    manifest: Manifest
    batching: BatchingConfig
    batcher: DynamicBatcher

    def check(self, inputs: dict[str, np.ndarray]) -> int:
        """Validate one request's inputs; any batch size is fine, the batcher splits and pads."""
        any_batch = replace(self.manifest, batch_sizes=None, max_batch=sys.maxsize)
        return check_inputs(any_batch, inputs)


def parse_version(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ServeError(f"version '{text}' is not a version number; versions are positive integers")
    return int(text)


class ModelRepository:
    def __init__(self, root: Path, batching: BatchingConfig, metrics: ServerMetrics,
                 threads: int | None = None) -> None:
        if not Path(root).is_dir():
            raise FrameduelError(f"model repository {root} is not a directory; export models into it with "
                                 "`frameduel export`")
        self.root = Path(root)
        self.batching = batching
        self.metrics = metrics
        self.threads = threads
        self.loaded: dict[str, dict[int, LoadedVersion]] = {}
        self.errors: dict[tuple[str, int], str] = {}  # last load failure per version, for the index
        self.lock = asyncio.Lock()  # one load/unload at a time; inference never waits on it

    # -- what is on disk ---------------------------------------------------------------------------
    def models_on_disk(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions_on_disk(self, name: str) -> list[int]:
        directory = self.root / name
        try:
            if MODEL_NAME.fullmatch(name) and directory.is_dir():
                return sorted(int(p.name) for p in directory.iterdir()
                              if p.name.isdigit() and (p / MANIFEST_FILE).is_file())
        except OSError:  # deleted while we looked
            pass
        raise ServeError(f"unknown model '{name}'; the repository index lists the models", "unknown_model")

    def model_config(self, name: str) -> tuple[BatchingConfig, str | None]:
        """This model's batching settings and its custom runtime factory (None: the one its manifest names)."""
        path = self.root / name / MODEL_CONFIG_FILE
        if not path.is_file():
            return self.batching, None
        known = {f.name for f in fields(BatchingConfig)}
        try:
            overrides = json.loads(path.read_text())
            runtime = overrides.pop(RUNTIME_SETTING, None)
            unknown = set(overrides) - known
            if unknown:
                raise FrameduelError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)} and "
                                     f"'{RUNTIME_SETTING}'")
            if runtime is not None and (not isinstance(runtime, str) or ":" not in runtime):
                raise FrameduelError(f"{path}: '{RUNTIME_SETTING}' must be \"package.module:Factory\"")
            if overrides.get("allowed_batch_sizes") is not None:
                overrides["allowed_batch_sizes"] = tuple(overrides["allowed_batch_sizes"])
            return replace(self.batching, **overrides), runtime
        except (ValueError, TypeError, AttributeError) as exc:
            raise FrameduelError(f"{path} is not a valid serving config: {exc}") from None

    # -- loading -----------------------------------------------------------------------------------
    async def load(self, name: str, versions: list[int] | None = None) -> list[int]:
        """Serve the newest version of name (versions None) or exactly the given versions."""
        async with self.lock:
            available = self.versions_on_disk(name)
            if not available:
                raise ServeError(f"model '{name}' has no version directories with a {MANIFEST_FILE}",
                                 "unknown_model")
            wanted = sorted(set(versions)) if versions else [available[-1]]
            missing = sorted(set(wanted) - set(available))
            if missing:
                raise ServeError(f"model '{name}' has no versions {missing} on disk; it has {available}",
                                 "unknown_model")
            current = self.loaded.get(name, {})
            serving = {v: current[v] if v in current else await self._load_version(name, v) for v in wanted}
            self.loaded[name] = serving  # requests switch here; the versions dropped below only drain
            await self._close([loaded for v, loaded in current.items() if v not in serving])
            return wanted

    async def unload(self, name: str, version: int | None = None) -> None:
        async with self.lock:
            if name not in self.loaded:
                self.versions_on_disk(name)  # 404 for a model that does not exist (a served one may be off disk)
            current = self.loaded.get(name, {})
            dropped = [loaded for v, loaded in current.items() if version is None or v == version]
            remaining = {v: loaded for v, loaded in current.items() if loaded not in dropped}
            if remaining:
                self.loaded[name] = remaining
            else:
                self.loaded.pop(name, None)
            await self._close(dropped)

    async def _load_version(self, name: str, version: int) -> LoadedVersion:
        directory = self.root / name / str(version)
        try:
            settings, factory = self.model_config(name)
            # ORT sessions take a while to build: off the event loop
            runtime = await asyncio.to_thread(load_any_runtime, directory, self.threads, factory)
            batching = settings.for_artefact(runtime.manifest.batch_sizes, runtime.manifest.max_batch)
        except ImportError as exc:  # the runtime's package is not installed
            self.errors[(name, version)] = str(exc)
            raise ServeError(f"cannot load {name} version {version}: {exc}; install frameduel[export]",
                             "load_failed") from None
        except Exception as exc:  # noqa: BLE001 - whatever a runtime raises on a bad artefact fails this model only
            cause = " ".join(str(exc).split()) if isinstance(exc, FrameduelError) else one_line(exc)  # one line
            self.errors[(name, version)] = cause
            raise ServeError(f"cannot load {name} version {version}: {cause}", "load_failed") from None
        self.errors.pop((name, version), None)
        labels = (name, str(version))
        batcher = DynamicBatcher(
            runtime.infer,
            batching,
            on_batch=lambda stats: self.metrics.observe_batch(*labels, stats),
            on_depth=lambda depth: self.metrics.set_queue_depth(*labels, depth),
            on_failure=lambda cause: self.metrics.observe_batch_failure(*labels, cause),
        )
        return LoadedVersion(name, version, runtime.manifest, batching, batcher)

    async def _close(self, versions: list[LoadedVersion]) -> None:
        for loaded in versions:
            await loaded.batcher.close()
            self.metrics.forget(loaded.name, str(loaded.version))

    async def close(self) -> None:
        async with self.lock:
            await self._close([v for versions in self.loaded.values() for v in versions.values()])
            self.loaded.clear()

    # -- lookups -----------------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        versions = self.loaded.get(name, {})
        if version is None and versions:
            return versions[max(versions)]
        if version in versions:
            return versions[version]
        on_disk = self.versions_on_disk(name)  # unknown_model when the model does not exist at all
        if version is not None and version not in on_disk:
            raise ServeError(f"model '{name}' has no version {version}; it has {on_disk}", "unknown_model")
        what = f"model '{name}'" if version is None else f"model '{name}' version {version}"
        raise ServeError(f"{what} is not loaded; load it through the repository extension (REST: POST "
                         f"/v2/repository/models/{name}/load; gRPC: RepositoryModelLoad)", "not_loaded")

    def index(self) -> list[dict[str, Any]]:
        """Every version on disk with its state, as the repository extension's index lists them, and every version
        still served after its files were deleted."""
        entries = []
        for name in sorted({*self.models_on_disk(), *self.loaded}):
            loaded = self.loaded.get(name, {})
            try:
                on_disk = self.versions_on_disk(name)
            except ServeError:
                on_disk = []
            for version in sorted({*on_disk, *loaded}):
                state = "READY" if version in loaded and loaded[version].batcher.healthy else "UNAVAILABLE"
                entry = {"name": name, "version": str(version), "state": state}
                if version not in loaded:
                    entry["reason"] = self.errors.get((name, version), "not loaded")
                elif state != "READY":
                    entry["reason"] = "its runtime hung; unload and load it"
                elif version not in on_disk:
                    entry["reason"] = "deleted from the repository; served from memory until unloaded"
                entries.append(entry)
        return entries


def load_any_runtime(directory: Path, threads: int | None, factory: str | None) -> Runtime:
    """The runtime the manifest names, or a custom one: "package.module:Factory" (imported, never read from disk)."""
    if factory is None:
        return load_runtime(directory, threads)
    module_name, _, factory_name = factory.partition(":")
    runtime = getattr(importlib.import_module(module_name), factory_name)(directory, read_manifest(directory),
                                                                         threads=threads)
    if not callable(getattr(runtime, "infer", None)):
        raise FrameduelError(f"runtime {factory} has no infer(inputs) method")
    return runtime
