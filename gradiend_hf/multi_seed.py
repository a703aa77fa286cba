"""Training a GRADIEND with several seeds and keeping the best run (method.md §1.8).

GRADIEND training sometimes fails to converge from an unlucky initialisation. [`train_multi_seed`] trains fresh
GRADIENDs with one seed after the other until enough runs converged, picks a winner by validation correlation, saves
it to `output_dir` and writes `seed_report.json`: one entry per trained seed plus a top-k stability summary (how much
the most important decoder weights of the converged runs agree).

```
output_dir/
  config.json  model.safetensors  README.md   the selected GRADIEND (config.multi_seed says which seed)
  seed_report.json
  seeds/seed_<s>/                             each run, as `keep` allows
```
"""

from __future__ import annotations

import copy
import gc
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from transformers import set_seed
from transformers.utils import logging

from .errors import GradiendError
from .io import atomic_write_json
from .modeling_gradiend import GradiendModel
from .trainer import GradiendTrainer
from .trainer_callbacks import BEST_DIR, GradiendNotConvergedError
from .training_args import GradiendTrainingArguments


logger = logging.get_logger(__name__)

KEEP_POLICIES = ("best", "all_convergent", "all")
REPORT_NAME = "seed_report.json"
SEEDS_DIR = "seeds"


@dataclass
class SeedRun:
    """Outcome of one seed's training run.

    Args:
        seed (`int`): The seed (`args.seed` and the torch seed of the GRADIEND's initialisation).
        converged (`bool`): The convergence verdict of [`ConvergenceCallback`] (method.md §1.7).
        best_correlation (`float`, *optional*): Validation correlation of the best evaluation (after sign
            normalisation), `None` when the run was never evaluated.
        best_step (`int`, *optional*): Step of that evaluation.
        mean_by_class (`dict`): Mean validation encoding per feature class at that step.
        global_step (`int`): Steps trained.
        selected (`bool`): Whether this run is the winner.
        output_dir (`str`, *optional*): Where the run's GRADIEND is saved; `None` once removed (see `keep`).
    """

    seed: int
    converged: bool
    best_correlation: float | None = None
    best_step: int | None = None
    mean_by_class: dict = field(default_factory=dict)
    global_step: int = 0
    selected: bool = False
    output_dir: str | None = None

    @property
    def score(self) -> float:
        """|best_correlation|, or -inf when there is none (NaN included)."""
        value = self.best_correlation
        return -math.inf if value is None or not math.isfinite(value) else abs(value)


@dataclass
class MultiSeedResult:
    """Result of [`train_multi_seed`].

    Args:
        model ([`GradiendModel`]): The selected GRADIEND (also saved to `output_dir`).
        selected_seed (`int`): Its seed.
        runs (`list[SeedRun]`): Every trained seed, in training order.
        stability (`dict`, *optional*): Top-k stability across the converged runs, see [`topk_stability`];
            `None` with fewer than two converged runs.
        output_dir (`str`): Where the winner and `seed_report.json` were written.
    """

    model: GradiendModel
    selected_seed: int
    runs: list[SeedRun]
    stability: dict | None
    output_dir: str

    @property
    def converged(self) -> bool:
        """Whether the selected run converged."""
        return next(run.converged for run in self.runs if run.seed == self.selected_seed)


def select_seed(runs: Sequence[SeedRun | Mapping[str, Any]]) -> int:
    """The seed of the winning run.

    The winner is the converged run with the largest |validation correlation| at its best checkpoint; ties go to the
    lowest seed. A run that did not converge is chosen only when none converged, by the same rule (so a result always
    exists; check `converged` in the report).

    Args:
        runs (`Sequence[SeedRun | Mapping]`): Outcomes with `seed`, `converged` and `best_correlation`.

    Returns:
        `int`: The winning seed.

    Raises:
        ValueError: when `runs` is empty.
    """
    runs = [run if isinstance(run, SeedRun) else SeedRun(**_run_fields(run)) for run in runs]
    if not runs:
        raise GradiendError("No seed was trained, so there is no run to select; pass at least one seed.")
    pool = [run for run in runs if run.converged] or runs
    return min(pool, key=lambda run: (-run.score, run.seed)).seed


