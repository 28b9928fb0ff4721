"""SavedModel -> TF.js graph model, by the tensorflowjs converter in its own virtual environment (setup.py).

Called from the TF export worker; it only starts a subprocess, so it imports no framework itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from frameduel.browser.setup import require_converter

CONVERTER_TIMEOUT_S = 600


def saved_model_to_tfjs(saved_model: Path, out_dir: Path, signature: str) -> None:
    """Write model.json and its weight shards into out_dir; a converter failure raises with its last line."""
    command = [*require_converter(), "--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
               f"--signature_name={signature}", "--saved_model_tags=serve", str(saved_model), str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CONVERTER_TIMEOUT_S)
    if done.returncode or not (out_dir / "model.json").is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(" ")]
        raise RuntimeError(f"tensorflowjs_converter failed: {(lines or ['no output'])[-1]}")
