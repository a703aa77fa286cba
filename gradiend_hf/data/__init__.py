"""Feature data for GRADIEND: masked two-class datasets and neutral text from raw prose, plus built-in datasets.

```python
from gradiend_hf.data import load_builtin, make_feature_dataset

gender = load_builtin("gender-en")  # DatasetDict: train / validation / test
rows = make_feature_dataset(texts, {"M": ["he"], "F": ["she"]}, min_left_context_words=10)
```
"""

from .builtin_datasets import builtin_info, list_builtin, load_builtin
from .classes import FeatureClasses, match_casing
from .errors import (
    ClassCountError,
    FeatureDataError,
    InvalidClassesError,
    InvalidRowError,
    InvalidWordError,
    NoMatchError,
    NotEnoughRowsError,
    NotEnoughWordsError,
    NoTextError,
    NotTextError,
    OverlappingClassesError,
    UnknownBuiltinError,
)
from .feature_dataset import make_feature_dataset
from .masking import MASK
from .neutral import ENGLISH_PERSONAL_PRONOUNS, make_neutral_dataset
from .schema import FEATURE_COLUMNS, feature_dataset_features, neutral_dataset_features
from .sources import load_feature_data, load_neutral_data
from .text import clean_sentence, count_words, split_sentences


__all__ = [
    "ENGLISH_PERSONAL_PRONOUNS",
    "FEATURE_COLUMNS",
    "MASK",
    "ClassCountError",
    "FeatureClasses",
    "FeatureDataError",
    "InvalidClassesError",
    "InvalidRowError",
    "InvalidWordError",
    "NoMatchError",
    "NoTextError",
    "NotTextError",
    "NotEnoughRowsError",
    "NotEnoughWordsError",
    "OverlappingClassesError",
    "UnknownBuiltinError",
    "builtin_info",
    "clean_sentence",
    "count_words",
    "feature_dataset_features",
    "list_builtin",
    "load_builtin",
    "load_feature_data",
    "load_neutral_data",
    "make_feature_dataset",
    "make_neutral_dataset",
    "match_casing",
    "neutral_dataset_features",
    "split_sentences",
]
