"""Sharded GRADIEND training (`shard_gradiend=True`, torch FSDP2) with two gloo processes on the CPU."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.errors import GradiendError
from tests.tiny_models import tiny_model


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "train_sharded.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def free_port() -> str:
    # Port 0 is not passed on to the workers by torchrun's static rendezvous: they would wait forever.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


# (shard_groups of the run, shard_groups of the run resumed from its checkpoint, shard_bucket_size): per-layer groups
# (the default), and buckets of 3,000 covered entries (several per layer) resumed as the whole GRADIEND in one group;
# checkpoints name tensors the GRADIEND's own way, so a run resumes under another grouping. (Each setting is two
# 2-process runs, a minute on two cores; the single group as the first grouping was checked when it was written.)
GROUPINGS = [("layer", "layer", 50_000_000), ("bucket", "one", 3000)]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One unsharded process with two groups per step."""
    root = tmp_path_factory.mktemp("single")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(root / "one"), "2", "0"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "one"


@pytest.fixture(scope="module", params=GROUPINGS, ids=lambda g: f"{g[0]}-then-{g[1]}")
def runs(request, tmp_path_factory):
    """Two sharded processes with one group each (plus a sharded run resumed from its checkpoint)."""
    groups, resume_groups, bucket_size = request.param
    root = tmp_path_factory.mktemp("sharding")
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            free_port(),
            str(SCRIPT),
            str(root / "two"),
            "1",
            "1",
            groups,
            resume_groups,
            str(bucket_size),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # gloo sometimes aborts at interpreter exit after all work is done (environment.md); the saved files decide.
    assert (root / "two" / "resumed" / "model.safetensors").exists(), double.stderr[-3000:]
    found = re.findall(r"sharded world_size=2 dtensor=DTensor units=(\d+) most_gathered=(\d+)", double.stdout)
    assert len(found) == 2, double.stdout[-3000:]
    summary = GradiendModel.from_pretrained(root / "two" / "run").config.training_summary
    assert (summary["processes"], summary["sharded"]) == (2, True)
    return root / "two", groups, [(int(units), int(most)) for units, most in found]


def test_shard_groups_gather_one_unit_at_a_time(runs):
    _, groups, found = runs
    for units, most in found:
        if groups == "one":
            assert (units, most) == (0, 0)  # only the root unit: the whole GRADIEND
        else:
            # An encoder and a decoder unit per group: two layers, or several buckets of 3,000 entries per layer.
            assert units == 4 if groups == "layer" else units > 4
            assert most == 1  # a unit's forward starts with only its own weights gathered


def _shards(folder, name):
    return [load_file(folder / "shards" / f"{name}rank{rank}.safetensors") for rank in (0, 1)]


def test_sharded_run_equals_unsharded_run(single, runs):
    one, two = (
        load_file(single / "run" / "model.safetensors"),
        load_file(runs[0] / "run" / "model.safetensors"),
    )
    assert one.keys() == two.keys()
    scale = max(float(v.abs().max()) for v in one.values())
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6 * scale)
    initial = GradiendModel.from_base_model(tiny_model("bert")[0], params=["*.layer.*"])
    assert any(not torch.equal(one[k], v) for k, v in initial.state_dict().items())  # training moved it


def test_saved_folder_loads_as_the_processes_held_it(runs):
    """The whole GRADIEND loaded on one process is, bit for bit, the two processes' shards put together."""
    loaded = GradiendModel.from_pretrained(runs[0] / "run").state_dict()
    rank0, rank1 = _shards(runs[0] / "run", "")
    assert loaded.keys() == rank0.keys()
    for key, value in loaded.items():
        # Split along the longer dimension: the (latent, numel) encoder weights along dim 1, all else along dim 0.
        dim = 1 if key.startswith("encoder.weight.") else 0
        assert rank0[key].shape[dim] < value.shape[dim] or value.shape[dim] == 1, f"{key} was not split"
        assert torch.equal(torch.cat([rank0[key], rank1[key]], dim=dim), value), key


def test_resumed_sharded_run_equals_uninterrupted(runs):
    uninterrupted = load_file(runs[0] / "run" / "model.safetensors")
    resumed = load_file(runs[0] / "resumed" / "model.safetensors")
    assert (runs[0] / "run" / "checkpoint-2" / "optimizer.pt").is_file()
    scale = max(float(v.abs().max()) for v in uninterrupted.values())
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-7 * scale)


def test_sign_flip_negates_shards_and_their_moments(runs):
    for shard in _shards(runs[0] / "run", "flip-"):
        keys = [k[len("before.") :] for k in shard if k.startswith("before.")]
        assert keys
        for key in keys:
            kept = key.startswith("decoder.bias.")  # the decoder bias keeps its sign (reconstructions unchanged)
            for prefix in ("", "_m"):
                before, after = shard[f"before{prefix}.{key}"], shard[f"after{prefix}.{key}"]
                assert torch.equal(after, before if kept else -before), (prefix, key)
        # The moments are real Adam state (a one-entry tensor leaves the second process an empty shard).
        assert any(float(shard[f"before_m.{key}"].abs().sum()) > 0 for key in keys)


def test_shard_gradiend_refused_in_one_process(tmp_path):
    model, tokenizer = tiny_model("bert")
    gradiend = GradiendModel.from_base_model(model, params=["*.layer.1.output.dense.*"])
    args = GradiendTrainingArguments(
        str(tmp_path), max_steps=1, shard_gradiend=True, use_cpu=True, report_to="none", disable_tqdm=True
    )
    with pytest.raises(GradiendError, match="has one.*torchrun"):
        GradiendTrainer(
            model=gradiend,
            base_model=model,
            processing_class=tokenizer,
            args=args,
            train_dataset=load_builtin("gender-en"),
        )


def test_cli_trains_and_saves_sharded_under_accelerate_launch(tmp_path):
    model, tokenizer = tiny_model("bert")
    model.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    config = {
        "base_model": str(tmp_path / "bert"),
        "dataset": "gender-en",
        "output_dir": str(tmp_path / "out"),
        "params": ["*.layer.1.output.*"],
        "max_steps": 4,
        "eval_steps": 2,
        "eval_max_rows": 16,
        "learning_rate": 1e-3,
        "sentences_per_gradient": 4,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "shard_gradiend": True,
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    launch += [str(ROOT / "examples" / "accelerate" / "sharded_cpu.yaml"), "--main_process_port", free_port()]
    result = subprocess.run(
        [*launch, "-m", "gradiend_hf.cli.train", str(tmp_path / "train.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        cwd=ROOT,
    )
    assert (tmp_path / "out" / "config.json").exists(), result.stderr[-3000:]
    assert result.stdout.count("Saved the GRADIEND") == 1  # only the main process writes
    saved = GradiendModel.from_pretrained(tmp_path / "out")
    summary = saved.config.training_summary
    assert (summary["global_step"], summary["processes"], summary["sharded"]) == (4, 2, True)
