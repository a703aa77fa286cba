"""Shard groups of a sharded GRADIEND (`shard_groups`): the grouping, its checks, and the grouped forward and backward
pass against the unsharded one (FSDP2 in one gloo process)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gradiend_hf import GradiendTrainingArguments
from gradiend_hf.errors import GradiendError
from gradiend_hf.shard_groups import canonical_name, layer_of, plan_shard_groups


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "grouped_forward.py"


def test_layer_of_names_the_covered_layer():
    assert layer_of("bert.encoder.layer.11.output.dense.weight") == "bert.encoder.layer.11"
    assert layer_of("model.layers.0.mlp.up_proj.weight") == "model.layers.0"
    assert layer_of("encoder.block.3.layer.1.DenseReluDense.wi.weight") == "encoder.block.3"
    assert layer_of("bert.embeddings.word_embeddings.weight") is None


def test_layer_groups_follow_the_layers_and_runs_outside_them():
    names = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.output.dense.bias",
        "bert.encoder.layer.1.attention.self.query.weight",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
    ]
    assert plan_shard_groups(names, [1] * 7, "layer") == [[0, 1], [2, 3], [4], [5, 6]]


def test_bucket_groups_pack_consecutive_parameters():
    names = [f"p{i}" for i in range(6)]
    # 5 + 5 fill a bucket of 10; 12 is larger than a bucket and alone; 3 + 3 + 4 fill the next.
    assert plan_shard_groups(names, [5, 5, 12, 3, 3, 4], "bucket", 10) == [[0, 1], [2], [3, 4, 5]]
    assert plan_shard_groups(names, [5, 5, 12, 3, 3, 4], "one") == [[0, 1, 2, 3, 4, 5]]


def test_canonical_name_strips_the_group():
    assert canonical_name("shard_groups.12.encoder.weight.a__b") == "encoder.weight.a__b"
    assert canonical_name("decoder.bias.a__b") == "decoder.bias.a__b"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard_groups": "layers"}, "Unknown shard_groups 'layers'.*layer, bucket, one"),
        ({"shard_bucket_size": 0}, "shard_bucket_size"),
        ({"shard_bucket_size": 2.5}, "shard_bucket_size"),
    ],
)
def test_bad_shard_group_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(GradiendError, match=match):
        GradiendTrainingArguments(str(tmp_path), report_to="none", **kwargs)


def test_plan_refuses_unknown_grouping_and_bad_bucket():
    with pytest.raises(GradiendError, match="Unknown shard grouping"):
        plan_shard_groups(["a"], [1], "module")
    with pytest.raises(GradiendError, match="positive number"):
        plan_shard_groups(["a"], [1], "bucket", 0)


@pytest.mark.parametrize(
    ("groups", "bucket_size", "latent_dim", "activation", "bias", "units"),
    [
        ("layer", 50_000_000, 1, "id", "1", 4),  # the fused reconstruction, two layers
        ("bucket", 3000, 2, "tanh", "0", None),  # autograd's reconstruction, several buckets per layer
    ],
)
def test_grouped_pass_equals_unsharded_pass(tmp_path, groups, bucket_size, latent_dim, activation, bias, units):
    out = tmp_path / "found.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MASTER_PORT": _free_port()}
    command = [sys.executable, str(SCRIPT), str(out), groups, str(bucket_size), str(latent_dim), activation, bias]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = load_file(out)
    count = int(found["units"][0])
    assert count == units if units is not None else count > 4
    # The same sums in the same order: the encodings and the loss are bit for bit the unsharded ones.
    assert torch.equal(found["grouped.encodings"], found["plain.encodings"])
    assert torch.equal(found["grouped.loss"], found["plain.loss"])
    grads = sorted(k[len("plain.grad.") :] for k in found if k.startswith("plain.grad."))
    assert grads == sorted(k[len("grouped.grad.") :] for k in found if k.startswith("grouped.grad."))
    assert any(k.startswith("encoder.weight.") for k in grads) and any(k.startswith("decoder.weight.") for k in grads)
    for key in grads:
        plain, grouped = found[f"plain.grad.{key}"], found[f"grouped.grad.{key}"]
        assert float(plain.abs().max()) > 0, key
        # The gradient of h is summed per group first, so the encoder's gradients may differ in the last bits.
        torch.testing.assert_close(grouped, plain, rtol=1e-5, atol=1e-6 * float(plain.abs().max()))


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])
