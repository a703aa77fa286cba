"""`gradiend-hf suite CONFIG.yaml`: train a family of GRADIENDs (all pairs, one-vs-rest, merged groups) of one base
model on a feature dataset with more classes, with a report and figures. Resumable: run it again after an
interruption and the members already trained and converged are loaded, not retrained.

Runs under `accelerate launch -m gradiend_hf.cli.suite CONFIG.yaml` too (one process per GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..artefacts import KIND_SUITE, check_output_folder
from ..checks import check_positive
from ..data import feature_class_names
from ..data.view_specs import SPEC_HELP, views_from_specs
from ..modeling_gradiend import GradiendModel
from ..suite import member_datasets, train_suite
from ..training_args import SuiteTrainingArguments
from .arguments import DataArguments, ModelArguments
from .errors import user_errors
from .parsing import parse_config
from .train import load_base, load_feature_rows, objective_kwargs


@dataclass
class SuiteDataArguments(DataArguments):
    """Where the feature rows come from; a suite defaults to the five English pronoun classes."""

    dataset: str = field(
        default="pronouns-en",
        metadata={"help": "A built-in dataset with two or more classes (pronouns-en), a local file or a Hub id."},
    )


@dataclass
class SuiteArguments:
    """Which members the suite has and how they are evaluated."""

    # A config file may also give merged groups as mappings; a flag gives names only.
    config_types: ClassVar[dict] = {"members": list[str | dict]}

    members: list[str] = field(
        default_factory=lambda: ["pairs"],
        metadata={"help": f"The members: {SPEC_HELP}."},
    )
    identity: bool = field(default=False, metadata={"help": "Train pair members with identity rows (C→C, 0)."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Train every member with these seeds."})
    min_convergent: int = field(default=1, metadata={"help": "With seeds: stop after this many converged runs."})
    suite_eval_rows: int = field(default=64, metadata={"help": "Rows per transition in the suite's evaluation."})
    top_k: int = field(default=1000, metadata={"help": "k of the top-k overlap of the decoder weights."})
    venn: list[str] | None = field(default=None, metadata={"help": "Two or three members for the Venn figure."})
    figures: bool = field(default=True, metadata={"help": "Draw the figures (needs matplotlib)."})
    retrain_unconverged: bool = field(
        default=True, metadata={"help": "Train again a member whose earlier training finished without converging."}
    )

    def __post_init__(self):
        for name in ("min_convergent", "suite_eval_rows", "top_k"):
            check_positive(getattr(self, name), name, integer=True)


def member_init(base, model_args: ModelArguments):
    """A fresh member GRADIEND for each view when the config names the objective (e.g. `causal_lm_cloze`, which every
    member then records and trains with); `None`: train_suite's default, the detected objective."""
    chosen = objective_kwargs(model_args)
    if not chosen:
        return None
    return lambda view: GradiendModel.from_base_model(
        base, params=model_args.params, latent_dim=model_args.latent_dim, **chosen
    )


def run_suite(model_args, data_args, training_args, suite_args):
    """Loads what the config names, checks the members against the data, trains the suite; returns the result."""
    # The data and the members first: a misspelt class should surface before minutes of model loading.
    check_output_folder(training_args.output_dir, KIND_SUITE, what="output_dir")
    objective, data = load_feature_rows(model_args, data_args, training_args.seed)
    views = views_from_specs(suite_args.members, feature_class_names(data), identity=suite_args.identity)
    member_datasets(data, views, seed=training_args.seed)  # every member has rows of both sides
    base, tokenizer = load_base(model_args, objective)
    base.name_or_path = model_args.base_model
    torch.manual_seed(training_args.seed)
    # The suite arguments named as train_suite names them pass through as they are.
    passed = ("seeds", "min_convergent", "top_k", "venn", "figures", "retrain_unconverged")
    return train_suite(
        base,
        tokenizer,
        data,
        training_args,
        views,
        params=model_args.params,
        latent_dim=model_args.latent_dim,
        eval_max_rows=suite_args.suite_eval_rows,
        dataset_name=data_args.dataset,
        model_init=member_init(base, model_args),
        **{name: getattr(suite_args, name) for name in passed},
    )


def main(argv: list[str] | None = None) -> None:
    with user_errors("suite"):
        arguments = parse_config(
            (ModelArguments, SuiteDataArguments, SuiteTrainingArguments, SuiteArguments), argv, "gradiend-hf suite"
        )
        result = run_suite(*arguments)
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        print(f"Suite of {len(result)} GRADIENDs in {os.path.abspath(result.output_dir)} (report: suite.md):")
        for name, member in result.members.items():
            correlation = (member.test or {}).get("correlation")
            shown = f"{correlation:.3f}" if correlation is not None else "–"
            print(f"  {name:<24} {member.status:<8} converged: {member.converged!s:<5} test correlation {shown}")


if __name__ == "__main__":
    main()
