"""Errors raised while building feature and neutral datasets.

Every error derives from `gradiend_hf.errors.GradiendError` (a `ValueError`), so callers that already guard against bad input keep working, and each one has its
own class so that tests and applications can react to one problem without parsing messages.
"""

from ..errors import GradiendError


class FeatureDataError(GradiendError):
    """Base class of every data error of gradiend-hf (also raised for invalid arguments such as split ratios)."""


class NotTextError(FeatureDataError, TypeError):
    """A text (or a text column's value) is not a string; also a `TypeError`."""


class InvalidRowError(FeatureDataError):
    """A feature row cannot be used: its text is missing or empty, or has no `[MASK]` or several."""


class NoTextError(FeatureDataError):
    """The input holds no usable sentence (empty, only whitespace or punctuation, or everything was filtered)."""


class InvalidClassesError(FeatureDataError):
    """The class definition (class name -> words) cannot describe a feature."""


class ClassCountError(InvalidClassesError):
    """The class definition is not a mapping of at least two distinct class names to their words."""


class InvalidWordError(InvalidClassesError):
    """A class word (or an excluded word) is empty, not a string, or neither a word nor a phrase of words."""


class InvalidPairingError(InvalidClassesError):
    """Paired word forms cannot give each word its counterpart: lists of different lengths, a word without a
    counterpart, a pair naming a word of no class, or words paired many-to-many."""


class OverlappingClassesError(InvalidClassesError):
    """The same word (compared case-insensitively) belongs to two classes."""


class NotEnoughRowsError(FeatureDataError):
    """A class has fewer usable rows than the requested splits need."""


class EmptyClassError(NotEnoughRowsError):
    """A class has no row at all: in the text (every sentence with its words was dropped) or in a view's split."""


class NoMatchError(EmptyClassError):
    """No word of a class occurs anywhere in the text (so the class has no row either)."""


class NotEnoughWordsError(NotEnoughRowsError):
    """`split_by="word"` needs more distinct factual words in a class than it has."""


class UnknownBuiltinError(FeatureDataError):
    """`load_builtin` was asked for a dataset that does not ship with gradiend-hf."""


class InvalidViewError(FeatureDataError):
    """A pair, one-vs-rest or merged view of a feature dataset is malformed (e.g. a class in both of its groups)."""


class UnknownClassError(InvalidViewError):
    """A view names a class the feature dataset does not have."""


class OneVsRestError(InvalidViewError):
    """A one-vs-rest view has no class left for the rest (the dataset, or the classes it may use, is one class)."""
