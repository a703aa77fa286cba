"""The best-GRADIEND snapshot of a training run: checking that it is whole and this run's, and restoring it.

The trainer writes the GRADIEND of its best evaluation to `<output_dir>/best-gradiend` (`save_pretrained`, with
`snapshot.json` recording the step) and restores it at the end of training. Restoring copies the snapshot's tensors
into the trained GRADIEND one at a time: loading it as a second model would hold two GRADIENDs (3n + 1 weights each)
next to the optimizer's moments at the very end of training, the peak of the run (+1.0 GiB for full-model SmolLM2).
Every check is made before the first tensor is copied, so a snapshot that is refused leaves the model as it was.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from .configuration_gradiend import GradiendConfig
from .errors import GradiendTrainingError
from .loading import check_gradiend_folder
from .modeling_gradiend import GradiendModel


SNAPSHOT_NAME = "snapshot.json"

# Tensors read through one opening of a weights file: its memory map stays resident (and counted in the RSS) until
# the file is closed, so a large file is reopened every this many bytes.
_BYTES_PER_OPENING = 256 * 2**20


def _refused(directory: str, reason: object) -> GradiendTrainingError:
    return GradiendTrainingError(
        f"The best-GRADIEND snapshot {directory!r} is missing or corrupt ({reason}). Resume from another checkpoint, "
        "or train again with `select_best=False`."
    )


def _check_step(directory: str, step: int | None) -> None:
    with open(os.path.join(directory, SNAPSHOT_NAME), encoding="utf-8") as file:
        taken_at = json.load(file).get("global_step")
    if step is not None and taken_at != step:
        raise GradiendTrainingError(
            f"The best-GRADIEND snapshot {directory!r} was taken at step {taken_at}, but the run's best evaluation was "
            f"at step {step}; it belongs to another run. Resume from a checkpoint of this run, or train again."
        )


def read_snapshot(directory: str, step: int | None = None) -> GradiendModel:
    """Loads the best-GRADIEND snapshot in `directory` as a model, verifying that it is whole and (given `step`)
    taken then.

    Raises:
        [`GradiendTrainingError`]: the snapshot is missing, incomplete or from another step.
    """
    try:
        snapshot = GradiendModel.from_pretrained(directory)
        _check_step(directory, step)
    except GradiendTrainingError:
        raise
    except (OSError, ValueError) as error:
        raise _refused(directory, error) from None
    return snapshot


def _weight_files(directory: str) -> list[str]:
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as file:
            return sorted(set(json.load(file)["weight_map"].values()))
    return ["model.safetensors"]


def check_snapshot(model: nn.Module, directory: str, step: int | None = None) -> dict[str, list[str]]:
    """Verifies, without reading its weights, that the snapshot in `directory` is a whole save taken at `step` whose
    tensors are exactly `model`'s (same names and shapes).

    Args:
        model (`nn.Module`): The GRADIEND being trained.
        directory (`str`): The snapshot folder.
        step (`int`, *optional*): The step it must have been taken at.

    Returns:
        `dict[str, list[str]]`: weights file → the tensor names it holds.

    Raises:
        [`GradiendTrainingError`]: the snapshot is missing, incomplete, from another step or of other tensors.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found: dict[str, tuple[int, ...]] = {}
    files: dict[str, list[str]] = {}
    try:
        check_gradiend_folder(directory)
        _check_step(directory, step)
        for name in _weight_files(directory):
            with safe_open(os.path.join(directory, name), framework="pt") as file:  # reads the header only
                files[name] = list(file.keys())
                found.update({key: tuple(file.get_slice(key).get_shape()) for key in files[name]})
    except GradiendTrainingError:
        raise
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise _refused(directory, error) from None
    if found != expected:
        differing = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise _refused(directory, f"its tensors are not this GRADIEND's: {', '.join(differing[:3])}")
    return files


@torch.no_grad()
def restore_snapshot(model: nn.Module, directory: str, step: int | None = None) -> GradiendConfig:
    """Copies the snapshot's weights into `model`, one tensor at a time, once [`check_snapshot`] accepted it.

    Args:
        model (`nn.Module`): The GRADIEND being trained (not sharded).
        directory (`str`): The snapshot folder.
        step (`int`, *optional*): The step it must have been taken at.

    Returns:
        [`GradiendConfig`]: the snapshot's config (its `positive_class` may differ from the model's).

    Raises:
        [`GradiendTrainingError`]: see [`check_snapshot`]; the model is then unchanged.
    """
    files = check_snapshot(model, directory, step)
    config = GradiendConfig.from_pretrained(directory)
    targets = model.state_dict()
    for name, keys in files.items():
        path = os.path.join(directory, name)
        while keys:
            read = 0
            with safe_open(path, framework="pt") as file:
                while keys and read < _BYTES_PER_OPENING:
                    key = keys.pop()
                    tensor = file.get_tensor(key)
                    targets[key].copy_(tensor)
                    read += tensor.numel() * tensor.element_size()
    return config
