"""Objectives: how a masked row becomes model inputs and a score, per model family. The only place (with
`gradiend_hf.params`) that knows model families; every other module asks an [`Objective`] for what it needs."""

from .base import IGNORE_INDEX, MASK, Objective, lms_scores, split_masked
from .batch import ObjectiveBatch
from .causal_lm import CausalLMObjective
from .causal_lm_cloze import CausalLMClozeObjective
from .causal_lm_mlm_head import CausalLMMLMHeadObjective, default_mask_token
from .logits import logits_at, separable_head
from .masked_lm import MaskedLMObjective
from .registry import (
    OBJECTIVE_CLASSES,
    OBJECTIVES,
    check_objective_fits,
    detect_objective,
    get_objective,
    gradiend_objective,
    is_single_token,
    max_input_length,
    objective_class,
    objective_of_config,
    probe_inputs,
)
from .seq2seq import Seq2SeqObjective
from .words import ObjectiveError, UnrepresentableWordError


__all__ = [
    "IGNORE_INDEX",
    "MASK",
    "OBJECTIVES",
    "OBJECTIVE_CLASSES",
    "CausalLMClozeObjective",
    "CausalLMMLMHeadObjective",
    "CausalLMObjective",
    "MaskedLMObjective",
    "Objective",
    "ObjectiveBatch",
    "ObjectiveError",
    "Seq2SeqObjective",
    "UnrepresentableWordError",
    "check_objective_fits",
    "default_mask_token",
    "detect_objective",
    "get_objective",
    "gradiend_objective",
    "is_single_token",
    "lms_scores",
    "logits_at",
    "max_input_length",
    "objective_class",
    "objective_of_config",
    "probe_inputs",
    "separable_head",
    "split_masked",
]
