"""Training arguments of [`GradiendTrainer`]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from transformers import TrainingArguments

from .artefacts import KIND_GRADIEND, KIND_SUITE, check_output_folder, folder_kind
from .checks import check_number, check_positive
from .configuration_gradiend import GRADIENT_KINDS
from .errors import GradiendError, GradiendSaveError
from .shard_groups import SHARD_GROUPINGS


@dataclass
class GradiendTrainingArguments(TrainingArguments):
    r"""
    [`GradiendTrainer`]'s arguments: every [`~transformers.TrainingArguments`] field plus the GRADIEND ones below.

    The defaults reproduce the reference `gradiend` package: AdamW (the fused kernel) with learning rate 1e-5, weight
    decay 0.01 (on every GRADIEND parameter), eps 1e-8, no gradient clipping, a constant learning rate, the MSE
    reconstruction loss, 32 sentences per
    gradient, one gradient per optimizer step, three epochs, an evaluation before the first step and every 250 steps,
    and groups seen in a fixed, transition-alternating order.

    > Parameters that control the gradients

        sentences_per_gradient (`int`, *optional*, defaults to 32):
            Number of masked sentences of one transition (e.g. he→she) whose mean loss gives one gradient. The
            reference package calls this `train_batch_size`; `per_device_train_batch_size` is the number of such
            gradients per optimizer step.
        source (`str`, *optional*):
            Gradient the encoder reads (`"factual"`, `"alternative"`, `"diff"`). `None` keeps the GRADIEND's config
            (default `"alternative"`); a value here is written into the config.
        target (`str`, *optional*):
            Gradient the decoder reconstructs; `None` keeps the config (default `"diff"`).

    > Parameters that control sharding

        shard_gradiend (`bool`, *optional*, defaults to `False`):
            Shard the GRADIEND's weights, gradients and AdamW state over the processes of a multi-process launch
            (`torchrun --nproc_per_node N` or `accelerate launch --multi_gpu --num_processes N`) with torch's FSDP2,
            for GRADIENDs larger than one device; the base model stays whole on every process. Saved GRADIENDs and
            checkpoints are whole (gathered), as without sharding. Refused in a single-process run.
        shard_groups (`str`, *optional*, defaults to `"layer"`):
            How a sharded GRADIEND is split into FSDP2 shard groups, which a step gathers one at a time: `"layer"`
            (one group per covered base layer; parameters outside numbered layers, such as embeddings, one group per
            consecutive run), `"bucket"` (groups of at most `shard_bucket_size` covered entries) or `"one"` (the
            whole GRADIEND is gathered for each step). The peak of a step grows with the largest group.
        shard_bucket_size (`int`, *optional*, defaults to 50,000,000):
            Covered base-parameter entries per group with `shard_groups="bucket"` (a larger parameter is a group of
            its own); each entry has `2 · latent_dim + 1` GRADIEND weights.

    > Parameters that control memory

        optimizer_in_backward (`bool`, *optional*):
            Step AdamW inside the backward pass, each GRADIEND parameter as soon as its gradient is complete, and free
            that gradient at once, so the GRADIEND's 3n gradients are never all held (on SmolLM2 over all parameters:
            about 1.6 GB less at the peak). The weights and AdamW state are the same as after the plain step. `None`
            (the default) uses it wherever it is exact: a torch AdamW (`optim`), no gradient clipping
            (`max_grad_norm=0`), no `fp16`, one process. `True` refuses any other setting; `False` turns it off.
            See [`gradiend_hf.optimizer_in_backward`].

    > Parameters that control evaluation and model selection

        eval_max_rows (`int`, *optional*, defaults to 512):
            At most this many validation rows (balanced over transitions) are encoded at each evaluation.
        normalize_sign (`bool`, *optional*, defaults to `True`):
            Flip the encoder and decoder signs when the validation correlation falls below `normalize_threshold`, so
            the positive class encodes to +1 (latent dimension 1 only).
        normalize_threshold (`float`, *optional*, defaults to -0.6):
            Correlation under which the sign is flipped.
        select_best (`bool`, *optional*, defaults to `True`):
            End training with the GRADIEND of the evaluation with the largest |correlation| after step 0.
        convergence_correlation (`float`, *optional*, defaults to 0.5):
            A run converged if the best |correlation| reaches this…
        convergence_class_mean (`float`, *optional*, defaults to 0.5):
            …, both classes' mean encodings reach this magnitude with opposite signs, and the best step is > 0.
        fail_on_non_convergence (`bool`, *optional*, defaults to `False`):
            Raise [`GradiendNotConvergedError`] at the end of a run that did not converge.
    """

    # What `output_dir` holds (a suite's arguments name the suite's folder, see `SuiteTrainingArguments`).
    output_kind: ClassVar[str] = KIND_GRADIEND

    sentences_per_gradient: int = field(
        default=32, metadata={"help": "Masked sentences of one transition whose mean loss gives one gradient."}
    )
    source: str | None = field(
        default=None,
        metadata={"help": "Gradient the encoder reads: factual, alternative or diff (default: the model's config)."},
    )
    target: str | None = field(
        default=None,
        metadata={"help": "Gradient the decoder reconstructs: factual, alternative or diff (default: the config)."},
    )
    shard_gradiend: bool = field(
        default=False,
        metadata={"help": "Shard the GRADIEND over the processes of a multi-process launch (FSDP2)."},
    )
    shard_groups: str = field(
        default="layer",
        metadata={"help": "Shard groups gathered one at a time: layer (per covered base layer), bucket or one."},
    )
    shard_bucket_size: int = field(
        default=50_000_000, metadata={"help": "Covered entries per shard group with shard_groups=bucket."}
    )
    optimizer_in_backward: bool | None = field(
        default=None,
        metadata={
            "help": "Step AdamW in the backward pass, freeing each gradient at once (default: wherever it is exact)."
        },
    )
    eval_max_rows: int | None = field(
        default=512, metadata={"help": "At most this many validation rows are encoded at each evaluation."}
    )
    normalize_sign: bool = field(
        default=True, metadata={"help": "Flip the GRADIEND's sign when the correlation is strongly negative."}
    )
    normalize_threshold: float = field(default=-0.6, metadata={"help": "Correlation under which the sign is flipped."})
    select_best: bool = field(
        default=True, metadata={"help": "End with the GRADIEND of the best |correlation| (never the step-0 one)."}
    )
    convergence_correlation: float = field(
        default=0.5, metadata={"help": "Best |correlation| needed for a run to count as converged."}
    )
    convergence_class_mean: float = field(
        default=0.5, metadata={"help": "|Mean encoding| each class needs (with opposite signs) to count as converged."}
    )
    fail_on_non_convergence: bool = field(
        default=False, metadata={"help": "Raise an error at the end of a run that did not converge."}
    )

    # Reference defaults for inherited fields.
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate of the GRADIEND."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (all GRADIEND parameters)."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Learning-rate schedule."})
    optim: str = field(
        default="adamw_torch_fused",
        metadata={"help": "Optimizer; the fused AdamW kernel updates the 3n GRADIEND parameters in one pass."},
    )
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping (0 = none, like the reference)."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Gradients per device per step."})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Rows per batched encoding pass."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: no, steps or epoch."})
    eval_steps: float | None = field(default=250, metadata={"help": "Evaluate every this many steps."})
    eval_on_start: bool = field(default=True, metadata={"help": "Evaluate before the first step (step 0)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every this many steps."})
    save_strategy: str = field(default="no", metadata={"help": "When to write checkpoints: no, steps or epoch."})
    train_sampling_strategy: str = field(
        default="sequential",
        metadata={"help": "Order of gradient groups: sequential alternates transitions like the reference."},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every dataset column."})

    def __post_init__(self):
        self._check_numbers()
        super().__post_init__()
        if self.shard_groups not in SHARD_GROUPINGS:
            raise GradiendError(
                f"Unknown shard_groups {self.shard_groups!r}; choose one of {', '.join(SHARD_GROUPINGS)} (`layer`: "
                "one group per covered base layer)."
            )
        for name in ("source", "target"):
            value = getattr(self, name)
            if value is not None and value not in GRADIENT_KINDS:
                raise GradiendError(f"Unknown {name} gradient {value!r}; choose one of {', '.join(GRADIENT_KINDS)}.")
        try:
            check_output_folder(self.output_dir, self.output_kind, what="output_dir")
        except GradiendSaveError as error:
            if self.output_kind == KIND_GRADIEND and folder_kind(self.output_dir) == KIND_SUITE:
                raise GradiendSaveError(
                    f"{error} To train or resume the suite, use `SuiteTrainingArguments`."
                ) from None
            raise

    def _check_numbers(self) -> None:
        """Refuses absurd or non-finite settings before anything is trained (an `inf` learning rate would train and
        save a `nan` GRADIEND)."""
        for name in ("learning_rate", "adam_epsilon"):
            check_positive(getattr(self, name), name)
        for name in ("weight_decay", "max_grad_norm", "warmup_ratio"):
            check_number(getattr(self, name, None), name, lambda v: v >= 0, "a finite number >= 0", optional=True)
        for name in ("adam_beta1", "adam_beta2"):
            check_number(getattr(self, name), name, lambda v: 0 <= v < 1, "a number in [0, 1)")
        for name in ("convergence_correlation", "convergence_class_mean"):
            check_number(getattr(self, name), name, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        check_number(self.normalize_threshold, "normalize_threshold", lambda v: -1 <= v <= 0, "a number in [-1, 0]")
        for name in (
            "sentences_per_gradient",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        ):
            check_positive(getattr(self, name), name, integer=True)
        check_positive(self.shard_bucket_size, "shard_bucket_size", integer=True)
        check_positive(self.eval_max_rows, "eval_max_rows", integer=True, optional=True)
        check_number(
            self.max_steps,
            "max_steps",
            lambda v: v >= 1 or v == -1,
            "a positive number of steps (or -1 to train for num_train_epochs)",
            integer=True,
        )
        if self.max_steps == -1:
            check_positive(self.num_train_epochs, "num_train_epochs")
        for name in ("eval_steps", "save_steps", "logging_steps"):
            check_positive(getattr(self, name), name, optional=True)


@dataclass
class SuiteTrainingArguments(GradiendTrainingArguments):
    """[`GradiendTrainingArguments`] of [`train_suite`], whose `output_dir` is the folder of a suite of GRADIENDs
    (each member trains in `output_dir/members/<name>`), so a suite can be resumed in its own folder."""

    output_kind: ClassVar[str] = KIND_SUITE
