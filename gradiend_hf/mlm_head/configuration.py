"""[`MLMHeadConfig`]: what an auxiliary MLM head of a decoder-only model is (its base model, the labels it predicts,
how it pools the decoder's hidden states, which token marks the blank)."""

from __future__ import annotations

from transformers import PretrainedConfig

from ..errors import GradiendError


MODEL_TYPE = "gradiend_mlm_head"


class MLMHeadConfig(PretrainedConfig):
    r"""
    Configuration of an [`MLMHeadModel`]: a linear classifier over label words, read from the mean of a frozen
    decoder's last hidden states at the blank's mask token and the positions after it.

    The labels are the class WORDS (lower-cased), as the reference's target label strings: a word of several tokens
    is one label, so multi-token words and k classes need nothing special. A row's word is looked up
    case-insensitively (`"She"` is the label `"she"`).

    Args:
        base_model_name_or_path (`str`, *optional*): The decoder the head reads (Hub id or folder).
        base_model_revision (`str`, *optional*): Its revision.
        labels (`list[str]`): The label words, in the order of the classifier's outputs (at least two, distinct
            after lower-casing).
        hidden_size (`int`): The decoder's hidden size.
        pooling_length (`int`, *optional*, defaults to 3): Positions pooled: the mask token and the
            `pooling_length - 1` tokens after it (fewer where the text ends sooner).
        mask_token (`str`): The token that stands for the blank in the decoder's input: an existing single token of
            the tokenizer (see `default_mask_token`), so the decoder's embedding is never resized.
        label_classes (`dict[str, str]`, *optional*): Label word → its feature class (for cards and reports).
        training_summary (`dict`, *optional*): What [`train_mlm_head`] measured (held-out accuracy, rows, epochs).

    Raises:
        [`GradiendError`]: for fewer than two labels, duplicate labels, a pooling length below 1 or no hidden size.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        base_model_name_or_path: str | None = None,
        base_model_revision: str | None = None,
        labels: list[str] | None = None,
        hidden_size: int = 0,
        pooling_length: int = 3,
        mask_token: str | None = None,
        label_classes: dict[str, str] | None = None,
        training_summary: dict | None = None,
        **kwargs,
    ):
        labels = [str(label).strip().lower() for label in (labels or [])]
        # transformers builds a default config without arguments (e.g. for `to_diff_dict`); only a real one is checked.
        if labels or hidden_size:
            if len(labels) < 2:
                raise GradiendError(f"An MLM head needs at least two label words, got {labels}.")
            if len(set(labels)) != len(labels):
                raise GradiendError(f"The label words {labels} repeat (compared lower-cased); give each word once.")
            if int(hidden_size) < 1:
                raise GradiendError(f"`hidden_size` must be the decoder's hidden size (>= 1), got {hidden_size}.")
        if int(pooling_length) < 1:
            raise GradiendError(f"`pooling_length` must be at least 1, got {pooling_length}.")
        self.base_model_name_or_path = base_model_name_or_path
        self.base_model_revision = base_model_revision
        self.labels = labels
        self.hidden_size = int(hidden_size)
        self.pooling_length = int(pooling_length)
        self.mask_token = mask_token
        self.label_classes = {str(k).lower(): str(v) for k, v in (label_classes or {}).items()} or None
        self.training_summary = dict(training_summary) if training_summary else None
        # Not the classifier-head `id2label` of transformers: its int keys do not survive a JSON round trip as given.
        kwargs.pop("id2label", None), kwargs.pop("label2id", None), kwargs.pop("num_labels", None)
        super().__init__(**kwargs)

    @property
    def num_labels(self) -> int:  # transformers reads it; the labels decide it
        return len(self.labels)

    @num_labels.setter
    def num_labels(self, value) -> None:  # PretrainedConfig's own __init__ sets it; the labels stay the truth
        pass

    def label_index(self, word: str) -> int | None:
        """The classifier output of `word` (case-insensitive), or `None` when it is no label."""
        key = str(word).strip().lower()
        return self.labels.index(key) if key in self.labels else None
