"""Reference side of one workload: `gradiend==0.2.3`, unmodified, in its own venv (gradiend-hf is not importable
there). Run by `bench_vs_reference.py`; never imported by the project.

Uses the reference's documented API: `TrainingArguments` + `TextPredictionTrainer` (per-class data, neutral data),
`train`, `evaluate_encoder`, `evaluate_decoder(target_class=...)` and `rewrite_base_model`. One run, one seed
(`max_seeds=1`), no caches. The only instrumentation: a `TrainingCallback` that timestamps the steps, and a wrapper
around the trainer's `evaluate_base_model` that counts the rows and texts the decoder grid scores (it calls through
unchanged).

Usage: python reference_runner.py '<spec JSON>'. Prints one result line (see `measure.RESULT_MARKER`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import Recorder, StepClock, package_version, set_threads  # noqa: E402


CLASSES = ("M", "F")  # the reference's target pair; M is pair[0] (label +1)
PRONOUNS = ["he", "she", "his", "her", "him", "hers", "himself", "herself"]


def step_clock_callback(clock: StepClock):
    """A reference `TrainingCallback` feeding `clock`. It runs after the reference's own callbacks, so `eval_result`
    is set exactly at the steps where its `EvaluationCallback` evaluated."""
    from gradiend.trainer.core.callbacks import TrainingCallback

    class StepClockCallback(TrainingCallback):
        def on_step_begin(self, step, config, **kwargs):
            clock.begin(step)

        def on_step_end(self, step, loss, model, config, **kwargs):
            if kwargs.get("eval_result") is not None:
                clock.evaluated(step)

    return StepClockCallback()


def count_scored_rows(trainer, counts: dict) -> None:
    """Records, on the first call, how many rows per class and neutral texts `evaluate_base_model` scores."""
    original = trainer.evaluate_base_model

    def counting(*args, **kwargs):
        if not counts:
            rows, neutral = kwargs.get("training_like_df"), kwargs.get("neutral_df")
            column = next((c for c in ("label_class", "factual_id") if rows is not None and c in rows.columns), None)
            if column is not None:
                counts["rows_by_class"] = {str(k): int(v) for k, v in rows[column].value_counts().items()}
            if neutral is not None:
                counts["lms_texts"] = len(neutral)
        return original(*args, **kwargs)

    trainer.evaluate_base_model = counting


def make_trainer(workload: dict, spec: dict):
    import pandas as pd
    from gradiend import TextPredictionTrainer, TrainingArguments

    data_dir = spec["data_dir"]
    data = {c: pd.read_csv(os.path.join(data_dir, f"gender_per_class_{c}.csv")) for c in CLASSES}
    neutral = pd.read_csv(os.path.join(data_dir, "neutral.csv"))
    evaluate = workload["eval_steps"] is not None
    args = TrainingArguments(
        experiment_dir=spec["run_dir"],
        train_batch_size=workload["sentences_per_gradient"],
        max_steps=workload["steps"],
        eval_steps=workload["eval_steps"] or workload["steps"],
        do_eval=evaluate,
        learning_rate=workload["learning_rate"],
        seed=workload["seed"],
        max_seeds=1,
        use_cache=False,
        prediction_objective=workload["reference_objective"],
        encoder_eval_train_max_size=workload["train_eval_rows"],
        encoder_eval_max_size=workload["encoder_rows"],
        decoder_eval_max_size_training_like=workload["decoder_rows"],
        decoder_eval_max_size_neutral=workload["lms_texts"],
    )
    trainer = TextPredictionTrainer(
        model=spec["model_dir"],
        run_id="gender",
        data=data,
        target_classes=list(CLASSES),
        split_col="split",
        eval_neutral_data=neutral,
        eval_neutral_additional_excluded_words=PRONOUNS,
        args=args,
    )
    _ = trainer.combined_data  # the reference builds its data lazily; build it inside the load phase
    return trainer


def training_summary(stats: dict | None) -> dict:
    stats = stats or {}
    best = stats.get("best_score_checkpoint") or {}
    return {
        "best_step": best.get("global_step"),
        "best_correlation": best.get("correlation"),
        "converged": (stats.get("convergence_info") or {}).get("converged"),
    }


def encoder_summary(result: dict) -> dict:
    frame = result.pop("encoder_df", None)
    return {
        "correlation": result.get("correlation"),
        # Keyed by the reference's row label (negated for source="alternative"), not by class: not comparable
        # key by key with gradiend-hf's `mean_by_class`, so it keeps its own name.
        "mean_by_label": result.get("mean_by_class"),
        "rows_by_type": frame.groupby("type").size().to_dict() if frame is not None else None,
        "rows": len(frame) if frame is not None else None,
    }


def decoder_summary(result: dict, target: str, counts: dict) -> dict:
    selected = result.get(target) or {}
    return {
        "target_class": target,
        "feature_factor": selected.get("feature_factor"),
        "learning_rate": selected.get("learning_rate"),
        "value": selected.get("value"),
        "lms": selected.get("lms"),
        "base_lms": selected.get("base_lms"),
        "grid_points": len(result.get("grid") or {}),  # the base model and every (ff, lr)
        **counts,
    }


def main(spec: dict) -> None:
    workload = spec["workload"]
    set_threads(spec["threads"])
    recorder = Recorder("reference", workload["name"])
    start = time.perf_counter()
    # Its import sets environment variables and wraps stderr; timed as an import, not as workflow.
    from gradiend import TextPredictionTrainer, TrainingArguments  # noqa: F401

    recorder.out["import_seconds"] = round(time.perf_counter() - start, 3)
    recorder.out["package"] = {"gradiend": package_version("gradiend"), "torch": package_version("torch")}
    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    workflow_start = time.perf_counter()
    with recorder.phase("load"):
        trainer = make_trainer(workload, spec)
    clock = StepClock()
    with recorder.phase("training"):
        trainer.train(callbacks=[step_clock_callback(clock)])
    recorder.out["steps"] = clock.summary()
    recorder.out["training"] = training_summary(trainer.get_training_stats())
    if workload["encoder_eval"]:
        with recorder.phase("encoder_eval"):
            result = trainer.evaluate_encoder(split="test", max_size=workload["encoder_rows"], return_df=True)
        recorder.out["encoder"] = encoder_summary(result)
    if workload["decoder_eval"]:
        counts = {}
        count_scored_rows(trainer, counts)
        target = workload["decoder_class"]
        with recorder.phase("decoder_eval"):
            result = trainer.evaluate_decoder(target_class=target, use_cache=False)
        recorder.out["decoder"] = decoder_summary(result, target, counts)
        with recorder.phase("rewrite"):
            trainer.rewrite_base_model(decoder_results=result, target_class=target)
    recorder.out["workflow_seconds"] = round(time.perf_counter() - workflow_start, 4)
    # After the workflow clock: `get_model` may load the GRADIEND from the run folder.
    recorder.out["gradiend_inputs"] = int(getattr(trainer.get_model().gradiend, "input_dim", 0)) or None
    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    recorder.emit()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
