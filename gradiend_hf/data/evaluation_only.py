"""Datasets that must never become training data: CrowS-Pairs' authors ask that it only be used to evaluate models.

gradiend-hf bundles CrowS-Pairs as a bias benchmark (`gradiend_hf.benchmarks`); a GRADIEND trained on its sentences
would learn from the very examples that measure the bias, so the feature-data loaders refuse it by name, by file
and as the dataset `gradiend_hf.benchmarks.load_benchmark("crows_pairs")` returns.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from .errors import FeatureDataError


class EvaluationOnlyDataError(FeatureDataError):
    """The data is an evaluation-only benchmark (CrowS-Pairs) and cannot be used as feature (training) data."""


# Dataset names as `load_benchmark` marks them (`info.dataset_name`), and Hub ids of the upstream dataset.
EVALUATION_ONLY_NAMES = {"crows_pairs"}
_HUB_IDS = {"crows_pairs", "nyu-mll/crows_pairs", "bigsciencebiaseval/crows_pairs_multilingual"}
_FILE_NAME = re.compile(r"crows[_-]?pairs[\w.-]*", re.IGNORECASE)

_MESSAGE = (
    "{what} is CrowS-Pairs, which its authors ask never to be used to train a language model (it is an evaluation "
    "set: training on it would defeat the measurement). Use it with `gradiend_hf.benchmarks.evaluate_bias`, and train "
    "on other text (e.g. the built-in `gender-en`)."
)


def refuse_evaluation_only(source) -> None:
    """Raises [`EvaluationOnlyDataError`] when `source` is CrowS-Pairs: its name or Hub id, a file or folder named like
    it (e.g. `crows_pairs.jsonl.gz`, `crows_pairs_anonymized.csv`), or a dataset marked as it."""
    if isinstance(source, (str, PurePath)):
        text = str(source)
        hub_id = text.lower().replace("-", "_") in {h.replace("-", "_") for h in _HUB_IDS}
        if hub_id or _FILE_NAME.fullmatch(PurePath(text).name):
            raise EvaluationOnlyDataError(_MESSAGE.format(what=repr(text)))
        return
    parts = source.values() if hasattr(source, "values") and hasattr(source, "keys") else [source]
    for part in parts:
        name = getattr(getattr(part, "info", None), "dataset_name", None)
        if name in EVALUATION_ONLY_NAMES:
            raise EvaluationOnlyDataError(_MESSAGE.format(what="This dataset"))
