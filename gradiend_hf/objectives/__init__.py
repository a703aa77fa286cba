"""Objectives: how a masked row becomes model inputs and a score, per model family. The only place (with
`gradiend_hf.params`) that knows model families; every other module asks an [`Objective`] for what it needs."""

from .base import IGNORE_INDEX, MASK, Objective, split_masked
from .batch import ObjectiveBatch
from .causal_lm import CausalLMObjective
from .causal_lm_mlm_head import CausalLMMLMHeadObjective, default_mask_token
from .masked_lm import MaskedLMObjective
from .registry import (
    OBJECTIVE_CLASSES,
    OBJECTIVES,
    detect_objective,
    get_objective,
    is_single_token,
    max_input_length,
    objective_class,
    objective_of_config,
)
from .words import ObjectiveError, UnrepresentableWordError


__all__ = [
    "IGNORE_INDEX",
    "MASK",
    "OBJECTIVES",
    "OBJECTIVE_CLASSES",
    "CausalLMMLMHeadObjective",
    "CausalLMObjective",
    "MaskedLMObjective",
    "Objective",
    "ObjectiveBatch",
    "ObjectiveError",
    "UnrepresentableWordError",
    "default_mask_token",
    "detect_objective",
    "get_objective",
    "is_single_token",
    "max_input_length",
    "objective_class",
    "objective_of_config",
    "split_masked",
]
