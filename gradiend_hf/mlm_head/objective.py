"""The `causal_lm_mlm_head` objective of a head (an object, folder or Hub id) or of a GRADIEND trained through one."""

from __future__ import annotations

import os

from torch import nn

from ..errors import GradiendLoadError
from ..objectives import CausalLMMLMHeadObjective, Objective, ObjectiveError, get_objective, max_input_length
from ..objectives.causal_lm_mlm_head import padding_index
from .modeling import MLMHeadModel


def mlm_head_objective(
    head: MLMHeadModel | str | os.PathLike,
    tokenizer,
    base_model: nn.Module | None = None,
    max_length: int | None = None,
    **load_kwargs,
) -> CausalLMMLMHeadObjective:
    """The objective that reads a decoder through `head`, for [`GradiendTrainer`]`(objective=...)`, the encoder
    evaluation and `encode_texts`.

    Args:
        head ([`MLMHeadModel`], `str` or `os.PathLike`): The head, or where it is saved (folder or Hub id).
        tokenizer: The decoder's fast tokenizer.
        base_model (`nn.Module`, *optional*): The decoder; its position embeddings bound the row length.
        max_length (`int`, *optional*): The most tokens a row may have.
        load_kwargs: For `MLMHeadModel.from_pretrained` (`revision`, `token`, …) when `head` is a location.

    Returns:
        [`CausalLMMLMHeadObjective`]
    """
    if not isinstance(head, MLMHeadModel):
        head = MLMHeadModel.from_pretrained(head, **load_kwargs)
    head.eval()
    if max_length is None and base_model is not None:
        max_length = max_input_length(base_model, tokenizer)
    objective = CausalLMMLMHeadObjective(tokenizer, max_length, head=head)
    if base_model is not None and objective.mask_id == padding_index(base_model):
        raise ObjectiveError(
            f"The MLM head's mask token {head.config.mask_token!r} is the decoder's padding token, whose embedding "
            "gets no gradient; train the head with another `mask_token` (e.g. the tokenizer's bos or unk token)."
        )
    return objective


def objective_for_gradiend(gradiend, tokenizer, base_model: nn.Module | None = None) -> Objective:
    """The objective a GRADIEND was trained with: for `causal_lm_mlm_head` its recorded head, loaded again;
    otherwise the recorded family (or the base model's detected one).

    Raises:
        [`GradiendLoadError`]: when the GRADIEND records the head objective without a head, or the head found there
            predicts other labels than were recorded.
    """
    config = gradiend.config
    if config.objective != CausalLMMLMHeadObjective.name:
        return get_objective(config.objective or base_model, tokenizer, model=base_model)
    record = config.mlm_head or {}
    if not record.get("name_or_path"):
        raise GradiendLoadError(
            "This GRADIEND was trained through an MLM head but its config does not say where the head is "
            "(`mlm_head.name_or_path`); pass the head yourself with `mlm_head_objective(head, tokenizer)`."
        )
    revision = {"revision": record["revision"]} if record.get("revision") else {}
    objective = mlm_head_objective(record["name_or_path"], tokenizer, base_model, **revision)
    if record.get("labels") and list(record["labels"]) != objective.head.labels:
        raise GradiendLoadError(
            f"The MLM head at {record['name_or_path']!r} predicts {objective.head.labels}, but the GRADIEND was "
            f"trained through a head predicting {record['labels']}; the head was replaced. Give the original head."
        )
    return objective
