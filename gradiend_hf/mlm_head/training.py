"""[`train_mlm_head`]: trains an [`MLMHeadModel`] on a frozen decoder with a `transformers.Trainer` of its own.

The decoder is frozen and in eval mode, so each row's pooled hidden states are the same in every epoch: they are
computed once (one forward pass per batch of rows) and the Trainer fits the linear head on them with the reference's
recipe: cross-entropy, AdamW with learning rate 1e-4 (constant), 5 epochs, batch size 4, weights N(0, 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

from ..objectives import CausalLMMLMHeadObjective, default_mask_token
from ..training_data import GradiendDataError
from .configuration import MLMHeadConfig
from .modeling import MLMHeadModel
from .objective import mlm_head_objective


@dataclass
class MLMHeadTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the reference's defaults for the MLM head, and how the head reads the decoder.

    Args:
        pooling_length (`int`, *optional*, defaults to 3): Positions averaged from the mask token on.
        mask_token (`str`, *optional*): The token marking the blank (an existing single token); by default the
            tokenizer's mask token, else its end, start or unknown token that is not the model's padding token.
        max_eval_rows (`int`, *optional*): At most this many held-out rows for the accuracy.
        other fields: As for `TrainingArguments`; learning rate 1e-4 (constant), 5 epochs, batch size 4, weight decay
            0.01 (torch's AdamW), no checkpoints or logs.
    """

    pooling_length: int = field(default=3, metadata={"help": "Positions averaged from the mask token on."})
    mask_token: str | None = field(default=None, metadata={"help": "Token marking the blank (existing, single)."})
    max_eval_rows: int | None = field(default=None, metadata={"help": "At most this many held-out rows."})
    learning_rate: float = field(default=1e-4)
    num_train_epochs: float = field(default=5.0)
    per_device_train_batch_size: int = field(default=4)
    per_device_eval_batch_size: int = field(default=32)
    weight_decay: float = field(default=0.01)
    # The types as TrainingArguments gives them, so HfArgumentParser reads them the same way.
    lr_scheduler_type: SchedulerType | str = field(default="constant")
    save_strategy: SaveStrategy | str = field(default="no")
    logging_strategy: IntervalStrategy | str = field(default="no")


@dataclass
class MLMHeadTrainingResult:
    """What [`train_mlm_head`] returns.

    Attributes:
        head ([`MLMHeadModel`]): The trained head, saved in `args.output_dir`.
        accuracy (`float`): Held-out accuracy of the head on the evaluation rows.
        chance (`float`): Accuracy of always predicting the most frequent label of the evaluation rows.
        eval_rows (`int`): How many rows the accuracy is measured on.
    """

    head: MLMHeadModel
    accuracy: float
    chance: float
    eval_rows: int


class _Pooled(torch.utils.data.Dataset):
    def __init__(self, pooled: torch.Tensor, labels: torch.Tensor):
        self.pooled, self.labels = pooled, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pooled": self.pooled[index], "labels": self.labels[index]}


def _split(dataset, eval_dataset):
    if hasattr(dataset, "keys") and "train" in dataset:
        if eval_dataset is None:
            eval_dataset = next((dataset[name] for name in ("validation", "test") if name in dataset), None)
        dataset = dataset["train"]
    if eval_dataset is None:
        raise GradiendDataError(
            "`train_mlm_head` measures the head on held-out rows: pass a DatasetDict with a `validation` (or `test`) "
            "split, or `eval_dataset`."
        )
    return dataset, eval_dataset


def _labels_of(rows) -> tuple[list[str], dict[str, str]]:
    """The label words (lower-cased factual and alternative words, by class and then alphabetically) and their
    classes."""
    classes: dict[str, str] = {}
    pairs = [(rows["factual"], rows["factual_class"])]
    if "alternative" in rows.column_names and "alternative_class" in rows.column_names:
        pairs.append((rows["alternative"], rows["alternative_class"]))
    for words, word_classes in pairs:
        for word, cls in zip(words, word_classes):
            classes.setdefault(str(word).strip().lower(), str(cls))
    order = list(dict.fromkeys(rows["factual_class"]))
    labels = sorted(classes, key=lambda w: (order.index(classes[w]) if classes[w] in order else len(order), w))
    return labels, classes


