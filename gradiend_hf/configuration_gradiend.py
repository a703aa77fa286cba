"""Configuration of a GRADIEND model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

from .errors import GradiendError
from .objectives import OBJECTIVES, objective_class
from .selected_rewrite import SelectedRewrite


GRADIENT_KINDS = ("factual", "alternative", "diff")
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
            How the base model is scored: `"masked_lm"`, `"causal_lm"` (next token after the text before the
            blank), `"seq2seq_lm"` (T5, BART: the decoder writes the blank), `"causal_lm_cloze"` (the word in the
            blank; the loss also reads the text after it) or `"causal_lm_mlm_head"` (a decoder read through an
            auxiliary MLM head, chosen by giving the trainer that objective; see `mlm_head`). Detected from the base
            model (`masked_lm`, `causal_lm` or `seq2seq_lm`) when not given.
        objective_options (`dict`, *optional*):
            The objective's own options, e.g. `{"right_window": 2}` for `"causal_lm_cloze"` (tokens after the word
            in the loss, -1 for all); checked against the objective and recorded with every option it has.
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

    > Facts recorded after training and evaluation (saved in config.json; the cards and the app read them)

        class_words (`dict[str, list[str]]`, *optional*):
            The words of each feature class, as the training rows have them (lower-cased).
        examples (`list[str]`, *optional*):
            A few masked sentences of the test data, for the card and the app.
        selected_rewrite ([`SelectedRewrite`] or `dict`, *optional*):
            The rewrite a decoder evaluation chose.
        training_summary (`dict`, *optional*):
            The trainer's record: evaluation history, best step and correlation, class means, convergence.
        multi_seed (`dict`, *optional*):
            How [`train_multi_seed`] chose this run among several seeds.
        class_view (`dict`, *optional*):
            The view of a dataset with more classes the GRADIEND was trained on (`ClassView.to_dict()`, recorded by
            [`train_suite`]), so an evaluation over all of the dataset's transitions knows which are its own.
        mlm_head (`dict`, *optional*):
            For the objective `"causal_lm_mlm_head"`: the MLM head the gradients were read through
            (`name_or_path`, `revision`, `labels`, `pooling_length`, `mask_token`; see
            [`gradiend_hf.mlm_head.MLMHeadModel.record`]), so a loaded GRADIEND finds it again.
    """

    model_type = "gradiend"

    # The recorded facts, declared (and typed) at class level too: a config that never recorded one, or whose
    # attribute was deleted, reads `None`.
    class_words: dict[str, list[str]] | None = None
    examples: list[str] | None = None
    selected_rewrite: SelectedRewrite | None = None
    training_summary: dict | None = None
    multi_seed: dict | None = None
    class_view: dict | None = None
    mlm_head: dict | None = None

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
        objective_options: dict | None = None,
        feature_classes: list[str] | None = None,
        positive_class: str | None = None,
        base_model_config: dict | None = None,
        kept_counts: list[int] | None = None,
        unpruned_param_names: list[str] | None = None,
        unpruned_param_shapes: list[list[int]] | None = None,
        pruning: dict | None = None,
        class_words: dict[str, list[str]] | None = None,
        examples: list[str] | None = None,
        selected_rewrite: SelectedRewrite | dict | None = None,
        training_summary: dict | None = None,
        multi_seed: dict | None = None,
        class_view: dict | None = None,
        mlm_head: dict | None = None,
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
        if objective is None and objective_options:
            raise GradiendError("`objective_options` need an `objective` to belong to; name the objective too.")
        objective_options = objective_class(objective).check_options(objective_options) if objective else {}
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
        self.objective_options = objective_options or None
        self.feature_classes = feature_classes
        self.positive_class = positive_class or (feature_classes[0] if feature_classes else None)
        self.base_model_config = dict(base_model_config or {})
        self._set_pruning(kept_counts, unpruned_param_names, unpruned_param_shapes, pruning)
        self.class_words = {str(k): [str(w) for w in v] for k, v in class_words.items()} if class_words else None
        self.examples = [str(e) for e in examples] if examples else None
        self.selected_rewrite = SelectedRewrite.from_value(selected_rewrite)
        self.training_summary = dict(training_summary) if training_summary else None
        self.multi_seed = dict(multi_seed) if multi_seed else None
        self.class_view = dict(class_view) if class_view else None
        self.mlm_head = dict(mlm_head) if mlm_head else None
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

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "selected_rewrite":
            value = SelectedRewrite.from_value(value)  # a mapping assigned to it becomes the dataclass
        super().__setattr__(name, value)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        if self.selected_rewrite is not None:
            output["selected_rewrite"] = self.selected_rewrite.to_dict()
        return output

    def record_evaluation(self, encoder_report=None, decoder_report=None, max_examples: int = 3) -> None:
        """Records what an evaluation knows and the cards and the app need later.

        - `class_words` (class → words of the evaluated class rows), when the config has none;
        - `examples` (up to `max_examples` masked test sentences), when the config has none;
        - `selected_rewrite`, from the decoder report's selection.

        Args:
            encoder_report ([`EncoderReport`], *optional*): Its `rows` give the words and the examples.
            decoder_report ([`DecoderReport`], *optional*): Its selection becomes `selected_rewrite`.
        """
        rows = encoder_report.rows if encoder_report is not None else None
        if rows is not None and len(rows):
            training = rows[rows["type"] == "training"]
            if not self.class_words:
                words: dict[str, dict[str, None]] = {name: {} for name in self.feature_classes or []}
                for word_column, class_column in (("factual", "factual_class"), ("alternative", "alternative_class")):
                    for word, name in zip(training[word_column], training[class_column]):
                        if name in words:
                            words[name][str(word)] = None
                if words and all(words.values()):
                    self.class_words = {name: list(found) for name, found in words.items()}
            if not self.examples:
                self.examples = list(dict.fromkeys(str(text) for text in training["text"]))[:max_examples] or None
        if decoder_report is not None and decoder_report.selected is not None:
            self.selected_rewrite = SelectedRewrite.from_report(decoder_report)

    # ------------------------------------------------------------------ sign rules

    def classes_and_positive(self) -> tuple[list[str], str]:
        """The two feature classes and the one the encoder maps to +1.

        Raises:
            [`GradiendError`]: when the config names no feature classes.
        """
        classes = list(self.feature_classes or [])
        if len(classes) != 2:
            raise GradiendError(
                "The GRADIEND's config names no feature classes. Set `gradiend.config.feature_classes = [A, B]` (and "
                "`positive_class`, the class whose words' gradients encode to +1) before evaluating it."
            )
        positive = self.positive_class or classes[0]
        if positive not in classes:
            raise GradiendError(f"`positive_class` {positive!r} is not one of the feature classes {classes}.")
        return classes, positive

    def encoding_direction(self, feature_class: str) -> int:
        """+1 for the positive class, -1 for the other one: the sign a gradient towards the class's words encodes to."""
        classes, positive = self.classes_and_positive()
        if feature_class not in classes:
            raise GradiendError(f"{feature_class!r} is not one of the GRADIEND's feature classes {classes}.")
        return 1 if feature_class == positive else -1

    def expected_encoding(self, factual_class: str, alternative_class: str) -> int:
        """The encoding a perfect GRADIEND gives a row: the direction of the class of the word whose gradient it reads.

        With `source="alternative"` the encoder reads the alternative word's gradient, so the sign is that of the
        alternative class; with `"factual"`/`"diff"` it is the factual class's. Identity rows (both words of one
        class) and rows outside the two feature classes expect 0.
        """
        if factual_class == alternative_class:
            return 0
        classes, _ = self.classes_and_positive()
        name = alternative_class if self.source == "alternative" else factual_class
        return self.encoding_direction(name) if name in classes else 0

    def feature_factor_for(self, target_class: str, strengthen: bool = True) -> float:
        """The feature factor whose decoded update strengthens (or, with `strengthen=False`, weakens) `target_class`.

        The decoder learns `dec(h) ≈` the target gradient of rows whose source encodes to `h`, so adding `lr · dec(ff)`
        moves the model like a descent step on the loss of the class that `ff` stands for (method.md §4.1).

        Returns:
            `float`: +1.0 or -1.0.
        """
        source_sign = 1 if self.source == "alternative" else -1
        target_sign = -1 if self.target == "alternative" else 1
        factor = self.encoding_direction(target_class) * source_sign * target_sign
        return float(factor if strengthen else -factor)

    def reading_words(self, word: str, other_word: str) -> tuple[str, str]:
        """`(factual, alternative)` of a row whose source gradient is the gradient of filling the blank with `word`.

        The encoder reads the alternative word's gradient when `source="alternative"` and the factual word's (for
        `"diff"`: factual minus alternative) otherwise, so this row encodes to the direction of `word`'s class.
        """
        return (other_word, word) if self.source == "alternative" else (word, other_word)

    # ------------------------------------------------------------------ pruning

    def pruned_copy(self, names: Sequence[str], counts: Sequence[int], record: dict[str, Any]) -> GradiendConfig:
        """A copy of this config covering `names` with `counts` kept entries each, pruned from this selection.

        Args:
            names (`Sequence[str]`): The parameters that keep entries, in GRADIEND order.
            counts (`Sequence[int]`): How many entries each keeps.
            record (`dict`): How it was pruned (`method`, `k`, `part`, …), for cards.
        """
        values = self.to_dict()
        shapes = dict(zip(self.param_names, self.param_shapes))
        for field in ("param_fingerprint", "pruned", "model_type", "transformers_version"):
            values.pop(field, None)
        values.update(
            param_names=list(names),
            param_shapes=[shapes[name] for name in names],
            kept_counts=[int(c) for c in counts],
            unpruned_param_names=list(self.selection_names),
            unpruned_param_shapes=[list(s) for s in self.selection_shapes],
            pruning=record,
        )
        return type(self)(**values)

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
