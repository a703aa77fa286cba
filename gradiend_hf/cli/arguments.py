"""Configuration dataclasses shared by the subcommands; `HfArgumentParser` reads them from YAML, JSON or flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base_models import DTYPES
from ..checks import check_number, check_positive
from ..errors import GradiendError
from ..objectives import OBJECTIVES, objective_class


@dataclass
class ModelArguments:
    """Which base model, and which of its parameters the GRADIEND covers."""

    base_model: str = field(
        default="HuggingFaceTB/SmolLM2-135M-Instruct",
        metadata={"help": "Hub id or local folder of the base model (the default is available offline)."},
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer id or folder (default: the base model's)."}
    )
    revision: str | None = field(default=None, metadata={"help": "Revision of the base model on the Hub."})
    objective: str | None = field(
        default=None,
        metadata={
            "help": "masked_lm, causal_lm, seq2seq_lm or causal_lm_cloze (the word in the blank, the loss also on the "
            "text after it); masked_lm, causal_lm or seq2seq_lm is detected from the model when not given; "
            "causal_lm_mlm_head (with --mlm_head) reads a decoder through an MLM head."
        },
    )
    right_window: int | None = field(
        default=None,
        metadata={
            "help": "causal_lm_cloze only: tokens after the word that count in the loss (-1 or unset: all of them)."
        },
    )
    mlm_head: str | None = field(
        default=None,
        metadata={
            "help": "Folder or Hub id of an MLM head of the base model (`gradiend_hf.mlm_head.train_mlm_head`): the "
            "GRADIEND is trained through it (objective causal_lm_mlm_head)."
        },
    )
    params: list[str] | None = field(
        default=None,
        metadata={"help": "Parameter names or * patterns the GRADIEND covers (default: the whole backbone)."},
    )
    latent_dim: int = field(default=1, metadata={"help": "Number of feature values."})
    dtype: str = field(default="float32", metadata={"help": "dtype of the base model: float32, bfloat16, float16."})

    def __post_init__(self):
        # Never a silent switch to another objective: "masked" or "mlm" must not train a causal LM.
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise GradiendError(f"Unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        if self.mlm_head is not None:
            if self.objective not in (None, "causal_lm_mlm_head"):
                raise GradiendError(
                    f"`mlm_head` trains through the objective causal_lm_mlm_head, not {self.objective!r}; drop one."
                )
            self.objective = "causal_lm_mlm_head"
        elif self.objective == "causal_lm_mlm_head":
            raise GradiendError("The objective causal_lm_mlm_head needs its head: pass `mlm_head` (folder or Hub id).")
        if self.right_window is not None:
            if self.objective is None or "right_window" not in objective_class(self.objective).option_names:
                chosen = self.objective or "the detected objective"
                raise GradiendError(
                    f"`right_window` is an option of `objective: causal_lm_cloze`, not of {chosen}; set that "
                    "objective or drop `right_window`."
                )
            objective_class(self.objective).check_options({"right_window": self.right_window})
        if self.dtype not in DTYPES:
            raise GradiendError(f"Unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}.")
        check_positive(self.latent_dim, "latent_dim", integer=True)


@dataclass
class DataArguments:
    """Where the feature rows come from."""

    dataset: str = field(
        default="gender-en",
        metadata={
            "help": "A built-in dataset (gender-en, pronoun-number-en), a local file or folder of text/CSV/JSONL/"
            "parquet, or a Hub dataset id."
        },
    )
    classes: dict | str | None = field(
        default=None,
        metadata={"help": 'Class name → words, e.g. {"M": ["he"], "F": ["she"]}; needed for raw text.'},
    )
    paired: bool = field(
        default=False,
        metadata={
            "help": "The class lists are aligned word forms (he/she, him/her, his/her): each word's alternative is its "
            "counterpart. Raw text only."
        },
    )
    pairs: list | str | None = field(
        default=None,
        metadata={
            "help": 'An explicit table of word forms instead, e.g. [["he", "she"], ["his", "her"]]. Raw text only.'
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column with raw text in CSV/JSONL/parquet files."})
    neutral: str | None = field(
        default="neutral-en", metadata={"help": "Neutral text: built-in name, file or Hub id; 'none' to skip."}
    )
    min_left_context_words: int | None = field(
        default=None, metadata={"help": "Words before the blank (default: 10 for causal LMs, 0 for masked LMs)."}
    )
    max_rows_per_class: int | None = field(default=None, metadata={"help": "Cap rows per class."})
    split_by: str = field(default="row", metadata={"help": "row or word (held-out target words)."})

    def __post_init__(self):
        if self.split_by not in ("row", "word"):
            raise GradiendError(f"Unknown split_by {self.split_by!r}; choose 'row' or 'word'.")
        check_number(
            self.min_left_context_words, "min_left_context_words", lambda v: v >= 0, "an integer >= 0", True, True
        )
        check_positive(self.max_rows_per_class, "max_rows_per_class", integer=True, optional=True)
