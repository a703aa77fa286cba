"""Runs one forward and backward pass of a tiny GRADIEND split into FSDP2 shard groups (one gloo process) and of an
unsharded copy; for `tests/test_shard_groups.py`.

Usage: python grouped_forward.py OUTPUT_FILE GROUPS BUCKET_SIZE LATENT_DIM ACTIVATION_DECODER BIAS_DECODER

Writes OUTPUT_FILE (safetensors): `grouped.<x>` and `plain.<x>` for the encodings, the loss and the gradient of every
tensor (under the GRADIEND's own names, gathered), and `units` (the number of FSDP2 units below the root).
"""

import copy
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.fsdp import FSDPModule


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.shard_groups import canonical_name  # noqa: E402
from gradiend_hf.sharding import shard_gradiend  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402


def full(tensor):
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone().contiguous()


def main():
    output, groups, bucket_size, latent_dim, activation, bias = sys.argv[1:]
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(
        tiny_model("bert")[0],
        params=["*.layer.*"],
        latent_dim=int(latent_dim),
        activation_decoder=activation,
        bias_decoder=bias == "1",
    )
    plain = copy.deepcopy(gradiend)
    shard_gradiend(gradiend, torch.device("cpu"), groups, int(bucket_size))
    sources = {n: torch.randn(3, *s) for n, s in zip(gradiend.param_names, gradiend.param_shapes)}
    targets = {n: torch.randn(3, *s) for n, s in zip(gradiend.param_names, gradiend.param_shapes)}
    found = {}
    for label, model in (("grouped", gradiend), ("plain", plain)):
        out = model(source_gradients=sources, target_gradients=targets)
        out.loss.backward()
        found[f"{label}.encodings"] = out.encodings.detach()
        found[f"{label}.loss"] = out.loss.detach().reshape(1)
        for name, param in model.named_parameters():
            found[f"{label}.grad.{canonical_name(name)}"] = full(param.grad)
    units = [m for m in gradiend.modules() if isinstance(m, FSDPModule) and m is not gradiend]
    found["units"] = torch.tensor([len(units)])
    save_file(found, output)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    main()