def topk_stability(topk_indices: Mapping[int, Sequence[int]], k: int) -> dict[str, Any]:
    """Pairwise top-k overlap |A ∩ B| / k of several runs' most important entries.

    Args:
        topk_indices (`Mapping[int, Sequence[int]]`): seed → global indices of its top-k entries.
        k (`int`): The k used (the denominator).

    Returns:
        `dict` with `k`, `seeds`, `pairs` (`"a-b"` → overlap) and `mean`, `min`, `max` over the pairs, plus
        `intersection` and `union` (sizes over all runs). Empty statistics (`None`) with fewer than two runs.
    """
    sets = {seed: set(int(i) for i in indices) for seed, indices in topk_indices.items()}
    pairs = {f"{a}-{b}": len(sets[a] & sets[b]) / k for a, b in combinations(sorted(sets), 2)}
    values = list(pairs.values())
    return {
        "k": k,
        "seeds": sorted(sets),
        "pairs": pairs,
        "mean": sum(values) / len(values) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "intersection": len(set.intersection(*sets.values())) if sets else 0,
        "union": len(set.union(*sets.values())) if sets else 0,
    }


def train_multi_seed(
    model_init: Callable[[], GradiendModel],
    base_model,
    tokenizer,
    train_dataset,
    args: GradiendTrainingArguments,
    seeds: Sequence[int] = (0, 1, 2),
    min_convergent: int = 1,
    keep: str = "best",
    output_dir: str | os.PathLike | None = None,
    eval_dataset=None,
    callbacks: list | None = None,
    stability_k: int = 1000,
    stability_part: str = "decoder-weight",
) -> MultiSeedResult:
    """Trains a fresh GRADIEND per seed until `min_convergent` runs converged, and keeps the best one.

    For each seed `s`, in order: `transformers.set_seed(s)`, `model_init()` builds the GRADIEND (so its
    initialisation depends on `s`), and a [`GradiendTrainer`] with `args.seed = s` trains it into
    `output_dir/seeds/seed_<s>` (with the trainer's best-checkpoint selection). Training stops early once
    `min_convergent` runs converged. The winner ([`select_seed`]: largest |validation correlation| among converged
    runs, ties to the lowest seed; a non-converged run only if none converged) is saved to `output_dir` with
    `config.multi_seed` describing the selection.

    Args:
        model_init (`Callable[[], GradiendModel]`): Returns a fresh GRADIEND; called right after the seed is set (as
            `Trainer(model_init=...)`). A pre-pruned GRADIEND ([`gradiend_hf.pruning.pre_prune`]) works too.
        base_model (`PreTrainedModel`): The base model whose gradients are read.
        tokenizer: Its tokenizer.
        train_dataset (`datasets.Dataset` or `datasets.DatasetDict`): Feature rows, as for [`GradiendTrainer`].
        args ([`GradiendTrainingArguments`]): Arguments for every run; `seed` and `output_dir` are set per run,
            `fail_on_non_convergence` applies to the whole search (raised when no run converged).
        seeds (`Sequence[int]`, *optional*, defaults to `(0, 1, 2)`): Seeds to try, in order.
        min_convergent (`int`, *optional*, defaults to 1): Stop after this many converged runs.
        keep (`str`, *optional*, defaults to `"best"`): Which per-seed folders to keep: `"best"` (none; the winner
            is in `output_dir`), `"all_convergent"` (the converged runs) or `"all"`.
        output_dir (`str`, *optional*): Where to write; defaults to `args.output_dir`.
        eval_dataset (`datasets.Dataset`, *optional*): Validation rows (else the `validation` split of a
            `DatasetDict`).
        callbacks (`list[TrainerCallback]`, *optional*): Extra callbacks for every run.
        stability_k (`int`, *optional*, defaults to 1000): k of the top-k stability summary.
        stability_part (`str`, *optional*, defaults to `"decoder-weight"`): Importance used for it.

    Returns:
        [`MultiSeedResult`].

    Raises:
        GradiendNotConvergedError: when `args.fail_on_non_convergence` is set and no run converged.

    Example:

    ```python
    >>> result = train_multi_seed(lambda: GradiendModel.from_base_model(base, params=["*.layer.11.*"]),
    ...                           base, tokenizer, load_builtin("gender-en"), args, seeds=(0, 1, 2))
    >>> result.selected_seed, result.converged
    ```
    """
    if keep not in KEEP_POLICIES:
        raise GradiendError(f"Unknown `keep` policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}.")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise GradiendError(f"`seeds` must be a non-empty list of distinct seeds, got {seeds}.")
    if not 1 <= min_convergent <= len(seeds):
        raise GradiendError(f"`min_convergent` must lie between 1 and the number of seeds ({len(seeds)}).")
    output_dir = os.path.abspath(os.fspath(output_dir if output_dir is not None else args.output_dir))

    runs: list[SeedRun] = []
    top_indices: dict[int, list[int]] = {}
    k_used = stability_k
    for seed in seeds:
        run_dir = os.path.join(output_dir, SEEDS_DIR, f"seed_{seed}")
        run_args = copy.deepcopy(args)
        run_args.seed, run_args.output_dir = seed, run_dir
        run_args.fail_on_non_convergence = False  # judged over all seeds below
        set_seed(seed)
        gradiend = model_init()
        trainer = GradiendTrainer(gradiend, base_model, run_args, train_dataset, eval_dataset, tokenizer, callbacks)
        trainer.train()
        trainer.save_model(run_dir)
        # The final model IS the restored best snapshot; the copy would only double the disk use.
        shutil.rmtree(os.path.join(run_dir, BEST_DIR), ignore_errors=True)
        run = SeedRun(seed=seed, output_dir=run_dir, **_run_fields(gradiend.config.training_summary or {}))
        runs.append(run)
        if run.converged:
            k_used = min(stability_k, gradiend.config.num_base_parameters)
            top_indices[seed] = [t["global_index"] for t in gradiend.topk(k_used, part=stability_part)]
        logger.info(
            f"Seed {seed}: best correlation {run.best_correlation} at step {run.best_step}, converged={run.converged}."
        )
        del trainer, gradiend
        gc.collect()
        if sum(r.converged for r in runs) >= min_convergent:
            break

    selected = select_seed(runs)
    for run in runs:
        run.selected = run.seed == selected
    stability = topk_stability(top_indices, k_used) if len(top_indices) >= 2 else None
    if stability is not None:
        stability["part"] = stability_part

    winner_dir = next(run.output_dir for run in runs if run.selected)
    model = GradiendModel.from_pretrained(winner_dir)
    model.config.multi_seed = {
        "selected_seed": selected,
        "seeds": {str(r.seed): {"converged": r.converged, "best_correlation": r.best_correlation} for r in runs},
        "topk_stability": {k: stability[k] for k in ("k", "mean", "min", "max")} if stability else None,
    }
    model.save_pretrained(output_dir)
    _apply_keep_policy(runs, keep, os.path.join(output_dir, SEEDS_DIR))
    _write_report(output_dir, runs, selected, stability, seeds, min_convergent, keep)

    if args.fail_on_non_convergence and not any(run.converged for run in runs):
        raise GradiendNotConvergedError(
            f"None of the seeds {[r.seed for r in runs]} converged (best |correlation| "
            f"{max(r.score for r in runs):.3f}). Try a higher `learning_rate`, more steps or more seeds."
        )
    return MultiSeedResult(model=model, selected_seed=selected, runs=runs, stability=stability, output_dir=output_dir)


