"""Which objective a model, a config or a name stands for, and how long a row may be for it."""

from __future__ import annotations

from torch import nn
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from .base import MASK, Objective, ObjectiveError
from .causal_lm import CausalLMObjective
from .causal_lm_mlm_head import CausalLMMLMHeadObjective
from .masked_lm import MaskedLMObjective


# `causal_lm_mlm_head` is chosen, never detected: it needs a trained MLM head (see `gradiend_hf.mlm_head`).
OBJECTIVE_CLASSES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (MaskedLMObjective, CausalLMObjective, CausalLMMLMHeadObjective)
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
    """Returns `"masked_lm"` or `"causal_lm"` for a Hugging Face language model.

    Raises:
        ObjectiveError: when the model is neither (e.g. a bare backbone or a seq2seq model).
    """
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "is_encoder_decoder", False):
        raise ObjectiveError(f"{name} is an encoder-decoder model; gradiend-hf supports masked and causal LMs.")
    if name in set(MODEL_FOR_MASKED_LM_MAPPING_NAMES.values()) or name.endswith("ForMaskedLM"):
        return "masked_lm"
    if name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    raise ObjectiveError(
        f"Cannot tell whether {name} is a masked or a causal language model. Load it with AutoModelForMaskedLM or "
        "AutoModelForCausalLM, or pass `objective=` explicitly."
    )


def objective_of_config(config) -> str:
    """`"masked_lm"` or `"causal_lm"` from a model config's architectures (causal when unsure)."""
    architectures = getattr(config, "architectures", None) or []
    return "masked_lm" if any(a.endswith("ForMaskedLM") for a in architectures) else "causal_lm"


def get_objective(
    name_or_model: str | nn.Module, tokenizer, max_length: int | None = None, model: nn.Module | None = None
) -> Objective:
    """Returns the objective for `"masked_lm"`, `"causal_lm"` or a model (detected).

    `max_length` defaults to what the model's position embeddings allow (of `name_or_model` or `model`), so a long
    text is windowed (masked LM) or keeps its end (causal LM) instead of crashing the model.
    """
    model = model if model is not None else (None if isinstance(name_or_model, str) else name_or_model)
    name = name_or_model if isinstance(name_or_model, str) else detect_objective(name_or_model)
    if max_length is None and model is not None:
        max_length = max_input_length(model, tokenizer)
    return objective_class(name)(tokenizer, max_length)


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
