"""Which objective a model, a config or a name stands for, and how long a row may be for it."""

from __future__ import annotations

from torch import nn
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from .base import MASK, Objective, ObjectiveError
from .causal_lm import CausalLMObjective
from .causal_lm_cloze import CausalLMClozeObjective
from .causal_lm_mlm_head import CausalLMMLMHeadObjective
from .masked_lm import MaskedLMObjective
from .seq2seq import Seq2SeqObjective


# Detection (`detect_objective`) names masked, causal and seq2seq LMs; the others are chosen by name
# (`causal_lm_mlm_head` needs a trained MLM head, see `gradiend_hf.mlm_head`).
OBJECTIVE_CLASSES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        MaskedLMObjective,
        CausalLMObjective,
        CausalLMClozeObjective,
        Seq2SeqObjective,
        CausalLMMLMHeadObjective,
    )
}
OBJECTIVES = tuple(OBJECTIVE_CLASSES)


def objective_class(name: str) -> type[Objective]:
    """The objective class of a name a GRADIEND's config records.

    Raises:
        ObjectiveError: for an unknown name.
    """
    if name not in OBJECTIVE_CLASSES:
        raise ObjectiveError(f"Unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}.")
    return OBJECTIVE_CLASSES[name]


def detect_objective(model: nn.Module) -> str:
    """Returns `"masked_lm"`, `"causal_lm"` or `"seq2seq_lm"` (T5, BART, …) for a Hugging Face language model.

    Raises:
        ObjectiveError: when the model is none of them (e.g. a bare backbone, or an encoder-decoder model that is
            not a text-to-text LM, such as a speech model).
    """
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "is_encoder_decoder", False):
        if name in set(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.values()):
            return "seq2seq_lm"
        raise ObjectiveError(
            f"{name} is an encoder-decoder model but not a text-to-text LM; load it with AutoModelForSeq2SeqLM "
            "(T5, BART, …) or pass `objective=` explicitly."
        )
    if name in set(MODEL_FOR_MASKED_LM_MAPPING_NAMES.values()) or name.endswith("ForMaskedLM"):
        return "masked_lm"
    if name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    raise ObjectiveError(
        f"Cannot tell whether {name} is a masked or a causal language model. Load it with AutoModelForMaskedLM or "
        "AutoModelForCausalLM, or pass `objective=` explicitly."
    )


def probe_inputs(model: nn.Module, ids):
    """Inputs that run `model` on the token ids `ids` (its family's [`Objective.probe_inputs`]; a model of no known
    family gets `input_ids` and `attention_mask`)."""
    try:
        family = objective_class(detect_objective(model))
    except ObjectiveError:
        family = Objective
    return family.probe_inputs(ids)


def objective_of_config(config) -> str:
    """`"masked_lm"`, `"causal_lm"` or `"seq2seq_lm"` from a model config (its architectures; causal when unsure)."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq_lm"
    architectures = getattr(config, "architectures", None) or []
    return "masked_lm" if any(a.endswith("ForMaskedLM") for a in architectures) else "causal_lm"


def get_objective(
    name_or_model: str | nn.Module,
    tokenizer,
    max_length: int | None = None,
    model: nn.Module | None = None,
    **options,
) -> Objective:
    """Returns the objective for a name (`"masked_lm"`, `"causal_lm"`, `"causal_lm_cloze"`, `"seq2seq_lm"`) or a
    model (detected).

    `max_length` defaults to what the model's position embeddings allow (of `name_or_model` or `model`), so a long
    text is windowed (masked and seq2seq LMs) or keeps its end (causal LM) instead of crashing the model. `options`
    are the objective's own (e.g. `right_window=` of `causal_lm_cloze`).

    Raises:
        ObjectiveError: for an unknown name, an option the objective does not have or an invalid option value.
    """
    model = model if model is not None else (None if isinstance(name_or_model, str) else name_or_model)
    name = name_or_model if isinstance(name_or_model, str) else detect_objective(name_or_model)
    cls = objective_class(name)
    options = cls.check_options(options)
    if max_length is None and model is not None:
        max_length = max_input_length(model, tokenizer)
    return cls(tokenizer, max_length, **options)


def check_objective_fits(name: str, model: nn.Module) -> None:
    """Raises a clear error when the objective `name` cannot score `model` (e.g. a causal objective for BERT).

    Raises:
        ObjectiveError: naming the objective, the model and the objectives that fit it.
    """
    detected = detect_objective(model)
    if objective_class(name).auto_class != objective_class(detected).auto_class:
        fitting = [n for n, c in OBJECTIVE_CLASSES.items() if c.auto_class == objective_class(detected).auto_class]
        raise ObjectiveError(
            f"The objective {name!r} cannot score {type(model).__name__} (a {detected} model); choose one of "
            f"{', '.join(fitting)}."
        )


def gradiend_objective(config, base_model: nn.Module, tokenizer, scoring: bool = False) -> Objective:
    """The objective a GRADIEND's config records (`objective`, `objective_options`) for its base model, detected
    when the config names none: what training, the encodings, the decoder grid and the LMS all use.

    Args:
        config ([`GradiendConfig`]): The GRADIEND's config.
        base_model (`nn.Module`): Its base model.
        tokenizer: The base model's tokenizer.
        scoring (`bool`, *optional*, defaults to `False`): For scoring rewrites (class probabilities, LMS): an
            objective that scores its label words only (`causal_lm_mlm_head`, whose head is not the model's) gives
            way to the base model's own family, as in the reference package.

    Raises:
        ObjectiveError: when the recorded objective does not fit the base model or its options are invalid.
    """
    name = getattr(config, "objective", None) or detect_objective(base_model)
    options = getattr(config, "objective_options", None) or {}
    if scoring and not objective_class(name).scores_any_word:
        name, options = detect_objective(base_model), {}
    check_objective_fits(name, base_model)
    return get_objective(name, tokenizer, model=base_model, **options)


def max_input_length(model: nn.Module, tokenizer) -> int | None:
    """The most tokens one row may have for `model`: its position embeddings, the tokenizer's limit, and 512."""
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not positions:
        return None
    model_max = getattr(tokenizer, "model_max_length", None) or 512
    # RoBERTa reserves padding_idx + 1 positions before the first token.
    reserved = (getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in ("roberta", "xlm-roberta") else 0
    return min(int(model_max), 512, int(positions) - reserved)


def is_single_token(tokenizer, word: str, objective: str = "causal_lm", context: str = "The word") -> bool:
    """Whether `word` is one token for `tokenizer` after `context` (with a space), as the objective would read it.

    Multi-token words are fine targets (see [`Objective`]); this tells which words cost one read only.
    """
    obj = get_objective(objective, tokenizer)
    # A causal LM reads only the text before the blank; a masked LM the whole sentence.
    text = f"{context} {MASK} ." if obj.reads_right_context else f"{context} {MASK}"
    try:
        return len(obj.word_tokens([text], [word])[0]) == 1
    except ObjectiveError:
        return False