@torch.no_grad()
def pooled_features(
    base_model: nn.Module, objective: CausalLMMLMHeadObjective, masked, words, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled hidden states `(rows, hidden)` (float32, CPU) of the rows and the label index of each row's word."""
    was_training = base_model.training
    base_model.eval()
    pooled, labels = [], []
    try:
        for start in range(0, len(masked), batch_size):
            chunk, chunk_words = list(masked[start : start + batch_size]), list(words[start : start + batch_size])
            batch = objective.prepare(chunk, chunk_words).to(base_model.device)
            pooled.append(objective.pooled_hidden_states(base_model, batch).float().cpu())
            labels.append(batch.target_ids[batch.target_slots == 0].cpu())
    finally:
        base_model.train(was_training)
    return torch.cat(pooled), torch.cat(labels)


def train_mlm_head(
    base_model: nn.Module,
    tokenizer,
    dataset,
    args: MLMHeadTrainingArguments | None = None,
    eval_dataset=None,
) -> MLMHeadTrainingResult:
    """Trains an MLM head on a frozen decoder-only model and saves it in `args.output_dir`.

    Args:
        base_model (`PreTrainedModel`): The decoder (a causal LM); it is not changed.
        tokenizer: Its fast tokenizer.
        dataset (`datasets.DatasetDict` or `datasets.Dataset`): Feature rows (`masked`, `factual`,
            `factual_class`, optionally `alternative`, `alternative_class`); every distinct factual or alternative
            word (lower-cased) is a label, and the head learns from the factual words. A `DatasetDict` gives its
            `train` split and its `validation` (else `test`) split for the held-out accuracy.
        args ([`MLMHeadTrainingArguments`], *optional*): Defaults to the reference's recipe in `mlm-head`.
        eval_dataset (`datasets.Dataset`, *optional*): Held-out rows (instead of the dataset's split).

    Returns:
        [`MLMHeadTrainingResult`]: the head (saved), its held-out accuracy and the majority-label accuracy.

    Raises:
        [`GradiendDataError`]: without held-out rows, or with held-out words that are no label.
        [`ObjectiveError`]: for rows the head cannot read (no `[MASK]`, a mask token the tokenizer splits).
    """
    args = args or MLMHeadTrainingArguments("mlm-head")
    train_rows, eval_rows = _split(dataset, eval_dataset)
    if args.max_eval_rows is not None:
        eval_rows = eval_rows.select(range(min(args.max_eval_rows, len(eval_rows))))
    labels, label_classes = _labels_of(train_rows)
    config = getattr(base_model, "config", None)
    torch.manual_seed(args.seed)
    head = MLMHeadModel(
        MLMHeadConfig(
            base_model_name_or_path=getattr(config, "_name_or_path", None) or None,
            labels=labels,
            hidden_size=config.hidden_size,
            pooling_length=args.pooling_length,
            mask_token=args.mask_token or default_mask_token(tokenizer, base_model),
            label_classes=label_classes,
        )
    )
    objective = mlm_head_objective(head, tokenizer, base_model)
    unknown = sorted({w.lower() for w in eval_rows["factual"]} - set(labels))
    if unknown:
        raise GradiendDataError(f"The held-out words {unknown} are no label of the training rows {labels}.")
    size = args.per_device_eval_batch_size
    train = pooled_features(base_model, objective, train_rows["masked"], train_rows["factual"], size)
    held_out = pooled_features(base_model, objective, eval_rows["masked"], eval_rows["factual"], size)
    Trainer(model=head, args=args, train_dataset=_Pooled(*train)).train()
    head.eval()
    with torch.no_grad():
        predicted = head(pooled=held_out[0].to(head.device)).logits.argmax(-1).cpu()
    accuracy = float((predicted == held_out[1]).double().mean())
    chance = float(torch.bincount(held_out[1]).max() / len(held_out[1]))
    head.config.training_summary = {
        "eval_accuracy": accuracy,
        "majority_accuracy": chance,
        "eval_rows": len(held_out[1]),
        "train_rows": len(train[1]),
        "epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.per_device_train_batch_size,
    }
    head.save_pretrained(args.output_dir)
    return MLMHeadTrainingResult(head=head, accuracy=accuracy, chance=chance, eval_rows=len(held_out[1]))