def _run_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The [`SeedRun`] fields found in a training summary (or a report entry)."""
    names = {"seed", "converged", "best_correlation", "best_step", "mean_by_class", "global_step", "selected"}
    fields = {name: summary[name] for name in names if name in summary}
    fields.setdefault("converged", False)
    fields["converged"] = bool(fields["converged"])
    fields["mean_by_class"] = dict(fields.get("mean_by_class") or {})
    return fields


def _apply_keep_policy(runs: list[SeedRun], keep: str, seeds_dir: str) -> None:
    for run in runs:
        if keep == "all" or (keep == "all_convergent" and run.converged):
            continue
        shutil.rmtree(run.output_dir, ignore_errors=True)
        run.output_dir = None
    if os.path.isdir(seeds_dir) and not os.listdir(seeds_dir):
        os.rmdir(seeds_dir)


def _write_report(output_dir, runs, selected, stability, seeds, min_convergent, keep) -> None:
    report = {
        "selected_seed": selected,
        "selection": "largest |validation correlation| among converged runs (ties: lowest seed); a non-converged "
        "run only if none converged",
        "seeds_requested": list(seeds),
        "min_convergent": min_convergent,
        "keep": keep,
        "runs": [
            {**asdict(run), "output_dir": os.path.relpath(run.output_dir, output_dir) if run.output_dir else None}
            for run in runs
        ],
        "topk_stability": stability,
    }
    atomic_write_json(os.path.join(output_dir, REPORT_NAME), report)
