"""Callbacks of [`GradiendTrainer`]: sign normalisation, best-model selection, convergence verdict."""

from __future__ import annotations

import os

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .artefacts import KIND_GRADIEND
from .errors import GradiendError
from .io import copy_folder


BEST_DIR = "best-gradiend"


class GradiendNotConvergedError(GradiendError, RuntimeError):
    """Raised at the end of training when `fail_on_non_convergence=True` and the run did not converge."""


class EvaluateAtEndCallback(TrainerCallback):
    """Evaluates at the last step as well, so the final GRADIEND always has a score (like the reference)."""

    def on_step_end(self, args, state, control, **kwargs):
        if args.eval_strategy != "no" and state.max_steps and state.global_step >= state.max_steps:
            control.should_evaluate = True
        return control


class SignNormalizationCallback(TrainerCallback):
    """Flips the GRADIEND's sign when the validation correlation is strongly negative (latent dimension 1).

    The encoder (weight and bias) and the decoder weight are negated; the decoder bias is kept, so reconstructions
    do not change. The optimizer's first moments of the flipped tensors are negated too, so Adam keeps moving in the
    same direction in the flipped coordinates. The reported metrics are flipped to describe the new model.
    """

    def on_evaluate(self, args, state, control, model=None, optimizer=None, metrics=None, **kwargs):
        if not args.normalize_sign or model is None or not metrics or model.config.latent_dim != 1:
            return control
        correlation = metrics.get("eval_correlation")
        if correlation is None or correlation >= args.normalize_threshold:
            return control
        model.invert_encoding(update_config=False)
        if optimizer is not None:
            negated = [model.encoder.bias, *model.encoder.weight.values(), *model.decoder.weight.values()]
            flipped = {id(p) for p in negated}
            for group in optimizer.param_groups:
                for param in group["params"]:
                    moments = optimizer.state.get(param, {})
                    if id(param) in flipped and "exp_avg" in moments:
                        moments["exp_avg"].neg_()
        for key in list(metrics):
            if key == "eval_correlation" or key.startswith("eval_mean_"):
                metrics[key] = -metrics[key]
        metrics["eval_sign_flipped"] = 1.0
        return control


class BestGradiendCallback(TrainerCallback):
    """Keeps the GRADIEND of the evaluation with the largest |correlation| after step 0 and restores it at the end.

    The best model is written to `<output_dir>/best-gradiend` (so resuming from a checkpoint keeps it) and the score
    to `TrainerState.best_metric` / `best_global_step`. A step-0 score is never kept: an untrained GRADIEND cannot
    be the result of training.
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed run restores the snapshot its checkpoint carries (a later run may have replaced the one in
        # output_dir), verified now rather than found missing after all the steps.
        checkpoint = getattr(self.trainer, "resumed_from", None)
        if not args.select_best or checkpoint is None or not state.best_global_step:
            return control
        best_dir = os.path.join(args.output_dir, BEST_DIR)
        carried = os.path.join(checkpoint, BEST_DIR)
        source = carried if os.path.isdir(carried) else best_dir
        self.trainer.check_gradiend_snapshot(
            source, step=state.best_global_step
        )  # training goes on from the checkpoint
        if source != best_dir and args.should_save:
            copy_folder(source, best_dir, KIND_GRADIEND)
        self.trainer.accelerator.wait_for_everyone()
        return control

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not args.select_best or not metrics or "eval_correlation" not in metrics or state.global_step == 0:
            return control
        score = abs(metrics["eval_correlation"])
        if score != score:  # nan: the weights diverged
            model.check_finite(step=state.global_step)
        if state.best_metric is None or score > state.best_metric:
            state.best_metric = score
            state.best_global_step = state.global_step
            self.trainer.save_gradiend_snapshot(os.path.join(args.output_dir, BEST_DIR))
        return control

    def on_save(self, args, state, control, **kwargs):
        # Each checkpoint carries the best snapshot as of its step, so resuming from it restores exactly that one.
        best_dir = os.path.join(args.output_dir, BEST_DIR)
        if args.select_best and state.best_global_step and args.should_save and os.path.isdir(best_dir):
            checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            if os.path.isdir(checkpoint):
                copy_folder(best_dir, os.path.join(checkpoint, BEST_DIR), KIND_GRADIEND)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            model.check_finite(step=state.global_step)
        if args.select_best and state.best_global_step:
            self.trainer.load_gradiend_snapshot(os.path.join(args.output_dir, BEST_DIR), step=state.best_global_step)
        return control


class ConvergenceCallback(TrainerCallback):
    """Records a convergence verdict (method.md §1.7) in the GRADIEND's config at the end of training.

    Converged iff the best evaluation is after step 0, its |correlation| reaches `convergence_correlation`, and both
    classes' mean encodings reach `convergence_class_mean` in magnitude with opposite signs. The summary also records
    the number of processes and whether the GRADIEND was sharded over them.
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_end(self, args, state, control, model=None, **kwargs):
        history = [entry for entry in state.log_history if "eval_correlation" in entry]
        best_step = state.best_global_step if args.select_best else (history[-1]["step"] if history else 0)
        best = next((e for e in reversed(history) if e.get("step") == best_step), history[-1] if history else None)
        classes = model.config.feature_classes or []
        summary = {"history": [_compact(e) for e in history], "best_step": best_step, "converged": False}
        if best is not None:
            means = {c: best.get(f"eval_mean_{c}") for c in classes}
            summary.update(best_correlation=best["eval_correlation"], mean_by_class=means)
            valid = [m for m in means.values() if m is not None]
            summary["converged"] = bool(
                best_step
                and abs(best["eval_correlation"]) >= args.convergence_correlation
                and len(valid) == 2
                and min(abs(m) for m in valid) >= args.convergence_class_mean
                and valid[0] * valid[1] < 0
            )
        summary["global_step"] = state.global_step
        # How it was trained: the processes and whether the GRADIEND was sharded over them (`shard_gradiend`).
        summary["processes"] = args.world_size
        summary["sharded"] = bool(getattr(self.trainer, "sharded", False))
        model.config.training_summary = summary
        if args.fail_on_non_convergence and not summary["converged"]:
            raise GradiendNotConvergedError(
                "The GRADIEND did not converge: best |correlation| "
                f"{abs(summary.get('best_correlation', 0.0)):.3f} at step {best_step} (needed "
                f"≥ {args.convergence_correlation}), class means {summary.get('mean_by_class')} (needed |mean| ≥ "
                f"{args.convergence_class_mean} with opposite signs). Try a higher `learning_rate` (e.g. 1e-4 or 1e-3 "
                "for small models), more steps, more `sentences_per_gradient`, or another seed."
            )
        return control


def _compact(entry: dict) -> dict:
    keep = {"step": entry.get("step"), "epoch": entry.get("epoch")}
    keep.update({k[5:]: v for k, v in entry.items() if k.startswith("eval_") and isinstance(v, (int, float))})
    return keep
