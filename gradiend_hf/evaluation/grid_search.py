"""Which points of a decoder grid are scored, and how far.

A built-in selection policy ([`LMSThresholdPolicy`]) reads the class probabilities of a rewrite only when its
language-modelling score keeps `ratio · base LMS`, or, when no candidate keeps it, of the candidates with the smallest
non-zero |learning rate|. Scoring the LMS first, and the class probabilities only where they can matter, selects the
same rewrite as scoring everything:

- `"exhaustive"`: every point, every column.
- `"early_stop"` (exact): every point's LMS first, batch by batch, stopped as soon as it is certainly below the
  threshold (see [`LanguageModelingScorer`]); the class probabilities only of points that keep the LMS, and, when no
  candidate keeps it, of the candidates with the smallest non-zero |learning rate| (scored whole then). Same
  selection, and the same numbers at every point scored whole, as `"exhaustive"`.
- `"adaptive"`: `"early_stop"`, and per feature factor (and sign of the learning rate) the learning rates go from
  the smallest |lr| up, stopping after `patience` consecutive rates below the threshold: the larger ones are not
  scored. With `refine > 0`, that many rates (geometric) between the largest kept and the next larger one are
  scored too. This assumes the LMS falls as |lr| grows; where it rises again past `patience` rates below, the
  selection can differ from `"exhaustive"`.

The `scored` column of the grid says what was measured at each point: `"all"` (every column), `"lms"` (the LMS
whole, below the threshold; no class probabilities), `"lms_cut"` (the LMS stopped early: `lms` is NaN and
`lms_bound` the value it certainly stays below), `"none"` (not scored). `lms_bound` is the LMS itself where it was
scored whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import GradiendError
from ..rewrite import RewriteSession


SEARCHES = ("exhaustive", "early_stop", "adaptive")


@dataclass
class GridSearch:
    """How the grid is walked (see the module docstring).

    Args:
        mode (`str`): One of `"exhaustive"`, `"early_stop"`, `"adaptive"`.
        threshold (`float`): The LMS a rewrite must keep, `ratio · base LMS` (unused by `"exhaustive"`).
        is_candidate (`Callable[[float], bool]`): Whether the policy may select a feature factor.
        patience (`int`, *optional*, defaults to 2): `"adaptive"`: consecutive learning rates below the threshold
            after which larger ones are not scored.
        refine (`int`, *optional*, defaults to 0): `"adaptive"`: learning rates added between the largest kept and
            the next larger one.
    """

    mode: str
    threshold: float = math.nan
    is_candidate: Callable[[float], bool] = lambda feature_factor: True
    patience: int = 2
    refine: int = 0

    def __post_init__(self):
        if self.mode not in SEARCHES:
            raise GradiendError(f"Unknown grid search {self.mode!r}; use one of {', '.join(SEARCHES)}.")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise GradiendError(f"`search_patience` must be an integer ≥ 1, got {self.patience!r}.")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise GradiendError(f"`search_refine` must be an integer ≥ 0, got {self.refine!r}.")


class GridWalk:
    """Scores the points of one grid on a model rewritten in place, as a [`GridSearch`] says.

    Args:
        session ([`RewriteSession`]): Applies `θ + lr · u(ff)` to the base model.
        search ([`GridSearch`]): What to score.
        score_lms (`Callable`): `score_lms(stop_below)` → the LMS columns of the current state (see
            [`LanguageModelingScorer`]).
        score_probabilities (`Callable`): `score_probabilities()` → the class probability columns of the current
            state.
        columns (`list[str]`): The measured columns (a point not measured has them NaN).
        progress (`Callable`, *optional*): Called once per point scored.
    """

    def __init__(self, session: RewriteSession, search: GridSearch, score_lms, score_probabilities, columns, progress):
        self.session = session
        self.search = search
        self.score_lms = score_lms
        self.score_probabilities = score_probabilities
        self.columns = list(columns)
        self.progress = progress
        self.records: dict[tuple[float, float], dict] = {}

    def run(self, feature_factors: Sequence[float], learning_rates: Sequence[float]) -> list[dict]:
        """Scores the grid; returns one record per point (sorted by feature factor and learning rate)."""
        for chain in _chains(feature_factors, learning_rates):
            self._walk(chain)
        if self.search.mode != "exhaustive":
            self._score_fallback()
        return [self.records[point] for point in sorted(self.records)]

    # -- one chain of learning rates --------------------------------------------------------------------------

    def _walk(self, chain: list[tuple[float, float]]) -> None:
        below = 0
        for feature_factor, learning_rate in chain:
            if self.search.mode == "adaptive" and below >= self.search.patience:
                self._record(feature_factor, learning_rate, "none", {})
                continue
            kept = self._score(feature_factor, learning_rate)
            below = 0 if kept else below + 1
        if self.search.mode == "adaptive" and self.search.refine:
            self._refine(chain)

    def _refine(self, chain: list[tuple[float, float]]) -> None:
        """Geometric learning rates between the largest kept |lr| of the chain and the next larger one scored."""
        scored = [point for point in chain if self.records[point]["scored"] != "none"]
        kept = [i for i, point in enumerate(scored) if self.records[point]["scored"] == "all"]
        if not kept or kept[-1] + 1 == len(scored) or scored[kept[-1]][1] == 0:
            return
        feature_factor, low = scored[kept[-1]]
        high = scored[kept[-1] + 1][1]
        for step in range(1, self.search.refine + 1):
            learning_rate = low * (high / low) ** (step / (self.search.refine + 1))
            if (feature_factor, learning_rate) not in self.records:
                self._score(feature_factor, learning_rate)

    # -- one point --------------------------------------------------------------------------------------------

    def _score(self, feature_factor: float, learning_rate: float) -> bool:
        """Scores one point; returns whether it keeps the LMS."""
        self.session.apply(feature_factor, learning_rate)
        if self.search.mode == "exhaustive":
            values = self.score_probabilities()
            lms = self.score_lms(None)
            self._record(feature_factor, learning_rate, "all", values | lms | {"lms_bound": lms["lms"]})
            return True
        lms = self.score_lms(self.search.threshold)
        if lms.pop("lms_cut"):
            self._record(feature_factor, learning_rate, "lms_cut", lms)
            return False
        if not lms["lms"] >= self.search.threshold:  # the policy's test: a NaN LMS does not keep it either
            self._record(feature_factor, learning_rate, "lms", lms)
            return False
        self._record(feature_factor, learning_rate, "all", self.score_probabilities() | lms)
        return True

    def _record(self, feature_factor: float, learning_rate: float, scored: str, values: dict) -> None:
        record = {"feature_factor": feature_factor, "learning_rate": learning_rate}
        record.update({column: values.get(column, math.nan) for column in self.columns})
        record["scored"] = scored
        record["lms_bound"] = values.get("lms_bound", math.nan)
        if (feature_factor, learning_rate) not in self.records:
            self.progress()
        self.records[(feature_factor, learning_rate)] = record

    def _score_fallback(self) -> None:
        """When no candidate keeps the LMS, the policy picks among the candidates of the smallest non-zero |lr| by
        their metric: score those whole."""
        candidates = [
            point for point, record in self.records.items() if self.search.is_candidate(point[0]) and point[1] != 0
        ]
        if not candidates or any(self.records[point]["scored"] == "all" for point in candidates):
            return
        smallest = min(abs(point[1]) for point in candidates)
        for feature_factor, learning_rate in candidates:
            if abs(learning_rate) == smallest:
                self.session.apply(feature_factor, learning_rate)
                values = self.score_probabilities()
                lms = self.score_lms(None)
                self._record(feature_factor, learning_rate, "all", values | lms | {"lms_bound": lms["lms"]})


def _chains(feature_factors: Sequence[float], learning_rates: Sequence[float]) -> list[list[tuple[float, float]]]:
    """The points grouped per feature factor and sign of the learning rate, each group by growing |lr| (a
    learning rate of 0 is a group of its own)."""
    chains = []
    for feature_factor in sorted(feature_factors):
        for sign in (0, 1, -1):
            rates = sorted((lr for lr in learning_rates if _sign(lr) == sign), key=abs)
            if rates:
                chains.append([(feature_factor, lr) for lr in rates])
    return chains


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)
