"""Applying a GRADIEND's weight update to a base model: in place and reverted exactly, or to a copy.

`θ' = θ + lr · u(ff)` where `u(ff) = act_dec(W_d · ff + b_d)` is the decoder's output for feature value `ff`.
Trying many (ff, lr) pairs never copies the model: [`RewriteSession`] backs up the covered parameters once and
restores them bit for bit between grid points and at the end.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .errors import GradiendError, NonFiniteError
from .objectives import probe_inputs
from .params import check_parameters_match


PROBE_LENGTH = 8


def check_rewrite_numbers(feature_factor, learning_rate) -> None:
    """Refuses a feature factor or learning rate that is not a finite real number (before anything is rewritten).

    Raises:
        [`NonFiniteError`]: for `nan` or infinite values; [`GradiendError`] for values that are not numbers.
    """
    values = feature_factor.tolist() if isinstance(feature_factor, torch.Tensor) else feature_factor
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    for name, items in (("feature factor", values), ("learning rate", [learning_rate])):
        for value in items:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise GradiendError(f"The {name} must be a number, got {value!r}.")
            if not math.isfinite(float(value)):
                raise NonFiniteError(f"The {name} is {value}; give a finite number.")


@torch.no_grad()
def check_logits_finite(model: nn.Module, what: str = "The rewritten model") -> None:
    """Runs the model on a short probe input and raises [`NonFiniteError`] when its logits are `nan` or infinite."""
    config = getattr(model, "config", None)
    vocab = int(getattr(config, "vocab_size", 0) or 0) or 2
    device = next(model.parameters()).device
    ids = (torch.arange(PROBE_LENGTH, device=device) % max(vocab - 1, 1) + 1).unsqueeze(0)
    was_training = model.training
    model.eval()
    try:
        logits = model(**probe_inputs(model, ids)).logits
    finally:
        model.train(was_training)
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteError(
            f"{what} produces nan or infinite logits on a probe input: the update is far too large for this model. "
            "Use a smaller learning rate (the decoder evaluation's grid shows which ones keep the model working)."
        )


@torch.no_grad()
def check_rewrite_finite(
    gradiend, base_model: nn.Module, feature_factor, learning_rate, part: str = "decoder"
) -> None:
    """Refuses a rewrite whose numbers, new weights or probe logits are not finite, without changing `base_model`
    (the update is applied in place and reverted exactly)."""
    check_rewrite_numbers(feature_factor, learning_rate)
    with RewriteSession(base_model, gradiend) as session:
        session.apply(feature_factor, learning_rate, part=part)
        _check_weights_finite(base_model, gradiend.param_names)
        check_logits_finite(base_model)


def _check_weights_finite(model: nn.Module, names: Sequence[str]) -> None:
    for name in names:
        if not bool(torch.isfinite(model.get_parameter(name)).all()):
            raise NonFiniteError(
                f"The rewrite makes {name} nan or infinite: the update is far too large. Use a smaller learning rate."
            )


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

    Raises:
        [`NonFiniteError`]: when `feature_factor` or `learning_rate` is not finite, or the rewrite would make a
        weight or the logits on a probe input `nan` or infinite; `base_model` is then left unchanged.
    """
    check_rewrite_numbers(feature_factor, learning_rate)
    check_parameters_match(base_model, gradiend.param_names, gradiend.param_shapes)
    if inplace:
        # Backed up on the CPU so that a refused rewrite leaves the model exactly as it was.
        session = RewriteSession(base_model, gradiend, offload=True)
        session.apply(feature_factor, learning_rate, part=part)
        try:
            _check_weights_finite(base_model, gradiend.param_names)
            check_logits_finite(base_model)
        except NonFiniteError:
            session.restore()
            raise
        return base_model
    target = copy.deepcopy(base_model)
    for name, delta in gradiend.iter_update(feature_factor, learning_rate, part=part):
        add_update_(target, {name: delta})
    _check_weights_finite(target, gradiend.param_names)
    check_logits_finite(target)
    return target
