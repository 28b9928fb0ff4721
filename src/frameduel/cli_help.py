"""The help texts of the command line's options that do not fit on their option's line in cli.py (which keeps
every declaration: they are the parsing). Plain text: a pattern such as NAME[/versions/V] is not rich markup.
Named COMMAND_OPTION; the options several commands share have the option's name alone."""

from __future__ import annotations

from frameduel.accuracy.run import DEFAULT_MODES
from frameduel.export.manifest import BROWSER_FORMATS, EXECUTORCH_FORMATS, FORMATS
from frameduel.export.reference import DIGITS_SIZE

# --modes, one syntax in every command (spec.mode_items).
MODES_SYNTAX = "a bare mode applies to every framework that has it, FRAMEWORK=MODE pins one framework"
ONE_MODE_EACH = f"{MODES_SYNTAX}; each framework trains in one mode, the last that applies"

LORA_ALPHA = "LoRA alpha: the update is scaled by alpha / r, as PEFT does (Keras' own default, alpha = r, is not used)"
LORA_TARGETS = "comma-separated module names to adapt (default: q_proj,v_proj for llama, c_attn for gpt)"
FRAMEWORKS = ("comma-separated: torch, tf, keras-torch, keras-jax (the same Keras models as tf, on Keras' torch and "
              "JAX backends)")
EXECUTOR = ("where cells run: local (this machine) or ray (a Ray cluster: each machine one timing cell at a time; "
            "see --address)")
ADDRESS = ("with --executor ray: the cluster head's HOST:PORT (default: start a one-node Ray cluster on this machine "
           "for the run)")
CHECKPOINT = ("a Hugging Face model directory (config.json + model.safetensors): its config and weights replace the "
              "preset's (gpt2, llama, mistral)")

COMPARE_WORKLOADS = "comma-separated workloads (default: mlp,cnn, or the checkpoint's family)"
COMPARE_MODES = ("torch: eager,compile; tf: eager,function,xla; keras-torch: eager,compile; keras-jax: eager,jit "
                 f"(default all); {MODES_SYNTAX}, e.g. compile,tf=xla")
COMPARE_TASKS = ("train (fwd+bwd+optimizer step: a full fine-tune), infer, generate (KV cache), finetune (LoRA "
                 "adapters on the frozen model); default: all a workload supports")
COMPARE_PEAK = "add GEMM cells for the matmul peak (default: the full preset does)"
COMPARE_LAUNCH = ("how each cell's fresh worker process starts: fork (from a zygote that imported the framework "
                  "once) or spawn (a new interpreter)")
COMPARE_PARALLEL = ("timing cells at once, each on its own cores; they still share memory bandwidth and caches, so "
                    "every cell is flagged (default 1: one at a time)")
COMPARE_WORKERS = ("data-parallel worker counts of train cells, comma-separated (e.g. 1,2): torch DDP, TF "
                   "MultiWorkerMirroredStrategy; started by torchrun and TF_CONFIG here, by Ray Train across the "
                   "nodes with --executor ray")
COMPARE_SCALING = ("with --workers: strong (same global batch at every count), weak (same batch per worker), or "
                   "strong,weak")
COMPARE_BUDGET = ("time for the whole measuring, e.g. 90s, 5m, 1h: processes are added to the cells undecided "
                  "verdicts rest on until it is spent (default: the first rounds' time + 50%, +100% for full)")
COMPARE_NO_PARITY = ("skip the parity proof (float64, tiny) that runs before measuring, once per workload and "
                     "package versions")
COMPARE_RECHECK_PARITY = "prove parity again even where a proof with these package versions is stored"

REPORT_OUT = "folder for report.html, .md, .json (a sweep: sweep.html, .md, .json)"

PARITY_FRAMEWORKS = ("torch and what to hold to it: tf (both ways), keras-torch, keras-jax (Keras 3 on those "
                     "backends, from torch's weights)")
