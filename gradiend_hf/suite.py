"""Suites: a family of GRADIENDs of one base model, one per view of a feature dataset with two or more classes.

[`train_suite`] trains every member (all pairs of the classes, one-vs-rest for every class, merged groups, or an
explicit list; optionally several seeds per member), evaluates each on every transition of the dataset and writes a
report with figures. It is resumable: a member whose training finished and converged is loaded, not retrained, and a
member interrupted in the middle of training continues from its last checkpoint.

```
output_dir/
  suite.json         the report: members, views, convergence, test metrics, wall times, transition matrix, top-k
  suite.md           the same for people
  figures/           topk_overlap.png, topk_venn.png (up to three members), transition_encoding.png
  members/<name>/    each member: a GRADIEND with its card (multi-seed: also seed_report.json)
```

A [`SuiteResult`] is a mapping of member name to GRADIEND (loaded on first use), so the comparison functions of
[`gradiend_hf.comparison`] take it directly: `similarity_matrix(load_suite("runs/pronouns"))`.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from accelerate import PartialState
from transformers.utils import logging

from .artefacts import KIND_SUITE, SUITE_REPORT_NAME, check_output_folder
from .configuration_gradiend import GradiendConfig
from .data import ClassView, apply_view, feature_class_names
from .data.view_specs import views_from_specs
from .errors import GradiendError, GradiendLoadError
from .evaluation.encoder import evaluate_encoder
from .loading import check_gradiend_folder
from .model_card import write_gradiend_card
from .modeling_gradiend import GradiendModel
from .multi_seed import train_multi_seed
from .suite_report import SUITE_FORMAT, member_test_metrics, suite_facts, write_suite_report
from .trainer import GradiendTrainer
from .trainer_callbacks import BEST_DIR, GradiendNotConvergedError
from .training_args import GradiendTrainingArguments
from .transition_encoding import transition_frame


logger = logging.get_logger(__name__)

MEMBERS_DIR = "members"


class SuiteError(GradiendError):
    """A suite cannot be trained, resumed or read as asked."""


@dataclass
class SuiteMember:
    """One GRADIEND of a suite and what the suite knows of it.

    Args:
        name (`str`): The member's name, its view's (`"1SG-vs-3SG"`, `"1SG-vs-rest"`, `"SG-vs-PL"`).
        view (`dict`): The view it was trained on (`ClassView.to_dict()`).
        folder (`str`): Its GRADIEND's folder, relative to the suite's.
        status (`str`): What this run did: `"trained"`, `"resumed"` (from a checkpoint), `"loaded"` (trained and
            converged before) or `"pending"`.
        converged (`bool`, *optional*): The trainer's convergence verdict.
        best_correlation (`float`, *optional*): Validation correlation of its best checkpoint.
        best_step (`int`, *optional*): That checkpoint's step.
        selected_seed (`int`, *optional*): The winning seed of a multi-seed member.
        wall_time_s (`float`, *optional*): Seconds its training took (kept from the run that trained it).
        test (`dict`): Metrics on the evaluation split, see [`member_test_metrics`].
    """

    name: str
    view: dict
    folder: str
    status: str = "pending"
    converged: bool | None = None
    best_correlation: float | None = None
    best_step: int | None = None
    selected_seed: int | None = None
    wall_time_s: float | None = None
    test: dict = field(default_factory=dict)

    @property
    def class_view(self) -> ClassView:
        return ClassView.from_dict(self.view)


class SuiteResult(Mapping):
    """The members of a suite as a mapping `name -> GradiendModel` (each loaded from its folder on first use).

    Attributes:
        output_dir (`str`): The suite's folder.
        members (`dict[str, SuiteMember]`): What the report says of each member, in suite order.
        report (`dict`): The content of `suite.json`.
    """

    def __init__(self, output_dir: str, members: Mapping[str, SuiteMember], report: dict):
        self.output_dir = output_dir
        self.members = dict(members)
        self.report = report
        self._models: dict[str, GradiendModel] = {}

    def __getitem__(self, name: str) -> GradiendModel:
        if name not in self.members:
            raise KeyError(f"The suite has no member {name!r}; its members are {list(self.members)}.")
        if name not in self._models:
            self._models[name] = GradiendModel.from_pretrained(self.folder(name))
        return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def folder(self, name: str) -> str:
        """The absolute folder of a member's GRADIEND."""
        return os.path.join(self.output_dir, self.members[name].folder)

    @property
    def transition_matrix(self) -> pd.DataFrame:
        """Member × transition mean encodings (each member's positive class oriented to +1), from the report."""
        table = self.report.get("transition_encoding") or {}
        return pd.DataFrame(table.get("data", []), index=table.get("index", []), columns=table.get("columns", []))

    @property
    def figures(self) -> dict[str, str]:
        """Figure name → absolute path of the PNGs the report points to."""
        return {name: os.path.join(self.output_dir, path) for name, path in (self.report.get("figures") or {}).items()}


