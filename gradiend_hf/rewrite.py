"""Applying a GRADIEND's weight update to a base model: in place and reverted exactly, or to a copy.

`θ' = θ + lr · u(ff)` where `u(ff) = act_dec(W_d · ff + b_d)` is the decoder's output for feature value `ff`.
Trying many (ff, lr) pairs never copies the model: [`RewriteSession`] backs up the covered parameters once and
restores them bit for bit between grid points and at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .params import check_parameters_match


@torch.no_grad()
def add_update_(base_model: nn.Module, update: Mapping[str, torch.Tensor], alpha: float = 1.0) -> None:
    """Adds `alpha · update` to the named parameters of `base_model`, in place.

    Tied parameters (e.g. input embeddings shared with an LM head) are one tensor, so both uses change together,
    exactly as the gradient the GRADIEND was trained on saw them.
    """
    for name, delta in update.items():
        param = base_model.get_parameter(name)
        param.add_(delta.to(device=param.device, dtype=param.dtype), alpha=alpha)


class RewriteSession:
    """Applies updates to a base model in place and restores it exactly, without copying the model.

    Only the parameters the GRADIEND covers are backed up (once); every [`apply`] first restores them, so grid
    points never accumulate, and [`restore`] (or leaving the `with` block) puts the original values back bit for bit.

    Args:
        base_model (`nn.Module`): The model to rewrite.
        gradiend ([`GradiendModel`]): The GRADIEND whose updates are applied.
        offload (`bool`, *optional*, defaults to `False`): Keep the backup on the CPU (saves accelerator memory).

    Example:

    ```python
    >>> with RewriteSession(base, gradiend) as session:
    ...     for lr in (1e-3, 1e-2):
    ...         session.apply(feature_factor=1.0, learning_rate=lr)
    ...         score(base)
    ```
    """

    def __init__(self, base_model: nn.Module, gradiend, offload: bool = False):
        gradiend.check_base_model(base_model)
        self.base_model = base_model
        self.gradiend = gradiend
        self.offload = offload
        self._backup: dict[str, torch.Tensor] | None = None
        self.current: tuple[float | Sequence[float], float, str] | None = None

    def __enter__(self) -> RewriteSession:
        self.backup()
        return self

    def __exit__(self, *exc) -> bool:
        self.restore()
        return False

    @torch.no_grad()
    def backup(self) -> None:
        if self._backup is None:
            self._backup = {
                name: self.base_model.get_parameter(name).detach().to("cpu" if self.offload else None, copy=True)
                for name in self.gradiend.param_names
            }

    @torch.no_grad()
    def apply(self, feature_factor: float | Sequence[float], learning_rate: float, part: str = "decoder") -> None:
        """Sets the covered parameters to `θ + learning_rate · u(feature_factor)` (θ = the backed-up values).

        The update is computed and written one parameter at a time: peak memory grows by the largest parameter, not
        by the `n` entries of the whole update.
        """
        self.backup()
        for name, delta in self.gradiend.iter_update(feature_factor, learning_rate, part=part):
            param = self.base_model.get_parameter(name)
            original = self._backup[name].to(param.device)
            torch.add(original, delta.to(device=param.device, dtype=param.dtype), out=param.data)
        self.current = (feature_factor, learning_rate, part)

    @torch.no_grad()
    def reset(self) -> None:
        """Puts the original values back exactly and keeps the backup for the next [`apply`]."""
        for name, value in self._backup.items():
            self.base_model.get_parameter(name).copy_(value)

    @torch.no_grad()
    def restore(self) -> None:
        """Puts the original values back exactly and drops the backup."""
        if self._backup is not None:
            self.reset()
            self._backup = None
        self.current = None


def rewrite(
    gradiend,
    base_model: nn.Module,
    feature_factor: float | Sequence[float],
    learning_rate: float,
    inplace: bool = False,
    part: str = "decoder",
) -> nn.Module:
    """Returns `base_model` rewritten with `learning_rate · u(feature_factor)`.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND.
        base_model (`nn.Module`): The model it was trained on.
        feature_factor (`float` or sequence of floats): Feature value fed to the decoder.
        learning_rate (`float`): Scale of the update.
        inplace (`bool`, *optional*, defaults to `False`): Change `base_model` itself instead of a copy.
        part (`str`, *optional*, defaults to `"decoder"`): See [`GradiendModel.update`].

    Returns:
        `nn.Module`: the rewritten model (`base_model` itself when `inplace=True`).
    """
    check_parameters_match(base_model, gradiend.param_names, gradiend.param_shapes)
    target = base_model if inplace else copy.deepcopy(base_model)
    for name, delta in gradiend.iter_update(feature_factor, learning_rate, part=part):
        add_update_(target, {name: delta})
    return target
