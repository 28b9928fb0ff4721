"""Peak memory of loading an open-weight checkpoint into each framework: one copy of the weights, not two.

    .venv/bin/python benchmarks/checkpoint_memory.py            # GPT-2 small's shape, 124M parameters
    .venv/bin/python benchmarks/checkpoint_memory.py --quick    # a 4-layer, 30M-parameter variant

Builds a random checkpoint of the given shape with `transformers` (nothing downloaded), saves it as
safetensors, then runs `frameduel generate` (one prompt token, two new ones) per framework in eager
mode, from the checkpoint and from the tiny preset. The difference of the two peak RSS figures is
what the weights cost, printed as a multiple of the checkpoint's float32 size: about 1 means the model
holds one copy and the loader streams tensors through; 2 or more would mean a second full copy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from frameduel.runner.generate import GenerateRequest, run_generate
from frameduel.spec import RunSpec


def build_checkpoint(directory: Path, layers: int) -> int:
    """In a process of its own: Linux carries a parent's peak RSS at fork into its children's ru_maxrss,
    so the 0.5 GB model built here must not live in the process that starts the measured workers."""
    done = subprocess.run([sys.executable, __file__, "--build", str(directory), "--layers", str(layers)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def build_in_this_process(directory: Path, layers: int) -> int:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=layers, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def peak_rss_mb(framework: str, checkpoint: str | None) -> float:
    spec = RunSpec(workload="gpt", framework=framework, mode="eager", task="generate", batch_size=1, threads=2,
                   size="tiny", checkpoint=checkpoint)
    (result,) = run_generate(GenerateRequest((spec,), prompt=(1,), new_tokens=2))
    if result.status != "ok":
        raise SystemExit(f"{framework}: {result.error}")
    return result.peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 layers instead of 12")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # the checkpoint-building child
    parser.add_argument("--layers", type=int, default=12, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(build_in_this_process(args.build, args.layers))
        return
    with tempfile.TemporaryDirectory(prefix="frameduel-ckpt-memory-") as tmp:
        parameters = build_checkpoint(Path(tmp), layers=4 if args.quick else 12)
        weights_mb = parameters * 4 / 2**20
        print(f"checkpoint: GPT-2 shape, {parameters / 1e6:.1f}M parameters, {weights_mb:.0f} MB in float32")
        print(f"{'framework':<10} {'peak RSS, tiny preset':>22} {'peak RSS, checkpoint':>21} {'weights cost':>13} "
              f"{'x checkpoint':>13}")
        for framework in ("torch", "tf"):
            base, loaded = peak_rss_mb(framework, None), peak_rss_mb(framework, tmp)
            print(f"{framework:<10} {base:>19.0f} MB {loaded:>18.0f} MB {loaded - base:>10.0f} MB "
                  f"{(loaded - base) / weights_mb:>12.2f}x")


if __name__ == "__main__":
    main()
