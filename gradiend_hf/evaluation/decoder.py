"""Decoder evaluation: try rewrites `θ + lr · u(ff)` over a grid, measure class probabilities and the
language-modelling score of each, and select one.

Every grid point is applied to the base model in place through [`RewriteSession`] and reverted bit for bit; the
evaluation rows and neutral texts are tokenized once and reused for every point. The reference package deep-copied
the whole model for every point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..checks import number_grid
from ..errors import GradiendError
from ..objectives import gradiend_objective
from ..rewrite import RewriteSession
from .feature_factor import feature_classes_and_positive, feature_factor_for
from .grid_search import GridSearch, GridWalk
from .lms import LanguageModelingScorer
from .metrics import EvaluationError, balance_score
from .prefix_cache import FrozenPrefix
from .probabilities import ClassProbabilityScorer
from .rows import check_usable, class_words, neutral_texts, resolve_split, sample_by_class, sample_texts
from .runtime import eval_mode, model_device
from .selection import resolve_policy


# {1, 2, 5} · 10^e from 100 down to 0.001 (method §4.2).
DEFAULT_LEARNING_RATES = (100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
# The original paper's feature factors (method §4.3): `feature_factors="paper"`.
PAPER_FEATURE_FACTORS = (-10.0, -2.0, -1.0, -0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 10.0)
# The balance policy's default: both classes' directions at ±1 and beyond, and the decoder's bias alone (ff = 0). Finer
# grids cost a whole scoring per kept point (the early stop saves only on the points that lose the LMS): see
# `feature_factors="paper"`.
BALANCE_FEATURE_FACTORS = (-2.0, -1.0, 0.0, 1.0, 2.0)
FEATURE_FACTOR_PRESETS = {"paper": PAPER_FEATURE_FACTORS, "balance": BALANCE_FEATURE_FACTORS}
DEFAULT_SEARCH = "early_stop"


@dataclass
class DecoderSelection:
    """The selected rewrite and what it does.

    Args:
        feature_factor (`float`), learning_rate (`float`): The rewrite `θ + learning_rate · u(feature_factor)`.
        value (`float`): The selection metric of the rewrite; `base_value` the same for the unchanged model.
        lms (`float`): Language-modelling score of the rewrite; `base_lms` that of the unchanged model.
        probabilities (`dict`): `probabilities[dataset_class][class]`, mean probability of `class`'s words on the
            rows of `dataset_class`, for the rewrite; `base_probabilities` for the unchanged model.
        metric (`str`): Name of the grid column the value comes from.
    """

    feature_factor: float
    learning_rate: float
    value: float
    lms: float
    base_value: float
    base_lms: float
    metric: str
    probabilities: dict = field(default_factory=dict)
    base_probabilities: dict = field(default_factory=dict)


@dataclass
class DecoderReport:
    """Result of [`evaluate_decoder`].

    Args:
        grid (`pd.DataFrame`): One row per grid point, sorted by feature factor and learning rate, with
            `feature_factor`, `learning_rate`, `prob_<C>_on_<D>` (mean probability of class C's words on the rows of
            class D), `strengthen_<C>` (= `prob_<C>_on_<other>`), `weaken_<C>` (= 1 − `prob_<C>_on_<C>`),
            `balance` (see [`balance_score`]), `lms` (+ `nll` and `perplexity` for causal LMs), `metric` (the
            column the policy maximised), `scored` (what was measured: `"all"`; `"lms"`, the LMS below the
            threshold and no class probabilities; `"lms_cut"`, the LMS stopped once certainly below the threshold,
            `lms` NaN; `"none"`, not scored by the adaptive search; see [`gradiend_hf.evaluation.grid_search`])
            and `lms_bound` (the LMS where scored whole, else the bound it stays below).
        base (`dict`): The same measurements for the unchanged model (`feature_factor = learning_rate = 0`).
        selected ([`DecoderSelection`]): The chosen rewrite.
        target_class (`str`): The class strengthened or weakened (`None` for the balance policy without one).
        strengthen (`bool`): Whether the target class was strengthened.
        policy (`str`): The policy's name.
        feature_classes (`list[str]`): The two classes.
        num_rows (`dict`): Evaluation rows per class; `num_lms_texts` the neutral texts of the LMS.
        search (`str`): How the grid was walked (`"exhaustive"`, `"early_stop"` or `"adaptive"`).
    """

    grid: pd.DataFrame
    base: dict
    selected: DecoderSelection
    target_class: str | None
    strengthen: bool
    policy: str
    feature_classes: list[str]
    num_rows: dict = field(default_factory=dict)
    num_lms_texts: int = 0
    search: str = "exhaustive"

    @property
    def num_scored(self) -> dict[str, int]:
        """How many grid points were scored how (the `scored` column's counts)."""
        if "scored" not in self.grid:  # a grid from before searches had every point scored whole
            return {"all": len(self.grid)}
        return {str(k): int(v) for k, v in self.grid["scored"].value_counts().items()}

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (grid as a list of records)."""
        return {
            "target_class": self.target_class,
            "strengthen": self.strengthen,
            "policy": self.policy,
            "feature_classes": self.feature_classes,
            "num_rows": self.num_rows,
            "num_lms_texts": self.num_lms_texts,
            "search": self.search,
            "num_scored": self.num_scored,
            "base": self.base,
            "selected": asdict(self.selected),
            "grid": self.grid.to_dict(orient="records"),
        }

    def __repr__(self) -> str:
        s = self.selected
        return (
            f"DecoderReport(policy={self.policy!r}, target_class={self.target_class!r}, strengthen={self.strengthen}, "
            f"selected=(ff={s.feature_factor:+g}, lr={s.learning_rate:g}), {s.metric}={s.value:.4g} "
            f"(base {s.base_value:.4g}), lms={s.lms:.4g} (base {s.base_lms:.4g}), grid points={len(self.grid)}, "
            f"scored whole={self.num_scored.get('all', 0)}, search={self.search!r})"
        )


def evaluate_decoder(
    gradiend,
    base_model,
    tokenizer,
    dataset,
    neutral=None,
    target_class: str | None = None,
    learning_rates: Sequence[float] | None = None,
    feature_factors: Sequence[float] | str | None = None,
    policy="lms_threshold",
    strengthen: bool = True,
    split: str = "test",
    max_rows: int | None = 100,
    lms_max_texts: int | None = 100,
    batch_size: int = 32,
    seed: int = 0,
    lms_ratio: float = 0.99,
    show_progress: bool = False,
    reuse_lower_layers: bool = True,
    search: str | None = None,
    search_patience: int = 2,
    search_refine: int = 0,
) -> DecoderReport:
    """Evaluates rewrites of the base model over a grid of feature factors and learning rates and selects one.

    For every grid point the base model is rewritten in place (`θ + lr · u(ff)`), scored and restored exactly; the
    model is bit-identical afterwards. Scores:
    - class probabilities on the split's rows: the mean probability of each class's words at the blank, per
      dataset class (see [`gradiend_hf.evaluation.probabilities`]);
    - the language-modelling score on neutral text (see [`gradiend_hf.evaluation.lms`]).

    Policies:
    - `"lms_threshold"` (default): strengthen `target_class` — maximise its mean probability on the OTHER class's
      rows — or, with `strengthen=False`, weaken it — maximise 1 − its mean probability on its own rows — among
      rewrites keeping `lms ≥ lms_ratio · base lms`; otherwise the smallest non-zero learning rate. Only feature
      factors of the strengthening (weakening) sign are candidates.
    - `"balance"` (debiasing): maximise [`balance_score`] (mean of `2 · min(P(A), P(B))` over both classes' rows)
      under the same LMS condition, over feature factors of both signs (default grid: ff ∈ {±2, ±1, 0}).
    - a callable `policy(grid, base) -> index label` of the chosen grid row (the grid is then scored exhaustively:
      the policy may read any column).

    Search (see [`gradiend_hf.evaluation.grid_search`]): the built-in policies read a point's class probabilities only
    when its LMS keeps the threshold, so by default (`"early_stop"`) each point's LMS is scored first, batch by
    batch, and stopped once it is certainly below `lms_ratio · base lms`; the class probabilities are computed only
    where the policy can use them. This selects exactly what `"exhaustive"` (every point, every column) selects,
    with the same numbers at every point scored whole. `"adaptive"` also stops going up in |learning rate| after
    `search_patience` rates below the threshold (it assumes the LMS falls as |lr| grows) and can refine between the
    largest kept rate and the next.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND (`config.feature_classes`, `positive_class`, `source`).
        base_model (`PreTrainedModel`): The base model; rewritten in place during the call and restored.
        tokenizer: The base model's fast tokenizer.
        dataset (`datasets.DatasetDict` or `datasets.Dataset`): Feature rows; the class words come from all splits.
        neutral (`datasets.Dataset` or `list[str]`, *optional*): Neutral texts for the LMS; defaults to the split's
            sentences with the factual word put back (class words are never scored).
        target_class (`str`, *optional*): The class to strengthen or weaken (required by `"lms_threshold"`).
        learning_rates (`Sequence[float]`, *optional*): Defaults to `{1, 2, 5} · 10^e` from 100 down to 0.001.
        feature_factors (`Sequence[float]` or `str`, *optional*): Defaults to the feature factor that strengthens
            (weakens) `target_class` (see [`feature_factor_for`]); for `"balance"` to ±2, ±1 and 0. `"paper"`:
            the original paper's 15 values from -10 to 10 (only those of the policy's sign are candidates of
            `"lms_threshold"`).
        policy (`str` or callable, *optional*, defaults to `"lms_threshold"`): See above.
        strengthen (`bool`, *optional*, defaults to `True`): Strengthen or weaken `target_class`.
        split (`str`, *optional*, defaults to `"test"`): Split of a `DatasetDict` to score on.
        max_rows (`int`, *optional*, defaults to 100): Rows per class (a seeded sample); `None` for all.
        lms_max_texts (`int`, *optional*, defaults to 100): Neutral texts for the LMS (a seeded sample).
        batch_size (`int`, *optional*, defaults to 32): Rows per forward pass.
        seed (`int`, *optional*, defaults to 0): Seed of the samples and of the LMS masks.
        lms_ratio (`float`, *optional*, defaults to 0.99): Share of the base LMS a selected rewrite keeps.
        show_progress (`bool`, *optional*, defaults to `False`): Show a progress bar over the grid.
        reuse_lower_layers (`bool`, *optional*, defaults to `True`): When the GRADIEND covers only upper layers,
            compute the hidden states below the first covered layer once and reuse them at every grid point (same
            results; see [`gradiend_hf.evaluation.prefix_cache.FrozenPrefix`]).
        search (`str`, *optional*): `"early_stop"` (the default for the built-in policies), `"exhaustive"` (the
            default, and the only choice, for a callable policy) or `"adaptive"`; see above.
        search_patience (`int`, *optional*, defaults to 2): `"adaptive"`: learning rates below the threshold in a
            row after which the larger ones of that feature factor are not scored.
        search_refine (`int`, *optional*, defaults to 0): `"adaptive"`: learning rates (geometric) scored between
            the largest one that keeps the LMS and the next larger one.

    Returns:
        [`DecoderReport`] with `.grid`, `.base` and `.selected`.
    """
    config = gradiend.config
    classes, _ = feature_classes_and_positive(config)
    if target_class is not None and target_class not in classes:
        raise GradiendError(f"`target_class` {target_class!r} is not one of the GRADIEND's feature classes {classes}.")
    if target_class is None and not callable(policy) and policy != "balance":
        raise GradiendError(
            f"The {policy!r} policy needs `target_class`, the class to strengthen or weaken (one of {classes}); "
            "use `policy='balance'` to make the classes equally likely instead."
        )
    policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", type(policy).__name__)
    lrs = number_grid(DEFAULT_LEARNING_RATES if learning_rates is None else learning_rates, "learning_rates")
    ffs = number_grid(
        _feature_factors(feature_factors, policy, config, classes, target_class, strengthen), "feature_factors"
    )
    if search is None:
        search = "exhaustive" if callable(policy) else DEFAULT_SEARCH
    elif callable(policy) and search != "exhaustive":
        raise GradiendError(
            f"`search={search!r}` scores only what the built-in policies read; a callable policy may read any column, "
            "so its grid is scored exhaustively: leave `search` unset or pass 'exhaustive'."
        )

    gradiend.check_base_model(base_model)
    objective = gradiend_objective(config, base_model, tokenizer, scoring=True)
    device = model_device(base_model)
    rows = sample_by_class(resolve_split(dataset, split), classes, max_rows, seed)
    check_usable(objective, rows)
    row_classes = [row["factual_class"] for row in rows]
    missing = [name for name in classes if name not in row_classes]
    if missing:
        raise EvaluationError(
            f"The split {split!r} has no rows of class(es) {missing}; the class probabilities need rows of both "
            f"classes {classes}."
        )
    words = class_words(dataset, classes)
    probabilities = ClassProbabilityScorer(
        objective, [r["masked"] for r in rows], [r["factual"] for r in rows], words, batch_size, device
    )
    texts = neutral_texts(neutral) or [r["masked"].replace("[MASK]", r["factual"]) for r in rows]
    texts = sample_texts(texts, lms_max_texts, seed)
    lms = LanguageModelingScorer(
        tokenizer,
        texts,
        objective,
        batch_size=batch_size,
        seed=seed,
        excluded_token_ids=probabilities.token_ids(),
        device=device,
    )
    masks = {name: torch.tensor([c == name for c in row_classes]) for name in classes}

    def score_probabilities() -> dict:
        probs = probabilities(base_model)
        result = {}
        for on in classes:
            for name in classes:
                result[f"prob_{name}_on_{on}"] = float(probs[name][masks[on]].mean())
        for name in classes:
            other = classes[1] if name == classes[0] else classes[0]
            result[f"strengthen_{name}"] = result[f"prob_{name}_on_{other}"]
            result[f"weaken_{name}"] = 1.0 - result[f"prob_{name}_on_{name}"]
        result["balance"] = balance_score(probs[classes[0]], probs[classes[1]])
        return result

    if target_class is not None and policy != "balance":
        metric = f"strengthen_{target_class}" if strengthen else f"weaken_{target_class}"
        sign = int(math.copysign(1, feature_factor_for(config, target_class, strengthen)))
    else:
        metric, sign = "balance", None
    with (
        eval_mode(base_model),
        torch.no_grad(),
        FrozenPrefix(base_model, gradiend.param_names, reuse_lower_layers) as prefix,
    ):
        base = {"feature_factor": 0.0, "learning_rate": 0.0} | score_probabilities() | lms(base_model)
        prefix.stop_recording()
        grid_search = GridSearch(
            search,
            threshold=lms_ratio * float(base["lms"]),  # as the policy computes it
            is_candidate=lambda ff: sign is None or _sign(ff) == sign,
            patience=search_patience,
            refine=search_refine,
        )
        columns = [column for column in base if column not in ("feature_factor", "learning_rate")]
        with (
            RewriteSession(base_model, gradiend) as session,
            tqdm(total=len(ffs) * len(lrs), desc="decoder grid", disable=not show_progress) as bar,
        ):
            walk = GridWalk(
                session, grid_search, lambda stop: lms(base_model, stop), score_probabilities, columns, bar.update
            )
            records = walk.run(ffs, lrs)
    grid = pd.DataFrame(records)

    grid["metric"] = grid[metric]
    base["metric"] = base[metric]
    chosen = resolve_policy(policy, "metric", sign, lms_ratio)(grid, base)
    if chosen not in grid.index:
        raise EvaluationError(f"The selection policy returned {chosen!r}, which is not an index of the grid.")
    row = grid.loc[chosen]
    selected = DecoderSelection(
        feature_factor=float(row["feature_factor"]),
        learning_rate=float(row["learning_rate"]),
        value=float(row["metric"]),
        lms=float(row["lms"]),
        base_value=float(base["metric"]),
        base_lms=float(base["lms"]),
        metric=metric,
        probabilities=_probability_table(row, classes),
        base_probabilities=_probability_table(base, classes),
    )
    counts = {name: int(masks[name].sum()) for name in classes}
    return DecoderReport(
        grid, base, selected, target_class, strengthen, policy_name, classes, counts, lms.num_texts, search
    )


def _feature_factors(feature_factors, policy, config, classes, target_class, strengthen) -> Sequence[float]:
    """The grid's feature factors: given, a preset by name, or the policy's default."""
    if isinstance(feature_factors, str):
        if feature_factors not in FEATURE_FACTOR_PRESETS:
            raise GradiendError(
                f"Unknown feature-factor preset {feature_factors!r}; use one of {', '.join(FEATURE_FACTOR_PRESETS)} "
                "or a list of numbers."
            )
        return FEATURE_FACTOR_PRESETS[feature_factors]
    if feature_factors is not None:
        return feature_factors
    if policy == "balance":
        return BALANCE_FEATURE_FACTORS
    return [feature_factor_for(config, target_class, strengthen)]


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _probability_table(row, classes) -> dict:
    return {on: {name: float(row[f"prob_{name}_on_{on}"]) for name in classes} for on in classes}
