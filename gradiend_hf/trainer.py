"""[`GradiendTrainer`]: trains a GRADIEND with `transformers.Trainer` on the gradients of a frozen base model."""

from __future__ import annotations

import glob
import json
import math
import os
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate.utils import gather_object
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .errors import GradiendError, GradiendTrainingError, NonFiniteError
from .evaluation.metrics import encoder_metrics
from .evaluation.prefix_cache import PrefixForLastInput
from .gradients import encode_texts, group_gradients, share_no_memory, stack_gradients
from .hub import push_gradiend
from .model_card import write_gradiend_card
from .modeling_gradiend import TRAINING_ARGS_NAME, GradiendModel
from .objectives import Objective, gradiend_objective
from .optimizer_in_backward import OptimizerInBackwardMixin
from .params import GradiendParameterError
from .sharding import unsharded
from .snapshots import SNAPSHOT_NAME, check_snapshot, read_snapshot, restore_snapshot
from .trainer_callbacks import (
    BestGradiendCallback,
    ConvergenceCallback,
    EvaluateAtEndCallback,
    SignNormalizationCallback,
)
from .trainer_sharding import ShardedGradiendMixin
from .training_args import GradiendTrainingArguments
from .training_data import (
    GradiendDataCollator,
    GradiendDataError,
    GroupedFeatureDataset,
    check_feature_rows,
    check_usable_rows,
    feature_classes_of,
)


logger = logging.get_logger(__name__)

# The evaluation rows' hidden states below the first covered layer kept between evaluations: at most this much.
EVAL_PREFIX_BYTES = 256 * 2**20