def member_folder(view: ClassView) -> str:
    """The folder name of a view's member: its name with anything but letters, digits, `.`, `_` and `-` as `_`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", view.name)


def member_datasets(dataset, views: Sequence[ClassView], seed: int = 0) -> dict[str, Any]:
    """The training rows of every view (`apply_view`), by member name.

    Raises:
        `InvalidViewError`, `EmptyClassError`: a view that does not fit the dataset, or a side without rows.
    """
    return {view.name: apply_view(dataset, view, seed=seed) for view in views}


def load_suite(folder: str | os.PathLike) -> SuiteResult:
    """Reads a suite written by [`train_suite`] (its members are loaded when first used).

    Raises:
        [`GradiendLoadError`]: when the folder holds no suite report or a foreign one.
    """
    folder = os.path.abspath(os.fspath(folder))
    path = os.path.join(folder, SUITE_REPORT_NAME)
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except FileNotFoundError:
        raise GradiendLoadError(
            f"{folder!r} holds no suite ({SUITE_REPORT_NAME} is missing); train one with train_suite."
        ) from None
    except (OSError, ValueError) as error:
        raise GradiendLoadError(f"{path!r} is not a readable suite report ({error}).") from None
    if not isinstance(report, dict) or report.get("format") != SUITE_FORMAT:
        raise GradiendLoadError(f"{path!r} is not a gradiend-hf suite report.")
    members = {entry["name"]: SuiteMember(**entry) for entry in report.get("members", [])}
    return SuiteResult(folder, members, report)


def train_suite(
    base_model,
    tokenizer,
    dataset,
    args: GradiendTrainingArguments,
    members: str | ClassView | Mapping | Sequence = "pairs",
    *,
    output_dir: str | os.PathLike | None = None,
    identity: bool = False,
    seeds: Sequence[int] | None = None,
    min_convergent: int = 1,
    model_init: Callable[[ClassView], GradiendModel] | None = None,
    params: str | Sequence[str] | None = None,
    latent_dim: int = 1,
    eval_split: str = "test",
    eval_max_rows: int | None = 64,
    batch_size: int = 32,
    top_k: int | float = 1000,
    venn: Sequence[str] | None = None,
    figures: bool = True,
    retrain_unconverged: bool = True,
    callbacks: list | None = None,
    dataset_name: str | None = None,
) -> SuiteResult:
    """Trains (or resumes) a family of GRADIENDs on one base model, one per view of `dataset`, and reports on them.

    Every member is trained like a single GRADIEND ([`GradiendTrainer`], or [`train_multi_seed`] with `seeds`) on
    its view of the dataset, into `output_dir/members/<name>`, then evaluated on every transition of the dataset's
    `eval_split` (identity ones too) with [`evaluate_encoder`]`(..., include_other_classes=True)` and given a card
    that links its siblings. After each member `suite.json` is rewritten, so an interrupted suite loses at most the
    member in training (whose checkpoints it resumes from).

    Args:
        base_model (`PreTrainedModel`): The base model.
        tokenizer: Its tokenizer.
        dataset (`datasets.DatasetDict`): A feature dataset with two or more classes (`make_feature_dataset`,
            `load_builtin("pronouns-en")`).
        args ([`SuiteTrainingArguments`] or [`GradiendTrainingArguments`]): Training arguments for every member;
            `output_dir` is the suite's folder unless `output_dir` is given ([`SuiteTrainingArguments`] accept a
            folder that already holds the suite, to resume it). `fail_on_non_convergence` is judged after every member was trained.
        members (`str`, [`ClassView`], mapping or a sequence of them, *optional*, defaults to `"pairs"`): Which
            GRADIENDs: `"pairs"`, `"one_vs_rest"`, `"all"`, `"A-vs-B"`, `"A-vs-rest"` or merged groups, see
            [`gradiend_hf.data.view_specs.views_from_specs`].
        output_dir (`str`, *optional*): The suite's folder; defaults to `args.output_dir`.
        identity (`bool`, *optional*, defaults to `False`): Train pair views with identity rows of the other classes.
        seeds (`Sequence[int]`, *optional*): Train each member with these seeds and keep the best
            ([`train_multi_seed`]); one run with `args.seed` when not given.
        min_convergent (`int`, *optional*, defaults to 1): With `seeds`: stop after this many converged runs.
        model_init (`Callable[[ClassView], GradiendModel]`, *optional*): Builds a fresh GRADIEND for a view; by default
            `GradiendModel.from_base_model(base_model, params=params, latent_dim=latent_dim)`.
        params (`str` or `Sequence[str]`, *optional*): Covered base parameters of the default GRADIENDs.
        latent_dim (`int`, *optional*, defaults to 1): Feature values of the default GRADIENDs.
        eval_split (`str`, *optional*, defaults to `"test"`): Split of the evaluation.
        eval_max_rows (`int`, *optional*, defaults to 64): Rows per transition evaluated (a seeded sample).
        batch_size (`int`, *optional*, defaults to 32): Rows per forward-mode pass of the evaluation.
        top_k (`int` or `float`, *optional*, defaults to 1000): k of the top-k overlap of the decoder weights.
        venn (`Sequence[str]`, *optional*): Two or three members for the Venn figure of their top-k sets; by default
            all members when there are two or three, none otherwise.
        figures (`bool`, *optional*, defaults to `True`): Draw the figures (needs matplotlib).
        retrain_unconverged (`bool`, *optional*, defaults to `True`): Train a member again whose earlier training
            finished without converging (e.g. after raising `max_steps`); `False` loads it as it is.
        callbacks (`list[TrainerCallback]`, *optional*): Extra callbacks of every training run.
        dataset_name (`str`, *optional*): How cards and the report name the dataset (e.g. `"pronouns-en"`).

    Returns:
        [`SuiteResult`].

    Raises:
        `InvalidViewError` and its subclasses: a member that does not fit the dataset's classes (before training).
        [`GradiendSaveError`]: `output_dir` holds another kind of artefact.
        [`GradiendNotConvergedError`]: with `args.fail_on_non_convergence`, when a member did not converge (after
            the whole suite was trained and reported).
    """
    class_names = feature_class_names(dataset)
    views = views_from_specs(members, class_names, identity=identity)
    output_dir = os.path.abspath(os.fspath(output_dir if output_dir is not None else args.output_dir))
    check_output_folder(output_dir, KIND_SUITE, what="the suite's output_dir")
    earlier = _earlier_members(output_dir)
    state = PartialState()
    names = [view.name for view in views]
    if len(set(map(member_folder, views))) != len(views):
        raise SuiteError(f"Two members of {names} would share a folder; give their classes distinct names.")
    suite = {
        name: SuiteMember(name, view.to_dict(), os.path.join(MEMBERS_DIR, member_folder(view)))
        for name, view in zip(names, views)
    }
    # Every member's rows before any training: a view without rows of a side fails now, not after hours.
    rows = member_datasets(dataset, views, seed=args.seed)
    context = _Context(base_model, tokenizer, rows, args, output_dir, dataset_name, class_names, suite)
    started = time.perf_counter()
    reports = {}
    for view in views:
        member = suite[view.name]
        gradiend = _train_or_load(
            context,
            view,
            member,
            earlier.get(view.name),
            seeds,
            min_convergent,
            _initialiser(model_init, base_model, params, latent_dim),
            retrain_unconverged,
            callbacks,
        )
        if state.is_main_process:
            report = evaluate_encoder(
                gradiend,
                base_model,
                tokenizer,
                dataset,
                split=eval_split,
                max_rows=eval_max_rows,
                batch_size=batch_size,
                seed=args.seed,
                max_neutral_rows=eval_max_rows,
                include_other_classes=True,
            )
            member.test = member_test_metrics(report)
            reports[view.name] = (report, gradiend.config)
            write_gradiend_card(
                gradiend,
                os.path.join(output_dir, member.folder),
                encoder_report=report,
                dataset_name=dataset_name,
                training_args=args,
                suite=suite_facts(suite, view.name, title=os.path.basename(output_dir)),
            )
            write_suite_report(context.report(time.perf_counter() - started, complete=False))
        del gradiend
        state.wait_for_everyone()
    result = SuiteResult(output_dir, suite, {})
    if state.is_main_process:
        transitions = transition_frame(reports, class_names)
        result.report = write_suite_report(
            context.report(time.perf_counter() - started, complete=True),
            result=result,
            transitions=transitions,
            top_k=top_k,
            venn=venn,
            figures=figures,
        )
    state.wait_for_everyone()
    result = load_suite(output_dir)
    failed = [name for name, member in result.members.items() if not member.converged]
    if args.fail_on_non_convergence and failed:
        raise GradiendNotConvergedError(
            f"The suite's member(s) {failed} did not converge (see {os.path.join(output_dir, 'suite.md')}). Try a "
            "higher `learning_rate`, more steps, or `seeds=[0, 1, 2]`."
        )
    return result


# --------------------------------------------------------------------------- one member


@dataclass
class _Context:
    base_model: Any
    tokenizer: Any
    rows: dict[str, Any]
    args: GradiendTrainingArguments
    output_dir: str
    dataset_name: str | None
    class_names: list[str]
    members: dict[str, SuiteMember]

    def report(self, wall_time_s: float, complete: bool) -> dict:
        return {
            "format": SUITE_FORMAT,
            "output_dir": self.output_dir,
            "complete": complete,
            "base_model": getattr(self.base_model, "name_or_path", None) or None,
            "dataset": self.dataset_name,
            "classes": self.class_names,
            "wall_time_s": wall_time_s,
            "members": [asdict(member) for member in self.members.values()],
        }


def _initialiser(model_init, base_model, params, latent_dim) -> Callable[[ClassView], GradiendModel]:
    def fresh(view: ClassView) -> GradiendModel:
        gradiend = (
            model_init(view)
            if model_init is not None
            else GradiendModel.from_base_model(base_model, params=params, latent_dim=latent_dim)
        )
        gradiend.config.class_view = view.to_dict()
        if not gradiend.config.base_model_name_or_path:
            gradiend.config.base_model_name_or_path = getattr(base_model, "name_or_path", None) or None
        return gradiend

    return fresh


def _train_or_load(context, view, member, earlier, seeds, min_convergent, fresh, retrain_unconverged, callbacks):
    folder = os.path.join(context.output_dir, member.folder)
    config = _finished_config(folder)
    summary = (config.training_summary or {}) if config is not None else {}
    if config is not None and (summary.get("converged") or not retrain_unconverged):
        gradiend = GradiendModel.from_pretrained(folder)
        member.status = "loaded"
        member.wall_time_s = (earlier or {}).get("wall_time_s")
        logger.info(f"Suite member {view.name}: trained before (converged={summary.get('converged')}), loaded.")
    else:
        if config is not None:  # finished but not converged: the old run's checkpoints must not be resumed
            _remove_runs(folder)
        started = time.perf_counter()
        gradiend, member.status, member.selected_seed = _train(
            context, view, folder, seeds, min_convergent, fresh, callbacks
        )
        member.wall_time_s = time.perf_counter() - started
        summary = gradiend.config.training_summary or {}
    member.converged = bool(summary.get("converged"))
    member.best_correlation = summary.get("best_correlation")
    member.best_step = summary.get("best_step")
    if member.selected_seed is None and gradiend.config.multi_seed:
        member.selected_seed = gradiend.config.multi_seed.get("selected_seed")
    return gradiend


def _train(context, view, folder, seeds, min_convergent, fresh, callbacks):
    data = context.rows[view.name]
    args = copy.deepcopy(context.args)
    args.output_dir = folder
    args.fail_on_non_convergence = False  # judged over the whole suite
    if seeds:
        result = train_multi_seed(
            lambda: fresh(view),
            context.base_model,
            context.tokenizer,
            data,
            args,
            seeds=seeds,
            min_convergent=min_convergent,
            output_dir=folder,
            callbacks=callbacks,
        )
        return result.model, "trained", result.selected_seed
    checkpoint = _last_checkpoint(folder)
    torch.manual_seed(args.seed)
    gradiend = fresh(view)
    trainer = GradiendTrainer(gradiend, context.base_model, args, data, None, context.tokenizer, callbacks)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(folder)
    return gradiend, ("resumed" if checkpoint else "trained"), None


def _finished_config(folder: str) -> GradiendConfig | None:
    """The config of a member whose training finished (a whole GRADIEND with a training summary), else `None`."""
    if not os.path.isdir(folder):
        return None
    try:
        check_gradiend_folder(folder)
        config = GradiendConfig.from_pretrained(folder)
    except (GradiendLoadError, OSError, ValueError):
        return None
    return config if config.training_summary else None


def _last_checkpoint(folder: str) -> str | None:
    """The last whole trainer checkpoint of an interrupted member, if any."""
    found = [
        path
        for path in glob.glob(os.path.join(glob.escape(folder), "checkpoint-*"))
        if path.rsplit("-", 1)[-1].isdigit()
        and os.path.isfile(os.path.join(path, "trainer_state.json"))
        and os.path.isfile(os.path.join(path, "config.json"))
    ]
    return max(found, key=lambda path: int(path.rsplit("-", 1)[-1])) if found else None


def _remove_runs(folder: str) -> None:
    """Removes what an earlier training run of this member wrote besides the GRADIEND: its trainer checkpoints,
    best snapshot and seed runs (the new run replaces the GRADIEND itself atomically when it is saved)."""
    for path in glob.glob(os.path.join(glob.escape(folder), "checkpoint-*")) + [
        os.path.join(folder, BEST_DIR),
        os.path.join(folder, "seeds"),
    ]:
        if os.path.isdir(path):
            shutil.rmtree(path)


def _earlier_members(output_dir: str) -> dict[str, dict]:
    """What an earlier run's report said of each member (to keep their wall times), or nothing."""
    try:
        with open(os.path.join(output_dir, SUITE_REPORT_NAME), encoding="utf-8") as file:
            report = json.load(file)
        return {entry["name"]: entry for entry in report.get("members", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
