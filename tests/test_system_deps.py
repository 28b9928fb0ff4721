"""scripts/install-system-deps, run for real with the machine's state simulated: a PATH holding only the
tools each case needs (Chromium, npm, g++ and apt-get present or not; apt-get a stand-in that records what
it was asked and answers as apt does). So the tests pass whether or not this machine has Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-system-deps"
# What the script and the stand-ins run besides the tools it checks for.
UTILITIES = ("bash", "env", "id", "mktemp", "grep", "sed", "paste", "cat", "chmod")
CONFLICT = """The following packages have unmet dependencies:
 nodejs : Conflicts: npm
E: Unable to correct problems, you have held broken packages.
"""


def fake(bin_dir: Path, name: str, body: str = "exit 0") -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A bin folder with the utilities and nothing else; `id -u` says root, so apt-get is used directly."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in UTILITIES:
        os.symlink(shutil.which(name), bin_dir / name)
    (bin_dir / "id").unlink()
    fake(bin_dir, "id", "echo 0")
    return bin_dir


def apt_get(bin_dir: Path, install_body: str) -> Path:
    """A stand-in apt-get: `update` succeeds, `install` runs install_body; every call is logged."""
    calls = bin_dir.parent / "apt-calls"
    fake(bin_dir, "apt-get", f'echo "$*" >> {calls}\nif [ "$1" = update ]; then exit 0; fi\n{install_body}')
    return calls


def run(bin_dir: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), "TMPDIR": str(bin_dir.parent)}
    if ci:
        env["CI"] = "true"
    return subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_only_what_is_missing_is_installed(machine):
    fake(machine, "npm")
    fake(machine, "g++")  # NodeSource's nodejs brings npm: asking apt for npm too would make it refuse both
    calls = apt_get(machine, f'printf "#!/bin/bash\\n" > {machine}/chromium; chmod +x {machine}/chromium')
    done = run(machine, ci=True)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -q", "install -y -q chromium"]
    assert "installing chromium" in done.stdout and "installed chromium in" in done.stdout


def test_nothing_missing_installs_nothing(machine):
    for name in ("chromium", "npm", "g++"):
        fake(machine, name)
    calls = apt_get(machine, "exit 1")
    done = run(machine, ci=True)
    assert done.returncode == 0 and "are installed" in done.stdout
    assert not calls.exists()


def test_apt_refusing_fails_under_ci_with_its_own_error_line(machine):
    fake(machine, "g++")
    apt_get(machine, f"cat <<'EOF'\n{CONFLICT}EOF\nexit 100")
    done = run(machine, ci=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "apt-get install chromium npm failed" in done.stderr
    assert "nodejs : Conflicts: npm" in done.stderr and "E: Unable to correct problems" in done.stderr


def test_without_apt_ci_fails_in_one_line_naming_what_to_install(machine):
    done = run(machine, ci=True)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "error: apt-get is not available" in done.stderr
    assert "apt-get install chromium npm g++" in done.stderr


def test_without_apt_a_local_run_warns_and_goes_on(machine):
    done = run(machine, ci=False)
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1 and "warning:" in done.stderr and "skipped" in done.stderr


def test_the_readme_test_command_calls_the_script_and_ci_runs_exactly_that_command():
    root = SCRIPT.parents[1]
    readme = (root / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("scripts/install-system-deps && "))
    assert "|| true" not in command and ">/dev/null" not in command
    assert command in (root / ".ci" / "run").read_text().splitlines()