class GradiendTrainer(OptimizerInBackwardMixin, ShardedGradiendMixin, Trainer):
    r"""
    Trains a [`GradiendModel`] on the gradients of a frozen base language model.

    Each training item is a group of `sentences_per_gradient` rows of one transition (e.g. he→she); the base model's
    source and target gradients of that group (one forward pass, `torch.autograd.grad`) are the GRADIEND's input and
    reconstruction target, and the loss is their mean squared reconstruction error. Evaluation encodes every
    validation row with batched forward-mode AD and reports `eval_correlation` (Pearson between the expected sign
    and the encoding), the mean encoding per class and the sign accuracy.

    The base model is frozen, kept in eval mode, placed on the device by accelerate without DDP, and never saved,
    optimised or wrapped. Under `accelerate launch` each process computes the gradients of its own groups and the
    Trainer's DDP averages the GRADIEND's gradients; with `shard_gradiend=True` the GRADIEND is sharded over the
    processes with FSDP2 instead (see [`gradiend_hf.sharding`]) and gathered whole for saving. In a single process
    AdamW steps each GRADIEND parameter inside the backward pass and frees its gradient at once (see
    [`gradiend_hf.optimizer_in_backward`]), and the loss writes its residuals over the target gradients: the same
    training, bit for bit, with about 5 bytes per GRADIEND weight less at the peak.

    Args:
        model ([`GradiendModel`]): The GRADIEND to train; it must cover parameters of `base_model`.
        base_model (`PreTrainedModel`): The masked or causal LM whose gradients are read.
        args ([`GradiendTrainingArguments`], *optional*): Training arguments.
        train_dataset (`datasets.Dataset` or `datasets.DatasetDict`): Feature rows (`masked`, `factual`,
            `alternative`, `factual_class`, `alternative_class`); a `DatasetDict` gives its `train` split and, when
            `eval_dataset` is not given, its `validation` split.
        eval_dataset (`datasets.Dataset`, *optional*): Validation rows for the correlation.
        processing_class (`PreTrainedTokenizerBase`): The base model's tokenizer (a fast one).
        objective ([`Objective`], *optional*): How the base model is scored; detected from `base_model` by default.
            Give one to train through another objective (e.g. `gradiend_hf.mlm_head.mlm_head_objective(head,
            tokenizer)`); the GRADIEND's config records its name and what it needs to be rebuilt.
        callbacks (`list[TrainerCallback]`, *optional*): Extra callbacks.

    Example:

    ```python
    >>> gradiend = GradiendModel.from_base_model(base, params=["*.layer.11.*"])
    >>> trainer = GradiendTrainer(model=gradiend, base_model=base, processing_class=tokenizer,
    ...                           args=GradiendTrainingArguments("out", max_steps=200, learning_rate=1e-4),
    ...                           train_dataset=load_builtin("gender-en"))
    >>> trainer.train()
    >>> trainer.evaluate()["eval_correlation"]
    ```
    """

    _tag_names = ["gradiend", "gradiend-hf"]

    def __init__(
        self,
        model: GradiendModel,
        base_model: nn.Module,
        args: GradiendTrainingArguments | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks: list | None = None,
        objective: Objective | None = None,
        **kwargs: Any,
    ):
        if not isinstance(model, GradiendModel):
            raise TypeError(f"`model` must be a GradiendModel, got {type(model).__name__}.")
        if processing_class is None:
            raise GradiendError("Pass the base model's tokenizer as `processing_class`.")
        try:
            model.check_base_model(base_model)
        except GradiendParameterError as error:
            raise GradiendParameterError(f"This GRADIEND does not belong to the given base model: {error}") from None
        args = args or GradiendTrainingArguments(output_dir="gradiend-output")
        if hasattr(train_dataset, "keys") and "train" in train_dataset:
            splits = train_dataset
            train_dataset = splits["train"]
            if eval_dataset is None and "validation" in splits:
                eval_dataset = splits["validation"]
        check_feature_rows(train_dataset)
        if eval_dataset is not None:
            check_feature_rows(eval_dataset, "eval_dataset")

        # The objective given (e.g. through an MLM head), else the one the GRADIEND's config records (e.g.
        # causal_lm_cloze), detected when it names none.
        self.objective = (
            objective if objective is not None else gradiend_objective(model.config, base_model, processing_class)
        )
        if objective is not None:
            model.config.objective = objective.name
            for key, value in objective.config_fields().items():
                setattr(model.config, key, value)
        # Nothing is dropped: a row the tokenizer cannot represent is an error before anything is trained.
        check_usable_rows(train_dataset, self.objective, "training")
        if eval_dataset is not None:
            check_usable_rows(eval_dataset, self.objective, "evaluation")
        self._sync_config(model, args, train_dataset)
        self.base_model = base_model
        for param in base_model.parameters():
            param.requires_grad_(False)
        base_model.eval()

        self._shard_if_asked(model, args)
        groups = GroupedFeatureDataset(train_dataset, args.sentences_per_gradient, seed=args.seed)
        self.feature_rows = {"train": train_dataset, "eval": eval_dataset}
        if eval_dataset is None and args.eval_strategy != "no":
            args.eval_strategy = "no"
            args.eval_on_start = False
        super().__init__(
            model=model,
            args=args,
            data_collator=GradiendDataCollator(self.objective),
            train_dataset=groups,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            **kwargs,
        )
        # The base model only feeds gradients: placed on the device, never wrapped in DDP or optimised.
        self.base_model = self.accelerator.prepare_model(base_model, evaluation_mode=True)
        self._after_init_sharding()
        self.can_return_loss = True
        # The evaluation rows' states below the first covered layer, kept from one evaluation to the next: the base
        # model does not change while the GRADIEND trains, and every evaluation encodes the same rows.
        self._eval_prefix = PrefixForLastInput(self.base_model, model.param_names, EVAL_PREFIX_BYTES)
        self.label_names = []
        self.model_accepts_loss_kwargs = False
        self.add_callback(EvaluateAtEndCallback())
        self.add_callback(SignNormalizationCallback())
        self.add_callback(BestGradiendCallback(self))
        self.add_callback(ConvergenceCallback(self))

    @staticmethod
    def _sync_config(model: GradiendModel, args: GradiendTrainingArguments, train_dataset) -> None:
        if args.source is not None:
            model.config.source = args.source
        if args.target is not None:
            model.config.target = args.target
        classes = feature_classes_of(train_dataset)
        # The words of each class, lower-cased, for cards, the app and the decoder evaluation of a loaded GRADIEND.
        words = defaultdict(set)
        values = train_dataset.select_columns(["factual_class", "factual"]).to_dict()  # not row by row: fast
        for cls, word in zip(values["factual_class"], values["factual"]):
            words[cls].add(word.lower())
        model.config.class_words = {cls: sorted(words[cls]) for cls in classes}
        if model.config.feature_classes is None:
            model.config.feature_classes = classes
            model.config.positive_class = classes[0]
        elif set(model.config.feature_classes) != set(classes):
            raise GradiendDataError(
                f"The GRADIEND's feature classes are {model.config.feature_classes} but the training rows have "
                f"{classes}. Build the GRADIEND with `feature_classes={classes}` or use matching data."
            )

    # ------------------------------------------------------------------ training

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """`Trainer.train`, refusing a checkpoint that does not exist and a fresh run over an earlier run's checkpoints.

        Args:
            resume_from_checkpoint (`str` or `bool`, *optional*): A checkpoint folder (`<output_dir>/checkpoint-N`), or
                `True` for the last checkpoint in `output_dir`. Defaults to `args.resume_from_checkpoint`.
            kwargs: As for `Trainer.train`.

        Raises:
            [`GradiendTrainingError`]: the checkpoint is missing or incomplete, or `output_dir` holds checkpoints of
                another run and this one would overwrite them.
        """
        if resume_from_checkpoint is None:
            resume_from_checkpoint = self.args.resume_from_checkpoint
        self.resumed_from = resolve_checkpoint(resume_from_checkpoint, self.args.output_dir)
        if self.resumed_from is None:
            check_fresh_output(self.args)
            return super().train(**kwargs)
        # The step-0 evaluation belongs to the start of the run, not of its continuation: at the checkpoint's step it
        # would be one more evaluation than the uninterrupted run had (a new best, a sign flip).
        eval_on_start, self.args.eval_on_start = self.args.eval_on_start, False
        try:
            return super().train(resume_from_checkpoint=self.resumed_from, **kwargs)
        finally:
            self.args.eval_on_start = eval_on_start

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Saves the GRADIEND and its training arguments as JSON (never a `training_args.bin` pickle), atomically.

        A sharded GRADIEND is gathered first (all processes call this) and written whole by the main process; then
        every process returns only once the folder is whole. The main process swaps the whole folder in, so a file
        another process wrote into it meanwhile (its own shard, a log) would end up in the folder swapped out. (Not
        sharded, only the main process need call this, as with transformers, so there is no barrier to wait at.)
        """
        gradiend = self.gradiend_to_save()
        if self.args.should_save:
            output_dir = output_dir if output_dir is not None else self.args.output_dir
            gradiend.save_pretrained(
                output_dir,
                state_dict=None if self.sharded else state_dict,
                json_files={TRAINING_ARGS_NAME: json.loads(self.args.to_json_string())},
            )
        if self.sharded:
            self.accelerator.wait_for_everyone()

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # transformers would upload the output folder with a pickled `training_args.bin`; push the GRADIEND instead.
        # A sharded GRADIEND is gathered by every process; only the main one uploads.
        if self.sharded or self.is_world_process_zero():
            self.push_to_hub(commit_message=f"Training in progress, step {self.state.global_step}")

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, **kwargs: Any):
        """Pushes the GRADIEND (weights, config, card; no pickle, no checkpoints) to `args.hub_model_id`; see
        [`gradiend_hf.hub.push_gradiend`]. Returns the commit (`None` on processes other than the main one).

        With `shard_gradiend=True` every process must call it (the GRADIEND is gathered); only the main one uploads.
        """
        repo_id = self.args.hub_model_id or os.path.basename(os.path.normpath(self.args.output_dir))
        gradiend = self.gradiend_to_save() if self.sharded else None
        if not self.is_world_process_zero():
            return None
        return push_gradiend(
            gradiend if gradiend is not None else self.accelerator.unwrap_model(self.model),
            repo_id,
            revision=kwargs.get("revision", self.args.hub_revision),
            private=self.args.hub_private_repo,
            token=kwargs.get("token", self.args.hub_token),
            commit_message=commit_message,
        )

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        # The reference applies weight decay to every GRADIEND parameter, biases included.
        return [name for name, _ in model.named_parameters()]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gradiend = self.accelerator.unwrap_model(model)
        source, target = gradiend.config.source, gradiend.config.target
        sources, targets = defaultdict(list), defaultdict(list)
        for group in inputs["groups"]:
            grads = group_gradients(self.base_model, self.objective, group, gradiend.param_names, (source, target))
            for name in gradiend.param_names:
                sources[name].append(grads[source][name])
                targets[name].append(grads[target][name])
        sources, targets = stack_gradients(sources), stack_gradients(targets)
        # The targets are this step's own tensors: the loss may write its residuals over them (exactly the same loss
        # and gradients, n entries less memory), unless two of them (or a source) share memory.
        private = share_no_memory([*sources.values(), *targets.values()])
        outputs = model(source_gradients=sources, target_gradients=targets, overwrite_targets=private)
        if not bool(torch.isfinite(outputs.loss)):
            step = self.state.global_step + 1
            raise NonFiniteError(
                f"The GRADIEND's loss is {float(outputs.loss)} at step {step}: training diverged (the learning rate "
                f"{self.args.learning_rate:g} is too large, or the base model's gradients are not finite). Lower the "
                "learning rate and train again."
            )
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Encodes validation rows (batched, no backward pass per row) and returns the encoder metrics.

        The metrics are those of [`gradiend_hf.evaluation.encoder_metrics`], under the same names: `correlation`,
        `accuracy` (ternary, boundaries ±0.5), `binary_accuracy` (sign) and the mean encoding of each class.

        Returns:
            `dict[str, float]` with `{prefix}_correlation`, `{prefix}_accuracy`, `{prefix}_binary_accuracy`,
            `{prefix}_mean_<class>` and `{prefix}_rows`.
        """
        dataset = eval_dataset if eval_dataset is not None else self.feature_rows["eval"]
        if dataset is None:
            raise GradiendDataError(
                "No evaluation rows: pass `eval_dataset` (or a DatasetDict with a validation split)."
            )
        check_feature_rows(dataset, "eval_dataset")
        rows = self._evaluation_rows(dataset)
        encodings = self.encode_rows(rows)
        config = self.accelerator.unwrap_model(self.model).config
        table = pd.DataFrame(
            {
                # Identity rows expect 0 and are reported apart; the correlation is the pair's.
                "type": ["identity" if r["factual_class"] == r["alternative_class"] else "training" for r in rows],
                "expected": [config.expected_encoding(r["factual_class"], r["alternative_class"]) for r in rows],
                "encoding": encodings[:, 0],
                "factual_class": [r["factual_class"] for r in rows],
                "alternative_class": [r["alternative_class"] for r in rows],
            }
        )
        found = encoder_metrics(table)
        metrics = {
            f"{metric_key_prefix}_{name}": float(found[name])
            for name in ("correlation", "accuracy", "binary_accuracy")
            if name in found
        }
        metrics[f"{metric_key_prefix}_rows"] = float(len(rows))
        identity = table[table["type"] == "identity"]
        if len(identity):
            metrics[f"{metric_key_prefix}_identity_mean"] = float(identity["encoding"].mean())
        for cls in config.feature_classes:
            metrics[f"{metric_key_prefix}_mean_{cls}"] = float(found["mean_by_class"].get(cls, float("nan")))
        # Callbacks may flip the GRADIEND's sign; log what describes the model after them.
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self.log(metrics)
        return metrics

    def _evaluation_rows(self, dataset) -> list[dict[str, Any]]:
        by_transition = defaultdict(list)
        for i in range(len(dataset)):
            row = dataset[i]
            by_transition[(row["factual_class"], row["alternative_class"])].append(row)
        cap = self.args.eval_max_rows
        per_transition = math.ceil(cap / len(by_transition)) if cap else None
        return [row for rows in by_transition.values() for row in rows[:per_transition]]

    @torch.no_grad()
    def encode_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Per-row encodings `(len(rows), latent_dim)`, split over the processes and gathered."""
        gradiend = self.accelerator.unwrap_model(self.model)
        was_training = gradiend.training
        gradiend.eval()
        with (
            self.accelerator.split_between_processes(rows, apply_padding=True) as shard,
            unsharded(self.model, encoder_only=True),
        ):
            texts = ([r["masked"] for r in shard], [r["factual"] for r in shard], [r["alternative"] for r in shard])
            with self._eval_prefix(texts):
                encodings = encode_texts(
                    gradiend, self.base_model, self.objective, *texts, self.args.per_device_eval_batch_size
                )
            local = encodings.tolist()
        gradiend.train(was_training)
        gathered = gather_object(local) if self.accelerator.num_processes > 1 else local
        return np.asarray(gathered[: len(rows)], dtype=np.float64).reshape(len(rows), -1)

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """Writes the GRADIEND's card (not transformers' generic trainer card) into `output_dir`."""
        if not self.is_world_process_zero():
            return
        keep = ("learning_rate", "max_steps", "num_train_epochs", "sentences_per_gradient", "seed", "weight_decay")
        write_gradiend_card(
            self.accelerator.unwrap_model(self.model),
            self.args.output_dir,
            training_args={k: getattr(self.args, k) for k in keep},
        )

    # ------------------------------------------------------------------ snapshots of the best GRADIEND

    def save_gradiend_snapshot(self, directory: str) -> None:
        """Writes the current GRADIEND to `directory` atomically, with the step it was taken at (`snapshot.json`)."""
        gradiend = self.gradiend_to_save()  # gathered by every process when sharded
        if self.args.should_save:
            record = {"global_step": self.state.global_step, "best_metric": self.state.best_metric}
            gradiend.save_pretrained(directory, json_files={SNAPSHOT_NAME: record})
        self.accelerator.wait_for_everyone()

    def check_gradiend_snapshot(self, directory: str, step: int | None = None) -> None:
        """Checks that a snapshot is whole, was taken at `step` and holds this GRADIEND's tensors (without reading
        its weights where the GRADIEND is not sharded)."""
        if self.sharded:
            read_snapshot(directory, step)
        else:
            check_snapshot(self.accelerator.unwrap_model(self.model), directory, step)

    def load_gradiend_snapshot(self, directory: str, step: int | None = None) -> None:
        """Restores the GRADIEND from a snapshot, checking that it is whole and was taken at `step`."""
        model = self.accelerator.unwrap_model(self.model)
        if self.sharded:  # every process loads the whole snapshot and keeps its shard
            best = read_snapshot(directory, step)
            self.load_whole_gradiend(best.state_dict())
            config = best.config
        else:  # tensor by tensor into the model: never a second GRADIEND next to the optimizer's moments
            config = restore_snapshot(model, directory, step)
        model.config.positive_class = config.positive_class


def check_fresh_output(args) -> None:
    """Refuses a fresh run that would overwrite the checkpoints an earlier run left in `args.output_dir`.

    Raises:
        [`GradiendTrainingError`]
    """
    if args.save_strategy == "no":
        return
    earlier = sorted(glob.glob(os.path.join(glob.escape(args.output_dir), f"{PREFIX_CHECKPOINT_DIR}-*")))
    if earlier:
        raise GradiendTrainingError(
            f"{args.output_dir!r} holds checkpoints of an earlier run ({os.path.basename(earlier[-1])}), which this "
            "fresh run would overwrite. Continue it with `resume_from_checkpoint=True` (--resume_from_checkpoint "
            "true), or train into another output_dir."
        )


def resolve_checkpoint(checkpoint: str | bool | None, output_dir: str) -> str | None:
    """The checkpoint folder to resume from (`True`/`"true"`/`"last"`: the last one in `output_dir`), checked.

    Raises:
        [`GradiendTrainingError`]: the checkpoint does not exist or is not a whole checkpoint.
    """
    if checkpoint in (None, False) or (isinstance(checkpoint, str) and checkpoint.lower() in ("", "false", "no")):
        return None
    if checkpoint is True or (isinstance(checkpoint, str) and checkpoint.lower() in ("true", "last", "yes")):
        found = sorted(
            glob.glob(os.path.join(glob.escape(output_dir), f"{PREFIX_CHECKPOINT_DIR}-*")),
            key=lambda path: int(path.rsplit("-", 1)[-1]) if path.rsplit("-", 1)[-1].isdigit() else -1,
        )
        if not found:
            raise GradiendTrainingError(
                f"There is no checkpoint in {output_dir!r} to resume from. Give a checkpoint folder, or start a fresh "
                "run without `resume_from_checkpoint`."
            )
        checkpoint = found[-1]
    checkpoint = os.fspath(checkpoint)
    if not os.path.isdir(checkpoint):
        raise GradiendTrainingError(
            f"The checkpoint {checkpoint!r} to resume from does not exist. Give a folder like "
            f"{os.path.join(output_dir, 'checkpoint-100')!r}, or `True` for the last one."
        )
    missing = [
        name for name in ("trainer_state.json", "config.json") if not os.path.isfile(os.path.join(checkpoint, name))
    ]
    if missing:
        raise GradiendTrainingError(
            f"{checkpoint!r} is not a whole training checkpoint (no {', '.join(missing)}); resume from another one."
        )
    return checkpoint
