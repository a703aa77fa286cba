"""The workloads both packages run, with the same model, data, steps and evaluation sizes.

Row caps are per feature class (`None` = every row of the split). The reference's in-training evaluation cap
(`encoder_eval_train_max_size`) is per feature class; gradiend-hf's `eval_max_rows` counts all rows, so the runner
passes twice the cap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """One benchmark workload.

    Args:
        name (`str`): Name used on the command line and in the table.
        model (`str`): Model name in `models.json` (`tiny-bert`, `bert-base-random`, `smollm2-135m`).
        learning_rate (`float`): GRADIEND learning rate (AdamW, constant).
        steps (`int`): Training steps (one gradient of `sentences_per_gradient` sentences each).
        sentences_per_gradient (`int`): The reference's `train_batch_size`.
        eval_steps (`int`, *optional*): In-training evaluation cadence (also at step 0 and the last step); `None`
            turns in-training evaluation off.
        train_eval_rows (`int`, *optional*): Validation rows per class at each in-training evaluation.
        encoder_eval (`bool`): Run the test-split encoder evaluation.
        encoder_rows (`int`, *optional*): Test rows per class (and per neutral row type, see the runners).
        decoder_eval (`bool`): Run the decoder grid and the rewrite.
        decoder_class (`str`): Class the decoder grid strengthens (policy `lms_threshold`).
        decoder_rows (`int`, *optional*): Test rows per class scored at each grid point.
        lms_texts (`int`, *optional*): Neutral texts of the language-modelling score.
        reference_objective (`str`): The reference's `prediction_objective`.
    """

    name: str
    model: str
    learning_rate: float
    steps: int
    sentences_per_gradient: int = 8
    eval_steps: int | None = None
    train_eval_rows: int | None = None
    encoder_eval: bool = True
    encoder_rows: int | None = None
    decoder_eval: bool = True
    decoder_class: str = "F"
    decoder_rows: int | None = None
    lms_texts: int | None = None
    reference_objective: str = "auto"
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Workload:
        return cls(**values)


WORKLOADS = {
    # Tiny BERT (hidden 64, 2 layers, 2.05 M backbone parameters): the end-to-end run to test with (a few minutes).
    "tiny": Workload("tiny", "tiny-bert", learning_rate=1e-3, steps=100, eval_steps=25),
    # bert-base-sized random BERT (108.9 M): training throughput and memory only, as the reference's workload.
    "bertbase": Workload(
        "bertbase", "bert-base-random", learning_rate=1e-5, steps=10, encoder_eval=False, decoder_eval=False
    ),
    # SmolLM2-135M (all 134.5 M parameters), next-token objective; lr 1e-3 is the reference setting that converges
    # (test r 0.9998), the one issue 18's table was measured with. Small evaluation caps keep the reference's run
    # at ~22 minutes on 2 cores.
    "smollm2": Workload(
        "smollm2",
        "smollm2-135m",
        learning_rate=1e-3,
        steps=20,
        eval_steps=10,
        train_eval_rows=10,
        encoder_rows=20,
        reference_objective="clm_next_token",
    ),
}

# Workload fields a command-line flag may override (`--steps`, `--learning-rate`, …).
OVERRIDABLE = (
    "steps",
    "learning_rate",
    "sentences_per_gradient",
    "eval_steps",
    "train_eval_rows",
    "encoder_rows",
    "decoder_rows",
    "lms_texts",
)


def resolve(names: list[str], overrides: dict) -> list[Workload]:
    """The named workloads (`all` = every one) with `overrides` (only the flags given) applied to each."""
    picked = list(WORKLOADS) if "all" in names else list(dict.fromkeys(names))
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not workload fields: {sorted(unknown)}")
    return [dataclasses.replace(WORKLOADS[name], **overrides) for name in picked]