PARITY_TASKS = ("train (every weight trained), finetune (LoRA adapters on the frozen model); default: every one "
                "the workload has")
PARITY_LORA_ALPHA = "finetune: LoRA alpha (alpha / r != 1, so a scaling difference shows)"
PARITY_LORA_TARGETS = ("finetune: modules to adapt (default: every Linear LoRA may target, so each adapted path is "
                       "checked)")
PARITY_WORKERS = ("instead: prove N data-parallel workers (torch DDP, tf.distribute) train what one process does, "
                  "and the same as each other")

GENERATE_ADAPTER = ("a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) applied in "
                    "every framework, e.g. one `frameduel finetune` saved")
GENERATE_MODES = f"torch: eager,compile; tf: eager,function,xla (default all); {MODES_SYNTAX}"
FINETUNE_MODES = f"e.g. torch=compile,tf=xla (default: eager); {ONE_MODE_EACH}"

ACCURACY_MODES = ("e.g. torch=compile,tf=xla (default: "
                  + ",".join(f"{fw}={mode}" for fw, mode in DEFAULT_MODES.items()) + f"); {ONE_MODE_EACH}")

SWEEP_PARALLEL = "trials at once, each pinned to its own cores (default: one per core)"
SWEEP_MODES = f"e.g. torch=compile,tf=xla (default: torch eager, tf function); {ONE_MODE_EACH}"
SWEEP_EXECUTOR = ("where trials run: local (--parallel at a time) or ray (a Ray cluster: as many as its CPUs hold; "
                  "see --address)")
SWEEP_SEARCH = ("random: Ray Tune draws --samples trials per workload, framework and seed from the grid "
                "(lr=LOW..HIGH is log-uniform); needs --executor ray")
SWEEP_EARLY_STOP = "with --search: asha (Ray Tune's ASHA stops the worst trials after 2, 6, 18... epochs)"

SERVE_TOKEN = "require 'Authorization: Bearer TOKEN' (or set $FRAMEDUEL_SERVE_TOKEN)"
SERVE_GRPC_PORT = "also serve the v2 gRPC API (inference.GRPCInferenceService) on this port, same host"
SERVE_LLM = ("serve a language model instead: a Hugging Face checkpoint directory (with tokenizer.json) or gpt/llama, "
             "over an OpenAI-compatible API with continuous batching")
SERVE_LLM_MODE = "--llm: torch eager|compile, tf eager|function|xla (default: the framework's best serving mode)"
SERVE_LLM_MAX_RUNNING = "--llm: sequences at once (default: every slot; 1: one request at a time, no batching)"
LOADTEST_LLM = ("URL is an OpenAI-compatible LLM server (http://HOST:PORT): streaming requests, measured with vllm "
                "bench serve's TTFT, TPOT, ITL and E2EL; the --llm options below apply")

LOADTEST_URL = ("model URL: http://HOST:PORT/v2/models/NAME[/versions/V], or grpc://HOST:PORT/NAME[/versions/V] for "
                "the gRPC API")
LOADTEST_JSON_TENSORS = "JSON tensors instead of the binary extension (gRPC: typed contents instead of raw)"

EXPORT_WORKLOAD = "workload to export, e.g. mlp or cnn (default: the checkpoint's family)"
EXPORT_FORMATS = (f"comma-separated: {', '.join(FORMATS)} (browser formats {', '.join(BROWSER_FORMATS)}: run "
                  f"`frameduel browser setup`; ExecuTorch's {', '.join(EXECUTORCH_FORMATS)}: from torch, with the "
                  "edge extra)")
EXPORT_SIZE = (f"{DIGITS_SIZE} (trained on load_digits; the default where the workload has a digits model, else "
               "tiny), tiny, small, base (untrained)")

BROWSER_SETUP_CONVERTER = "also the tfjs converter's venv (1.9 GB; only `--formats tfjs` needs it)"
