"""Deliberate one-line deviations planted in one framework's model or training code, each of which
`frameduel parity` must catch and locate.

Each mutation is applied to a copy of the package in a temporary directory (never to the package
itself) that the CLI then runs from, through PYTHONPATH. `python -m tests.parity_mutations` prints
the table of what each one names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "frameduel"


@dataclass(frozen=True)
class Mutation:
    id: str
    kind: str  # what class of porting mistake it stands for
    workload: str
    direction: str  # which side loads the other's weights; the mutated side is the file's framework
    path: str  # file inside the package
    old: str  # occurs exactly once in that file
    new: str
    expect: str  # regex the first divergence's line must match: the right layer or tensor
    task: str = "train"  # the parity task that runs the mutated code: train, or finetune (LoRA)

    @property
    def side(self) -> str:
        return "torch" if "torch" in self.path else "tf"


MUTATIONS = [
    Mutation("relu6", "activation that differs only for large inputs", "mlp", "torch-to-tf",
             "workloads/mlp/model_tf.py", 'activation="relu", kernel_initializer',
             'activation="relu6", kernel_initializer',
             r"^layer body\.1 \(stressed\)"),
    Mutation("gelu-tanh", "activation approximation", "transformer", "tf-to-torch",
             "workloads/transformer/model_torch.py", 'nn.GELU(approximate="none")', 'nn.GELU(approximate="tanh")',
             r"^layer blocks\.0\.mlp\.proj \(eval\)"),
    Mutation("hard-sigmoid", "activation variant (recurrent gate)", "lstm", "torch-to-tf",
             "workloads/lstm/model_tf.py", 'recurrent_activation="sigmoid"', 'recurrent_activation="hard_sigmoid"',
             r"^layer head \(eval\)"),
    Mutation("bn-eps", "normalisation epsilon", "cnn", "tf-to-torch",
             "workloads/cnn/model_tf.py", "BN_EPS = 1e-5", "BN_EPS = 1e-3", r"^layer stem\.1 \(eval\)"),
    Mutation("bn-momentum", "normalisation running-statistics update", "cnn", "torch-to-tf",
             "workloads/cnn/model_torch.py", "BN_MOMENTUM = 0.1", "BN_MOMENTUM = 0.01",
             r"^state sgd-step1/weights/stem\.1\.running_mean"),
    Mutation("keras-bn-variance", "normalisation running statistics: Keras' biased variance update", "cnn",
             "torch-to-tf", "workloads/cnn/model_tf.py", "    return BatchNorm()\n",
             "    return keras.layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM)\n",
             r"^state sgd-step1/weights/stem\.1\.running_var"),
    Mutation("ln-eps", "normalisation epsilon (1e-5 vs 1e-6: hides under fp32 tolerances)", "transformer",
             "tf-to-torch", "workloads/transformer/model_tf.py", "LN_EPS = 1e-5", "LN_EPS = 1e-6",
             r"^layer blocks\.0\.ln_1 \(eval\)"),
    Mutation("attention-scale", "attention scaling", "transformer", "torch-to-tf",
             "workloads/transformer/model_tf.py", "/ math.sqrt(k.shape[-1])", "/ k.shape[-1]",
             r"^layer blocks\.0\.attn\.proj \(eval\)"),  # the first probe after the attention itself
    Mutation("causal-mask", "attention masking (one future token visible)", "gpt", "tf-to-torch",
             "workloads/gpt/model_torch.py", "torch.tril(torch.ones(size, size, dtype=torch.bool))",
             "torch.tril(torch.ones(size, size, dtype=torch.bool), diagonal=1)",
             r"^layer blocks\.0\.attn\.c_proj \(eval\)"),
    Mutation("positions-reversed", "positional handling", "gpt", "torch-to-tf",
             "workloads/gpt/model_tf.py", "self.wpe(positions)", "self.wpe(keras.ops.flip(positions, 0))",
             r"^layer wpe \(eval\)"),
    Mutation("gqa-tiled", "grouped-query attention: key/value heads tiled instead of repeated per group",
             "llama", "torch-to-tf", "workloads/llama/model_tf.py", "keras.ops.repeat(x, groups, axis=1)",
             "keras.ops.tile(x, (1, groups, 1, 1))", r"^layer model\.layers\.0\.self_attn\.o_proj \(eval\)"),
    Mutation("rope-interleaved", "rotary layout: Meta's interleaved pairs instead of Hugging Face's halves",
             "llama", "tf-to-torch", "workloads/llama/model_torch.py", "torch.cat((angles, angles), dim=-1)",
             "angles.repeat_interleave(2, dim=-1)", r"^layer model\.layers\.0\.self_attn\.o_proj \(eval\)"),
    Mutation("rms-eps-outside", "normalisation epsilon added outside the square root", "llama", "torch-to-tf",
             "workloads/llama/model_tf.py",
             "keras.ops.rsqrt(keras.ops.mean(keras.ops.square(full), axis=-1, keepdims=True) + self.eps)",
             "1.0 / (keras.ops.sqrt(keras.ops.mean(keras.ops.square(full), axis=-1, keepdims=True)) + self.eps)",
             r"^layer model\.layers\.0\.input_layernorm \(eval\)"),
    Mutation("stride2-padding", "weight/feature layout: Keras' asymmetric 'same' padding", "cnn", "tf-to-torch",
             "workloads/cnn/model_tf.py", "self.pad = keras.layers.ZeroPadding2D(1)",
             "self.pad = keras.layers.ZeroPadding2D(1 if stride == 1 else ((0, 1), (0, 1)))",
             r"^layer blocks\.1\.conv1 \(eval\)"),
    Mutation("conv-kernel-transposed", "weight layout: kernel height and width swapped on import", "cnn",
             "torch-to-tf", "workloads/weight_layouts.py", "lambda w: w.transpose(2, 3, 1, 0)",
             "lambda w: w.transpose(3, 2, 1, 0)", r"^layer stem\.0 \(eval\)"),
    Mutation("lstm-bias-gates", "weight layout: gate order of the summed LSTM bias", "lstm", "tf-to-torch",
             "workloads/weight_layouts.py", "lambda b_ih, b_hh: b_ih + b_hh)",
             "lambda b_ih, b_hh: np.roll(b_ih + b_hh, b_ih.size // 4))", r"^layer head \(stressed\)"),
    Mutation("adam-beta2", "optimizer hyperparameter (beta2)", "gpt", "torch-to-tf",
             "frameworks/keras_common.py", "beta_2=opt.beta2", "beta_2=0.99", r"^state adam-step1/slots/\S+/v "),
    Mutation("adam-beta1", "optimizer hyperparameter (beta1)", "mlp", "tf-to-torch",
             "frameworks/torch_backend.py", "betas=(opt.beta1, opt.beta2)", "betas=(0.8, opt.beta2)",
             r"^state adam-step1/slots/\S+/m "),
    Mutation("adam-epsilon", "optimizer epsilon (Keras' default 1e-7 in torch)", "lstm", "tf-to-torch",
             "frameworks/torch_backend.py", "eps=opt.epsilon)", "eps=1e-7)", r"^state adam-step1/weights/"),
    Mutation("sgd-learning-rate", "optimizer learning rate (0.1% off)", "mlp", "torch-to-tf",
             "frameworks/torch_backend.py", "torch.optim.SGD(params, lr=opt.learning_rate)",
             "torch.optim.SGD(params, lr=opt.learning_rate * 1.001)", r"^state sgd-step1/weights/"),
    Mutation("train-flag", "training flag: blocks run in inference mode while training", "cnn", "torch-to-tf",
             "workloads/cnn/model_tf.py", "x = block(x, training=training)", "x = block(x, training=False)",
             r"^layer blocks\.0\.bn1 \(train step\)"),
    Mutation("eval-while-training", "training flag: torch model left in eval mode", "cnn", "tf-to-torch",
             "frameworks/torch_backend.py", "    model.train()\n", "    model.eval()\n",
             r"^layer stem\.1 \(train step\)"),
    Mutation("dropout", "dropout left on in one framework", "transformer", "torch-to-tf",
             "workloads/transformer/model_torch.py", "return self.proj(self.gelu(self.fc(x)))",
             "return self.proj(torch.nn.functional.dropout(self.gelu(self.fc(x)), 0.1, self.training))",
             r"^layer blocks\.0\.mlp\.proj \(train step\)"),
    # LoRA (parity's finetune task, adapters on every Linear LoRA may target, alpha / r = 2).
    Mutation("keras-lora-alpha", "LoRA scaling: Keras' default alpha (= r) instead of PEFT's alpha", "llama",
             "torch-to-tf", "frameworks/tf_lora.py", "layer.enable_lora(settings.rank, lora_alpha=settings.alpha)",
             "layer.enable_lora(settings.rank)", r"^layer model\.layers\.0\.self_attn\.q_proj \(stressed\)",
             task="finetune"),
    Mutation("rslora", "LoRA scaling: rank-stabilised alpha / sqrt(r) in PEFT", "llama", "tf-to-torch",
             "frameworks/torch_lora.py", 'lora_dropout=0.0, bias="none")',
             'lora_dropout=0.0, bias="none", use_rslora=True)',
             r"^layer model\.layers\.0\.self_attn\.q_proj \(stressed\)", task="finetune"),
    Mutation("lora-dropout", "LoRA dropout left on in PEFT", "gpt", "tf-to-torch",
             "frameworks/torch_lora.py", 'lora_dropout=0.0, bias="none")', 'lora_dropout=0.1, bias="none")',
             r"^layer blocks\.0\.attn\.c_attn \(stressed train step\)", task="finetune"),  # B = 0 before
    # Keras on another backend: its step is Keras' own trainer, configured by keras_backend.py.
    Mutation("keras-loss-sum", "loss reduction: summed over the batch instead of averaged (Keras' trainer)",
             "transformer", "torch-to-keras-jax", "frameworks/keras_backend.py",
             "SparseCategoricalCrossentropy(from_logits=True, dtype=full_precision())",
             'SparseCategoricalCrossentropy(from_logits=True, dtype=full_precision(), reduction="sum")',
             # Keras' trainer is one traced step, no activations to compare: the first place a summed
             # loss shows is the gradient it scaled, in the weights after step 1.
             r"^state sgd-step1/weights/"),
    Mutation("lora-biases-trained", "LoRA base not frozen: Keras trains the biases (PEFT's bias='none' does not)",
             "gpt", "torch-to-tf", "frameworks/tf_lora.py", "        variable.trainable = False\n",
             '        variable.trainable = "bias" in variable.path\n', r"^parameters trainable", task="finetune"),
]


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    returncode: int
    first_divergence: str | None  # the line naming what parity found first
    error: str | None  # a side that could not run (a crash, not a finding)
    detail: str

    @property
    def caught(self) -> bool:
        return self.returncode == 1 and bool(self.first_divergence or self.error)

    @property
    def located(self) -> bool:
        return bool(self.first_divergence and re.search(self.mutation.expect, self.first_divergence))


def mutated_copy(mutation: Mutation, root: Path) -> Path:
    """A copy of the package with the one line replaced; returns the folder to put on PYTHONPATH."""
    target = root / "src" / "frameduel"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    path = target / mutation.path
    text = path.read_text()
    if text.count(mutation.old) != 1:
        raise AssertionError(f"{mutation.id}: '{mutation.old}' occurs {text.count(mutation.old)} times in {path}")
    path.write_text(text.replace(mutation.old, mutation.new))
    return root / "src"


def run_mutation(mutation: Mutation) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"frameduel-mutation-{mutation.id}-") as tmp:
        src = mutated_copy(mutation, Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(src), "FRAMEDUEL_DB": str(Path(tmp) / "results.sqlite")}
        source, _, target = mutation.direction.partition("-to-")
        chosen = ["--direction", mutation.direction] if target in ("torch", "tf") else \
            ["--frameworks", f"{source},{target}"]  # Keras on torch or JAX: held to torch, one direction
        command = [sys.executable, "-m", "frameduel.cli", "parity", mutation.workload, *chosen,
                   "--tasks", mutation.task, "--no-modes", "--json"]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp)
    try:
        report = json.loads(done.stdout)["directions"][0]
    except (ValueError, KeyError, IndexError):
        return Outcome(mutation, done.returncode, None, None, (done.stdout + done.stderr)[-2000:])
    first = report["first_divergence"]
    return Outcome(mutation, done.returncode, first["line"] if first else None, report["error"],
                   done.stderr[-500:])


def run_mutations(mutations: list[Mutation] = MUTATIONS) -> dict[str, Outcome]:
    """Two at a time: each run is two single-threaded framework processes."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {outcome.mutation.id: outcome for outcome in pool.map(run_mutation, mutations)}


def markdown_table(outcomes: dict[str, Outcome]) -> str:
    lines = ["| mutation | kind | workload | side (direction) | caught | first divergence named |",
             "|---|---|---|---|---|---|"]
    for outcome in outcomes.values():
        m = outcome.mutation
        named = outcome.first_divergence or outcome.error or "-"
        lines.append(f"| {m.id}: `{m.new.strip()}` | {m.kind} | {m.workload} | {m.side} ({m.direction}) | "
                     f"{'yes' if outcome.caught else 'NO'} | {named} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table(run_mutations()))
