"""Configuration of a GRADIEND model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from transformers import PretrainedConfig

from .errors import GradiendError


GRADIENT_KINDS = ("factual", "alternative", "diff")
OBJECTIVES = ("masked_lm", "causal_lm")
ACTIVATIONS = ("tanh", "id", "relu", "leakyrelu", "gelu", "silu", "elu", "sigmoid", "hardtanh")


def parameter_fingerprint(names: Sequence[str], shapes: Sequence[Sequence[int]]) -> str:
    """Returns a short, stable hash of an ordered set of parameter names and shapes.

    Two GRADIENDs (or a GRADIEND and a base model) with the same fingerprint cover exactly the same parameters in
    the same order, so their weights can be compared position by position.

    Args:
        names (`Sequence[str]`): Parameter names, in GRADIEND order.
        shapes (`Sequence[Sequence[int]]`): The shape of each parameter.

    Returns:
        `str`: 16 hexadecimal characters.
    """
    digest = hashlib.sha256()
    for name, shape in zip(names, shapes, strict=True):
        digest.update(f"{name}:{'x'.join(str(int(s)) for s in shape)};".encode())
    return digest.hexdigest()[:16]


def _numel(shape: Sequence[int]) -> int:
    numel = 1
    for size in shape:
        numel *= int(size)
    return numel


class GradiendConfig(PretrainedConfig):
    r"""
    Configuration of a [`GradiendModel`]: which base-model parameters it reads and writes, the size of its latent
    space, its activations, which gradients it is trained on, and the feature it encodes.

    A GRADIEND is an encoder `h = act_enc(W_e · g + b_e)` from a gradient `g` over the selected base parameters to a
    `latent_dim`-dimensional feature value, and a decoder `u(h) = act_dec(W_d · h + b_d)` back to a weight update in
    the shapes of those parameters.

    Args:
        base_model_name_or_path (`str`, *optional*):
            Hub id or local path of the base model whose gradients the GRADIEND reads.
        base_model_revision (`str`, *optional*):
            Revision (branch, tag or commit) of the base model on the Hub.
        param_names (`list[str]`, *optional*):
            Ordered names of the selected base-model parameters, as in `base_model.named_parameters()`.
        param_shapes (`list[list[int]]`, *optional*):
            The shape of each selected parameter.
        param_fingerprint (`str`, *optional*):
            Hash of names and shapes; computed when not given.
        latent_dim (`int`, *optional*, defaults to 1):
            Number of feature values the encoder produces.
        activation_encoder (`str`, *optional*, defaults to `"tanh"`):
            Activation of the encoder, one of `ACTIVATIONS`.
        activation_decoder (`str`, *optional*, defaults to `"id"`):
            Activation of the decoder, one of `ACTIVATIONS`.
        bias_decoder (`bool`, *optional*, defaults to `True`):
            Whether the decoder has a bias (one entry per base-parameter entry).
        source (`str`, *optional*, defaults to `"alternative"`):
            Gradient the encoder reads: `"factual"`, `"alternative"` or `"diff"` (factual minus alternative).
        target (`str`, *optional*, defaults to `"diff"`):
            Gradient the decoder reconstructs, same choices as `source`.
        objective (`str`, *optional*):
            How the base model is scored: `"masked_lm"` or `"causal_lm"` (next token after the text before the
            blank). Detected from the base model when not given.
        feature_classes (`list[str]`, *optional*):
            The two classes of the feature, e.g. `["M", "F"]`.
        positive_class (`str`, *optional*):
            The class the encoder maps to +1 (a gradient towards this class's words); the other class maps to -1.
            Defaults to the first feature class.
        base_model_config (`dict`, *optional*):
            A few facts about the base model (`model_type`, `architectures`) recorded for model cards and checks.
        kept_counts (`list[int]`, *optional*):
            Set on a pruned GRADIEND (see [`gradiend_hf.pruning`]): for each entry of `param_names`, how many of the
            parameter's entries the GRADIEND still reads and writes. A count below the parameter's size means the
            kept flat positions are stored as the int64 buffer `kept.<escaped name>` in the weights file; a
            parameter with nothing kept is dropped from `param_names`. `None` (default): every entry is covered.
        unpruned_param_names (`list[str]`, *optional*):
            For a pruned GRADIEND, the parameter selection it was pruned from. Global top-k indices and comparisons
            refer to this selection, so they agree before and after pruning.
        unpruned_param_shapes (`list[list[int]]`, *optional*):
            The shapes of `unpruned_param_names`.
        pruning (`dict`, *optional*):
            How the GRADIEND was pruned (`method`, `k`, `part`, …), recorded for model cards.
    """

    model_type = "gradiend"

    def __init__(
        self,
        base_model_name_or_path: str | None = None,
        base_model_revision: str | None = None,
        param_names: list[str] | None = None,
        param_shapes: list[list[int]] | None = None,
        param_fingerprint: str | None = None,
        latent_dim: int = 1,
        activation_encoder: str = "tanh",
        activation_decoder: str = "id",
        bias_decoder: bool = True,
        source: str = "alternative",
        target: str = "diff",
        objective: str | None = None,
        feature_classes: list[str] | None = None,
        positive_class: str | None = None,
        base_model_config: dict | None = None,
        kept_counts: list[int] | None = None,
        unpruned_param_names: list[str] | None = None,
        unpruned_param_shapes: list[list[int]] | None = None,
        pruning: dict | None = None,
        **kwargs,
    ):
        param_names = list(param_names or [])
        param_shapes = [list(int(s) for s in shape) for shape in (param_shapes or [])]
        if len(param_names) != len(param_shapes):
            raise GradiendError(
                f"`param_names` has {len(param_names)} entries but `param_shapes` has {len(param_shapes)}; "
                "give one shape per parameter name."
            )
        if len(set(param_names)) != len(param_names):
            raise GradiendError("`param_names` contains duplicates; every base parameter may be selected only once.")
        if latent_dim < 1:
            raise GradiendError(f"`latent_dim` must be at least 1, got {latent_dim}.")
        for name, value in (("activation_encoder", activation_encoder), ("activation_decoder", activation_decoder)):
            if value not in ACTIVATIONS:
                raise GradiendError(f"Unknown {name} {value!r}; choose one of {', '.join(ACTIVATIONS)}.")
        for name, value in (("source", source), ("target", target)):
            if value not in GRADIENT_KINDS:
                raise GradiendError(f"Unknown {name} gradient {value!r}; choose one of {', '.join(GRADIENT_KINDS)}.")
        if objective is not None and objective not in OBJECTIVES:
            raise GradiendError(f"Unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        feature_classes = list(feature_classes) if feature_classes else None
        if feature_classes is not None and (len(feature_classes) != 2 or feature_classes[0] == feature_classes[1]):
            raise GradiendError(f"`feature_classes` must name two different classes, got {feature_classes}.")
        if positive_class is not None and feature_classes is not None and positive_class not in feature_classes:
            raise GradiendError(
                f"`positive_class` {positive_class!r} is not one of the feature classes {feature_classes}."
            )

        self.base_model_name_or_path = base_model_name_or_path
        self.base_model_revision = base_model_revision
        self.param_names = param_names
        self.param_shapes = param_shapes
        fingerprint = parameter_fingerprint(param_names, param_shapes)
        if param_fingerprint is not None and param_fingerprint != fingerprint:
            raise GradiendError(
                "The stored parameter fingerprint does not match the parameter names and shapes of this config; "
                "the config file was edited or is corrupt. Re-save the GRADIEND from a model that loads."
            )
        self.param_fingerprint = fingerprint
        self.latent_dim = int(latent_dim)
        self.activation_encoder = activation_encoder
        self.activation_decoder = activation_decoder
        self.bias_decoder = bool(bias_decoder)
        self.source = source
        self.target = target
        self.objective = objective
        self.feature_classes = feature_classes
        self.positive_class = positive_class or (feature_classes[0] if feature_classes else None)
        self.base_model_config = dict(base_model_config or {})
        self._set_pruning(kept_counts, unpruned_param_names, unpruned_param_shapes, pruning)
        kwargs.pop("pruned", None)  # derived from `kept_counts`; stored in config.json for readers only
        super().__init__(**kwargs)

    def _set_pruning(self, kept_counts, unpruned_names, unpruned_shapes, pruning) -> None:
        if kept_counts is None:
            if unpruned_names is not None or unpruned_shapes is not None:
                raise GradiendError(
                    "`unpruned_param_names`/`unpruned_param_shapes` are only valid with `kept_counts`."
                )
            self.kept_counts = self.unpruned_param_names = self.unpruned_param_shapes = self.pruning = None
            self.pruned = False
            return
        kept_counts = [int(c) for c in kept_counts]
        if len(kept_counts) != len(self.param_names):
            raise GradiendError(
                f"`kept_counts` has {len(kept_counts)} entries but `param_names` has {len(self.param_names)}; give "
                "one count per covered parameter."
            )
        for name, shape, count in zip(self.param_names, self.param_shapes, kept_counts):
            numel = _numel(shape)
            if not 1 <= count <= numel:
                raise GradiendError(
                    f"`kept_counts` gives {count} kept entries for {name!r}, which has {numel}; a covered parameter "
                    "keeps between 1 and all of its entries (drop a parameter with none from `param_names`)."
                )
        unpruned_names = list(unpruned_names if unpruned_names is not None else self.param_names)
        unpruned_shapes = [
            [int(s) for s in shape]
            for shape in (unpruned_shapes if unpruned_shapes is not None else self.param_shapes)
        ]
        if len(unpruned_names) != len(unpruned_shapes):
            raise GradiendError("`unpruned_param_names` and `unpruned_param_shapes` must have the same length.")
        lookup = dict(zip(unpruned_names, unpruned_shapes))
        order = {name: i for i, name in enumerate(unpruned_names)}
        for name, shape in zip(self.param_names, self.param_shapes):
            if lookup.get(name) != shape:
                raise GradiendError(
                    f"Covered parameter {name!r} {shape} is not part of the unpruned selection with that shape; the "
                    "config was edited or is corrupt. Re-prune the GRADIEND from a model that loads."
                )
        positions = [order[name] for name in self.param_names]
        if positions != sorted(positions):
            raise GradiendError("`param_names` of a pruned GRADIEND must keep the order of `unpruned_param_names`.")
        self.kept_counts = kept_counts
        self.unpruned_param_names = unpruned_names
        self.unpruned_param_shapes = unpruned_shapes
        self.pruning = dict(pruning or {})
        self.pruned = True

    @property
    def selection_names(self) -> list[str]:
        """The parameter selection global indices refer to: `unpruned_param_names` if pruned, else `param_names`."""
        return self.unpruned_param_names if self.kept_counts is not None else self.param_names

    @property
    def selection_shapes(self) -> list[list[int]]:
        """The shapes of [`selection_names`]."""
        return self.unpruned_param_shapes if self.kept_counts is not None else self.param_shapes

    @property
    def selection_fingerprint(self) -> str:
        """Fingerprint of [`selection_names`]: equal for a GRADIEND and every GRADIEND pruned from it."""
        return parameter_fingerprint(self.selection_names, self.selection_shapes)

    @property
    def global_offsets(self) -> list[int]:
        """For each covered parameter, where its entries start in the flat concatenation of [`selection_names`]."""
        starts, total = {}, 0
        for name, shape in zip(self.selection_names, self.selection_shapes):
            starts[name] = total
            total += _numel(shape)
        return [starts[name] for name in self.param_names]

    @property
    def num_base_parameters(self) -> int:
        """Total number of base-model entries `n` the GRADIEND covers (its input size; the kept entries if pruned)."""
        if self.kept_counts is not None:
            return sum(self.kept_counts)
        return sum(_numel(shape) for shape in self.param_shapes)

    @property
    def encoding_directions(self) -> dict[str, int]:
        """Maps each feature class to the sign of the encoding of a gradient towards its words (+1 or -1)."""
        if not self.feature_classes:
            return {}
        return {name: (1 if name == self.positive_class else -1) for name in self.feature_classes}
