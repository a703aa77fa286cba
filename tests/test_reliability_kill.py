"""A process saving GRADIENDs is killed with SIGKILL at random moments: the folder always holds one whole save (or,
for the in-place fallback, refuses to load with a clear error), and the next save leaves no staging behind."""

import os
import random
import signal
import threading
import time

import pytest
import torch
from tqdm.auto import tqdm

from gradiend_hf import GradiendModel
from gradiend_hf.errors import GradiendLoadError

from .tiny_models import tiny_model


KILLS = 32

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(scope="module")
def two_gradiends():
    model, _ = tiny_model("llama", hidden=64)
    torch.manual_seed(0)
    wide = GradiendModel.from_base_model(model, params=["model.layers.*"])
    torch.manual_seed(1)
    narrow = GradiendModel.from_base_model(model, params=["model.layers.1.mlp.*"])
    return wide, narrow


def which(folder, candidates) -> int:
    loaded = GradiendModel.from_pretrained(folder)
    for index, candidate in enumerate(candidates):
        if loaded.param_names == candidate.param_names:
            state = loaded.state_dict()
            assert all(torch.equal(state[k], v) for k, v in candidate.state_dict().items()), (
                "config of one save, weights of another"
            )
            return index
    raise AssertionError(f"{folder} loads as neither save")


def leftovers(parent) -> list[str]:
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(parent)
        for name in dirs + files
        if "gradiend-tmp" in name or name == ".gradiend-staging"
    ]


def saver(folder, gradiends, in_place: bool) -> None:
    """The child: saves the two GRADIENDs in turn, shards and all, until it is killed."""
    # tqdm's default lock is a process-shared semaphore inherited through fork: a child killed while holding it would
    # block the parent's next progress bar forever. A lock of the child's own cannot.
    tqdm.set_lock(threading.RLock())
    if in_place:
        import gradiend_hf.io as io

        io._can_swap = lambda target: False
    try:
        while True:
            for gradiend, shard in zip(gradiends, ("20KB", "5GB")):
                gradiend.save_pretrained(folder, max_shard_size=shard)
    finally:
        os._exit(0)


@pytest.mark.parametrize("in_place", [False, True], ids=["swap", "in-place"])
def test_random_kills_leave_one_whole_save(in_place, two_gradiends, tmp_path):
    folder = tmp_path / "g"
    two_gradiends[0].save_pretrained(folder)
    (folder / "model-backup.safetensors").write_bytes(b"the user's")
    rng = random.Random(1234)
    outcomes = {0: 0, 1: 0, "refused": 0}
    for _ in range(KILLS):
        pid = os.fork()
        if pid == 0:
            saver(folder, two_gradiends, in_place)
        time.sleep(rng.uniform(0.005, 0.25))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        try:
            outcomes[which(folder, two_gradiends)] += 1
        except GradiendLoadError as error:
            assert in_place and "interrupted save" in str(error), error
            outcomes["refused"] += 1
        two_gradiends[rng.randrange(2)].save_pretrained(folder)  # the next save cleans up
        assert leftovers(tmp_path) == []
        assert (folder / "model-backup.safetensors").read_bytes() == b"the user's"
    # The kills hit the loop at different points: both saves were seen whole after a kill.
    assert outcomes[0] > 0 and outcomes[1] > 0, outcomes
