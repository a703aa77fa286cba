"""The bias benchmarks of one rewrite and of the unchanged model, in one call: [`evaluate_rewrite_bias`].

A rewrite `θ + lr · u(ff)` changes only the parameters its GRADIEND covers. When those lie in the upper layers, the
layers below compute the same hidden states for the rewritten and the unchanged model, so the second model's
scoring reuses the first's ([`gradiend_hf.evaluation.prefix_cache.FrozenPrefix`]; same scores): the demo's GRADIEND
covers the last six of SmolLM2's thirty layers, and the unchanged model's benchmarks then run six layers, not thirty.
"""

from __future__ import annotations

from torch import nn

from ..evaluation.prefix_cache import FrozenPrefix
from ..rewrite import RewriteSession, check_logits_finite
from .paired import attach_paired
from .report import BenchmarkReport
from .runner import evaluate_bias


def evaluate_rewrite_bias(
    gradiend: nn.Module,
    base_model: nn.Module,
    tokenizer,
    feature_factor: float,
    learning_rate: float,
    *,
    compare_base: bool = True,
    model_name: str | None = None,
    rewritten_name: str | None = None,
    reuse_lower_layers: bool = True,
    **options,
) -> dict[str, BenchmarkReport]:
    """Scores the rewrite `θ + learning_rate · u(feature_factor)` (applied in place, then restored bit for bit) and,
    with `compare_base`, the unchanged model on the bias benchmarks, with the paired change between them.

    The rewrite is scored first: a rewrite that breaks the model (non-finite logits) fails before minutes of scoring.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND whose update is applied.
        base_model (`PreTrainedModel`): Its base model (unchanged after the call).
        tokenizer: The base model's fast tokenizer.
        feature_factor (`float`), learning_rate (`float`): The rewrite.
        compare_base (`bool`, *optional*, defaults to `True`): Also score the unchanged model and attach the paired
            bias change to the rewritten model's report.
        model_name (`str`, *optional*): The unchanged model's name in its report (default: its `name_or_path`).
        rewritten_name (`str`, *optional*): The rewritten model's name (default: `"<model_name> rewritten"`).
        reuse_lower_layers (`bool`, *optional*, defaults to `True`): Compute the hidden states below the first layer
            the GRADIEND covers once for both models (same scores; `False` runs every layer twice).
        **options: Passed to [`evaluate_bias`] (`benchmarks`, `bias_types`, `max_rows`, `bootstrap_samples`, …).

    Returns:
        `dict[str, BenchmarkReport]`: `"base"` (with `compare_base`) and `"rewritten"` (its `.rewrite` holds the
        feature factor and learning rate).

    Raises:
        NonFiniteError: when the rewritten model gives non-finite logits.
        BenchmarkError: as [`evaluate_bias`].
    """
    model_name = model_name or getattr(base_model, "name_or_path", None) or type(base_model).__name__
    with FrozenPrefix(base_model, gradiend.param_names, enabled=reuse_lower_layers and compare_base) as prefix:
        with RewriteSession(base_model, gradiend) as session:
            session.apply(feature_factor, learning_rate)
            check_logits_finite(base_model)
            rewritten = evaluate_bias(
                base_model, tokenizer, model_name=rewritten_name or f"{model_name} rewritten", **options
            )
        prefix.stop_recording()
        base = evaluate_bias(base_model, tokenizer, model_name=model_name, **options) if compare_base else None
    rewritten.rewrite = {"feature_factor": feature_factor, "learning_rate": learning_rate}
    if base is None:
        return {"rewritten": rewritten}
    attach_paired(base, rewritten)
    return {"base": base, "rewritten": rewritten}
