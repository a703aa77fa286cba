"""Feature data for GRADIEND: masked datasets with two or more classes, their two-class views, neutral text, and
built-in datasets.

```python
from gradiend_hf.data import load_builtin, make_feature_dataset, pair_view

gender = load_builtin("gender-en")  # DatasetDict: train / validation / test
rows = make_feature_dataset(texts, {"M": ["he"], "F": ["she"]}, min_left_context_words=10)
pronouns = load_builtin("pronouns-en")  # five classes: 1SG, 1PL, 2, 3SG, 3PL
first_vs_third = pair_view(pronouns, "1SG", "3SG", identity=True)  # two-class rows a GRADIEND trains on
```
"""

from .builtin_datasets import builtin_info, list_builtin, load_builtin
from .casing import match_casing, recase
from .class_view import ClassView, all_pair_views, one_vs_rest_views
from .classes import FeatureClasses
from .errors import (
    ClassCountError,
    EmptyClassError,
    FeatureDataError,
    InvalidClassesError,
    InvalidPairingError,
    InvalidRowError,
    InvalidViewError,
    InvalidWordError,
    NoMatchError,
    NotEnoughRowsError,
    NotEnoughWordsError,
    NoTextError,
    NotTextError,
    OneVsRestError,
    OverlappingClassesError,
    UnknownBuiltinError,
    UnknownClassError,
)
from .evaluation_only import EvaluationOnlyDataError
from .feature_dataset import make_feature_dataset
from .neutral import ENGLISH_PERSONAL_PRONOUNS, make_neutral_dataset
from .pairing import WordPairing
from .schema import (
    FEATURE_COLUMNS,
    MASK,
    MULTICLASS_COLUMNS,
    ROW_COLUMNS,
    feature_dataset_features,
    multiclass_dataset_features,
    neutral_dataset_features,
)
from .sources import load_feature_data, load_neutral_data
from .text import clean_sentence, count_words, split_sentences
from .views import (
    apply_view,
    feature_class_names,
    merged_view,
    one_vs_rest_view,
    pair_view,
    transitions_view,
)


__all__ = [
    "ENGLISH_PERSONAL_PRONOUNS",
    "FEATURE_COLUMNS",
    "MASK",
    "ROW_COLUMNS",
    "MULTICLASS_COLUMNS",
    "ClassCountError",
    "ClassView",
    "EmptyClassError",
    "EvaluationOnlyDataError",
    "FeatureClasses",
    "FeatureDataError",
    "InvalidClassesError",
    "InvalidPairingError",
    "InvalidRowError",
    "InvalidViewError",
    "InvalidWordError",
    "NoMatchError",
    "NoTextError",
    "NotTextError",
    "NotEnoughRowsError",
    "NotEnoughWordsError",
    "OneVsRestError",
    "OverlappingClassesError",
    "UnknownBuiltinError",
    "UnknownClassError",
    "WordPairing",
    "all_pair_views",
    "apply_view",
    "builtin_info",
    "clean_sentence",
    "count_words",
    "feature_class_names",
    "feature_dataset_features",
    "list_builtin",
    "load_builtin",
    "load_feature_data",
    "load_neutral_data",
    "make_feature_dataset",
    "make_neutral_dataset",
    "match_casing",
    "merged_view",
    "multiclass_dataset_features",
    "neutral_dataset_features",
    "one_vs_rest_view",
    "one_vs_rest_views",
    "pair_view",
    "recase",
    "split_sentences",
    "transitions_view",
]
