"""What the browser formats need beyond frameduel's own environment, installed once by `frameduel browser setup`.

    <cache>/npm/node_modules     the JS runtimes (TF.js 4.22.0 core, converter, cpu/webgl/wasm backends;
                                 ONNX Runtime Web), installed with `npm ci` from the package.json and
                                 package-lock.json committed beside this file: every version is exact
    <cache>/tfjs-converter/      a virtual environment holding the tensorflowjs converter

<cache> is the user's cache directory (platformdirs: ~/.cache/frameduel on Linux, or $XDG_CACHE_HOME/frameduel).

Why a separate environment for the converter: tensorflowjs 4.22.0 pins TensorFlow 2.19 (frameduel runs
TF 2.21), and pip's default resolution there crashes at import on a protobuf gencode/runtime mismatch
unless protobuf is pinned to 6.31.1, a version TF 2.19's own metadata excludes (<6). So the
environment is built in two pip steps from CONVERTER_REQUIREMENTS: the packages resolved normally
(tensorflow-cpu 2.19.0, not the "tensorflow" wheel that tensorflowjs and tf-keras name), then those
that name it, and protobuf, with --no-deps. tensorflowjs imports jax (converters/__init__ loads its
JAX converter) and tensorflow_hub at load, so they stay; flax, which only convert_jax uses, does not;
tensorflow-decision-forests is left out because it aborts the process at load (tfjs_converter_main.py).
(pip's own resolution of `tensorflowjs==4.22.0 protobuf==6.31.1` backtracked for over 8 minutes here.)

Each part writes a stamp holding the digest of what it was installed from, so running setup again is
a no-op (well under a second) until the pins change; nothing is ever installed during an export, whose
checks only say which command is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from frameduel.errors import FrameduelError

SETUP_COMMAND = "frameduel browser setup"
PACKAGE_FILES = ("package.json", "package-lock.json")
STAMP = ".frameduel-installed"
# Two pip steps (see the module docstring); every version exact, so the environment is reproducible.
CONVERTER_REQUIREMENTS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("tensorflow-cpu==2.19.0", "jax==0.10.2", "jaxlib==0.10.2", "importlib-resources==7.1.0", "packaging==23.2",
     "six==1.17.0"),
    ("tensorflowjs==4.22.0", "tf-keras==2.19.0", "tensorflow-hub==0.16.1", "protobuf==6.31.1"),
)


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("frameduel"))


def npm_dir() -> Path:
    return cache_dir() / "npm"


def node_modules() -> Path:
    return npm_dir() / "node_modules"


def converter_dir() -> Path:
    return cache_dir() / "tfjs-converter"


def converter_command() -> list[str]:
    """The venv's Python running tfjs_converter_main.py (the converter without TF-DF; see there)."""
    script = resources.files("frameduel.browser").joinpath("tfjs_converter_main.py")
    return [str(converter_dir() / "bin" / "python"), str(script)]


def package_text(name: str) -> str:
    return resources.files("frameduel.browser").joinpath(name).read_text()


def npm_digest() -> str:
    return hashlib.sha256("".join(package_text(name) for name in PACKAGE_FILES).encode()).hexdigest()


def converter_digest() -> str:
    return hashlib.sha256(repr((CONVERTER_REQUIREMENTS, sys.version_info[:2])).encode()).hexdigest()


def installed(directory: Path, digest: str) -> bool:
    stamp = directory / STAMP
    return stamp.is_file() and stamp.read_text() == digest


@dataclass(frozen=True)
class SetupStep:
    name: str
    seconds: float  # 0 when it was already installed
    size_bytes: int
    path: str


def run_step(command: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FrameduelError(f"{what} failed ({tail[0]}); check the network to the registry and run "
                             f"`{SETUP_COMMAND}` again")


def install_npm(force: bool = False) -> float:
    """npm ci into the cache from the committed lock file; returns the seconds it took (0 if already done)."""
    directory, digest = npm_dir(), npm_digest()
    if installed(directory, digest) and node_modules().is_dir() and not force:
        return 0.0
    npm = shutil.which("npm")
    if npm is None:
        raise FrameduelError("npm is not installed, and the browser runtimes come from npm; install it "
                             f"(Debian: apt-get install npm) and run `{SETUP_COMMAND}`")
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_FILES:
        (directory / name).write_text(package_text(name))
    # --ignore-scripts: no package runs code at install; the runtimes are plain JS and wasm files.
    run_step([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], directory, "npm ci")
    (directory / STAMP).write_text(digest)
    return time.perf_counter() - started


def install_converter(force: bool = False) -> float:
    """Create the converter's virtual environment; returns the seconds it took (0 if already done)."""
    directory, digest = converter_dir(), converter_digest()
    if installed(directory, digest) and Path(converter_command()[0]).is_file() and not force:
        return 0.0
    started = time.perf_counter()
    shutil.rmtree(directory, ignore_errors=True)
    run_step([sys.executable, "-m", "venv", str(directory)], cache_dir(), "creating the converter's venv")
    pip = [str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    resolved, pinned_alone = CONVERTER_REQUIREMENTS
    run_step([*pip, *resolved], directory, "installing the tfjs converter's TensorFlow")
    run_step([*pip, "--no-deps", *pinned_alone], directory, "installing the tfjs converter")
    run_step([*converter_command(), "--version"], directory, "checking the tfjs converter")
    (directory / STAMP).write_text(digest)
    return time.perf_counter() - started


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def setup_browser(force: bool = False, converter: bool = True) -> list[SetupStep]:
    """Install what is missing (the npm runtimes, and the converter unless told not to), idempotently;
    returns what each step took and occupies."""
    parts = [("npm runtimes", install_npm, node_modules())]
    if converter:
        parts.append(("tfjs converter", install_converter, converter_dir()))
    steps = []
    for name, install, path in parts:
        seconds = install(force)
        steps.append(SetupStep(name, seconds, tree_bytes(path), str(path)))
    return steps


def require_npm_packages() -> Path:
    """node_modules, or the one-line error naming the setup command."""
    if not installed(npm_dir(), npm_digest()) or not node_modules().is_dir():
        raise FrameduelError(f"the browser runtimes (TF.js, ONNX Runtime Web) are not installed in {npm_dir()}; "
                             f"run `{SETUP_COMMAND}`")
    return node_modules()


def require_converter() -> list[str]:
    """The command that runs the tfjs converter, or the one-line error naming the setup command."""
    if not installed(converter_dir(), converter_digest()) or not Path(converter_command()[0]).is_file():
        raise FrameduelError(f"the tfjs converter's environment is missing from {converter_dir()}; "
                             f"run `{SETUP_COMMAND}`")
    return converter_command()
