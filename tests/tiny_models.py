"""The tests' tiny models live in the package (`gradiend_hf.testing_utils`) so examples can use them too."""

from gradiend_hf.testing_utils import (  # noqa: F401, I001
    CAUSAL_FAMILIES,
    CORPUS,
    FAMILIES,
    MASKED_FAMILIES,
    SEQ2SEQ_FAMILIES,
    _ENDS,
    _SUBJECTS,
    _VERBS,
    byte_bpe_tokenizer,
    masked_rows,
    tiny_model,
    tokenizer_for,
    wordpiece_tokenizer,
)
