"""Which base-model parameters a GRADIEND covers.

By default a GRADIEND covers every parameter of the base model's backbone (`model.<base_model_prefix>`): all
embeddings, layers, norms and biases, but not the prediction head. Heads tied to the input embeddings (BERT's MLM
decoder, Llama's `lm_head` with `tie_word_embeddings`) are covered through the embedding they share.

Encoder-decoder models (T5, BART): the backbone is the shared token embedding, the encoder and the decoder (T5 has no
backbone attribute: its parameters but an untied LM head). `params="encoder"` or `params="decoder"` selects the
parameters only that stack uses (the shared embedding belongs to neither; name it, e.g. `"shared.weight"`, to add it).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .errors import GradiendError


class GradiendParameterError(GradiendError):
    """Raised when a parameter selection is empty or does not fit the base model."""


def backbone_prefix(model: nn.Module) -> str:
    """Returns the attribute name of the model's backbone (e.g. `"bert"`, `"transformer"`, `"model"`), or `""`.

    Args:
        model (`nn.Module`): A Hugging Face model with a head, e.g. `BertForMaskedLM`.

    Returns:
        `str`: The backbone's attribute name, or `""` when the model is itself a backbone.
    """
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and isinstance(getattr(model, prefix, None), nn.Module):
        return prefix
    return ""


STACKS = ("encoder", "decoder")
"""The named selections of an encoder-decoder model: the parameters only its encoder (or decoder) stack uses."""


def backbone_parameter_names(model: nn.Module) -> list[str]:
    """Names of the backbone's parameters, as they appear in `model.named_parameters()` (tied copies once).

    A model with a head but no backbone attribute (T5) keeps all its parameters but an output embedding of its own:
    that is the prediction head.
    """
    prefix = backbone_prefix(model)
    named = list(model.named_parameters())
    if prefix:
        return [name for name, _ in named if name.startswith(prefix + ".")]
    head = _own_output_embedding(model)
    return [name for name, param in named if param is not head]


def _own_output_embedding(model: nn.Module) -> nn.Parameter | None:
    """The output embedding's weight when it is not tied to the input embedding, else `None`."""
    try:
        output, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    weight = getattr(output, "weight", None)
    if weight is None or weight is getattr(inputs, "weight", None):
        return None
    return weight


def stack_parameter_names(model: nn.Module, stack: str) -> list[str]:
    """Backbone parameters that only the encoder (`stack="encoder"`) or only the decoder of an encoder-decoder model
    uses: the shared token embedding, which both stacks read, is in neither.

    Raises:
        GradiendParameterError: when the model is not an encoder-decoder model.
    """
    config = getattr(model, "config", None)
    if not getattr(config, "is_encoder_decoder", False):
        raise GradiendParameterError(
            f"`params={stack!r}` selects a stack of an encoder-decoder model (T5, BART); {type(model).__name__} is "
            "none. Pass parameter names or patterns instead."
        )
    modules = {"encoder": model.get_encoder(), "decoder": model.get_decoder()}
    own = {id(p) for p in modules[stack].parameters()}
    other = {id(p) for name, module in modules.items() if name != stack for p in module.parameters()}
    return [
        name
        for name in backbone_parameter_names(model)
        if id(model.get_parameter(name)) in own and id(model.get_parameter(name)) not in other
    ]


def select_parameters(model: nn.Module, params: str | Sequence[str] | None = None) -> list[str]:
    """Selects the base-model parameters a GRADIEND covers.

    Args:
        model (`nn.Module`):
            The base model.
        params (`str` or `Sequence[str]`, *optional*):
            Parameter names or `fnmatch` patterns (`*` matches any run of characters, including dots), e.g.
            `["*.layer.11.*"]` or `"model.layers.2*.mlp.*"`. Every match of every pattern is kept. Patterns are
            matched against all parameters of the model (head included). `None` selects the backbone; for an
            encoder-decoder model `"encoder"` or `"decoder"` selects the parameters only that stack uses (see
            [`stack_parameter_names`]).

    Returns:
        `list[str]`: The selected names in the order of `model.named_parameters()`.

    Raises:
        GradiendParameterError: when a pattern matches nothing or the selection is empty.
    """
    if params is None:
        selected = backbone_parameter_names(model)
        if not selected:
            raise GradiendParameterError(f"{type(model).__name__} has no parameters to select.")
        return selected
    if isinstance(params, str) and params in STACKS:
        return stack_parameter_names(model, params)
    patterns = [params] if isinstance(params, str) else list(params)
    if not patterns:
        raise GradiendParameterError(
            "`params` is empty; pass parameter names or patterns, or `None` for the backbone."
        )
    all_names = [name for name, _ in model.named_parameters()]
    chosen: set[str] = set()
    for pattern in patterns:
        matches = [name for name in all_names if name == pattern or fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            example = ", ".join(all_names[:3])
            raise GradiendParameterError(
                f"The parameter pattern {pattern!r} matches no parameter of {type(model).__name__}. "
                f"Names look like: {example}, … (see `model.named_parameters()`)."
            )
        chosen.update(matches)
    return [name for name in all_names if name in chosen]


def parameter_shapes(model: nn.Module, names: Iterable[str]) -> list[list[int]]:
    """The shapes of the named parameters of `model`."""
    return [list(model.get_parameter(name).shape) for name in names]


def get_parameters(model: nn.Module, names: Sequence[str]) -> list[torch.nn.Parameter]:
    """The named parameters of `model`, in order."""
    return [model.get_parameter(name) for name in names]


def check_parameters_match(model: nn.Module, names: Sequence[str], shapes: Sequence[Sequence[int]]) -> None:
    """Raises a clear error if `model` lacks one of the named parameters or has it with another shape.

    Args:
        model (`nn.Module`): The base model.
        names (`Sequence[str]`): Parameter names recorded in a GRADIEND.
        shapes (`Sequence[Sequence[int]]`): Their recorded shapes.

    Raises:
        GradiendParameterError: naming the first parameter that does not match.
    """
    own = dict(model.named_parameters())
    for name, shape in zip(names, shapes, strict=True):
        if name not in own:
            raise GradiendParameterError(
                f"This GRADIEND was trained on a base model with parameter {name!r}, which "
                f"{type(model).__name__} does not have. Load the base model it was trained on "
                "(see `gradiend.config.base_model_name_or_path`)."
            )
        if list(own[name].shape) != list(shape):
            raise GradiendParameterError(
                f"Parameter {name!r} has shape {list(own[name].shape)} in {type(model).__name__} but "
                f"{list(shape)} in the GRADIEND. Load the base model it was trained on "
                "(see `gradiend.config.base_model_name_or_path`)."
            )


class requires_grad_only:
    """Context manager that lets exactly the given parameters require gradients and restores the flags after.

    Autograd then builds the backward graph only for what the GRADIEND needs, and a frozen base model is left as
    it was found.

    Args:
        model (`nn.Module`): The base model.
        params (`Sequence[nn.Parameter]`): The parameters that must require gradients.
    """

    def __init__(self, model: nn.Module, params: Sequence[nn.Parameter]):
        self.model = model
        self.wanted = {id(p) for p in params}
        self.saved: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self):
        for param in self.model.parameters():
            self.saved.append((param, param.requires_grad))
            param.requires_grad_(id(param) in self.wanted)
        return self

    def __exit__(self, *exc):
        for param, flag in self.saved:
            param.requires_grad_(flag)
        self.saved.clear()
        return False
