"""`gradiend-hf train CONFIG.yaml`: train a GRADIEND on a base model and feature data, save it with its card.

Runs under `accelerate launch -m gradiend_hf.cli.train CONFIG.yaml` too (one process per GPU).
"""

from __future__ import annotations

import json
import os

import torch

from ..base_models import load_base_config, load_base_model
from ..data import load_feature_data
from ..errors import GradiendError
from ..mlm_head import mlm_head_objective
from ..modeling_gradiend import GradiendModel
from ..objectives import objective_class, objective_of_config
from ..trainer import GradiendTrainer, check_fresh_output, resolve_checkpoint
from ..training_args import GradiendTrainingArguments
from .arguments import DataArguments, ModelArguments
from .errors import user_errors
from .parsing import parse_config


def parse_classes(classes):
    """The `classes` of a config: a mapping as it is, a JSON string (a command-line flag) decoded."""
    return _parse_json(classes, "classes", dict, '{"M": ["he"], "F": ["she"]}')


def parse_pairs(pairs):
    """The `pairs` table of a config: a list as it is, a JSON string (a command-line flag) decoded."""
    return _parse_json(pairs, "pairs", list, '[["he", "she"], ["his", "her"]]')


def _parse_json(value, name: str, kind: type, example: str):
    if value is None or isinstance(value, kind):
        return value
    try:
        decoded = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        decoded = None
    if not isinstance(decoded, kind):
        raise GradiendError(f"`{name}` must be a {kind.__name__} like {example}, got {value!r}")
    return decoded


def load_feature_rows(model_args: ModelArguments, data_args: DataArguments, seed: int):
    """The objective the base model's config names and the feature rows of the config; returns `(objective, data)`.

    Reads only the base model's config, so a mistake in the data surfaces before minutes of model loading.
    """
    base_config = load_base_config(model_args.base_model, model_args.revision)
    objective = model_args.objective or objective_of_config(base_config)
    min_left = data_args.min_left_context_words
    if min_left is None:
        min_left = objective_class(objective).default_left_context_words
    data = load_feature_data(
        data_args.dataset,
        classes=parse_classes(data_args.classes),
        text_column=data_args.text_column,
        min_left_context_words=min_left,
        max_rows_per_class=data_args.max_rows_per_class,
        split_by=data_args.split_by,
        seed=seed,
        paired=data_args.paired,
        pairs=parse_pairs(data_args.pairs),
    )
    return objective, data


def load_base(model_args: ModelArguments, objective: str):
    """The base model and tokenizer a config names; returns `(base, tokenizer)`."""
    return load_base_model(
        model_args.base_model,
        objective=objective,
        revision=model_args.revision,
        dtype=model_args.dtype,
        tokenizer=model_args.tokenizer,
    )


def objective_kwargs(model_args: ModelArguments) -> dict:
    """What `GradiendModel.from_base_model` records of the objective a config names (nothing: detected)."""
    if model_args.objective is None:
        return {}
    options = {"right_window": model_args.right_window} if model_args.right_window is not None else None
    return {"objective": model_args.objective, "objective_options": options}


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args: GradiendTrainingArguments):
    """Loads everything a config names, trains, saves; returns `(trainer, gradiend, base, tokenizer, data)`."""
    # Checkpoints, the base model's config and the data first: a mistake in them should surface before minutes of
    # model loading.
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if checkpoint is None:
        check_fresh_output(training_args)
    objective, data = load_feature_rows(model_args, data_args, training_args.seed)
    base, tokenizer = load_base(model_args, objective)
    torch.manual_seed(training_args.seed)
    gradiend = GradiendModel.from_base_model(
        base,
        params=model_args.params,
        latent_dim=model_args.latent_dim,
        base_model_revision=model_args.revision,
        **objective_kwargs(model_args),
    )
    gradiend.config.base_model_name_or_path = model_args.base_model
    # Only the MLM head objective needs more than the base model to be built; the others are detected.
    head = mlm_head_objective(model_args.mlm_head, tokenizer, base) if model_args.mlm_head else None
    trainer = GradiendTrainer(gradiend, base, training_args, data, processing_class=tokenizer, objective=head)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    return trainer, gradiend, base, tokenizer, data


def main(argv: list[str] | None = None) -> None:
    with user_errors("train"):
        model_args, data_args, training_args = parse_config(
            (ModelArguments, DataArguments, GradiendTrainingArguments), argv, "gradiend-hf train"
        )
        trainer, gradiend, *_ = run_training(model_args, data_args, training_args)
        if trainer.is_world_process_zero():
            summary = gradiend.config.training_summary
            print(
                f"Saved the GRADIEND to {os.path.abspath(training_args.output_dir)}: best correlation "
                f"{summary.get('best_correlation', float('nan')):.3f} at step {summary.get('best_step')}, "
                f"converged: {summary.get('converged')}."
            )


if __name__ == "__main__":
    main()
