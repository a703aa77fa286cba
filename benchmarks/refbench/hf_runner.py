"""gradiend-hf side of one workload; run by `bench_vs_reference.py` in the project's venv, never imported by it.

Public API only: `GradiendModel.from_base_model`, `GradiendTrainer` / `GradiendTrainingArguments`,
`gradiend_hf.evaluation.evaluate_encoder` / `evaluate_decoder`, `GradiendModel.rewrite`.

Usage: python hf_runner.py '<spec JSON>'   (spec: workload, model_dir, data_dir, run_dir, threads). Prints one result
line (see `measure.RESULT_MARKER`); writes nothing but the trainer's run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import Recorder, StepClock, package_version, set_threads  # noqa: E402


def load_data(data_dir: str):
    """The he/she rows as a `DatasetDict` (train / validation / test) and the neutral sentences as a `Dataset`."""
    import pandas as pd
    from datasets import Dataset, DatasetDict

    frame = pd.read_csv(os.path.join(data_dir, "gender_unified.csv"))
    columns = ["masked", "factual", "alternative", "factual_class", "alternative_class", "label"]
    splits = {
        split: Dataset.from_pandas(frame[frame["split"] == split][columns], preserve_index=False)
        for split in ("train", "validation", "test")
    }
    neutral = pd.read_csv(os.path.join(data_dir, "neutral.csv"))
    return DatasetDict(splits), Dataset.from_dict({"text": neutral["text"].tolist()})


def step_clock_callback(clock: StepClock):
    """A `TrainerCallback` feeding `clock`: step starts, and the steps after which the trainer evaluated."""
    from transformers import TrainerCallback

    class StepClockCallback(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.begin(state.global_step + 1)  # global_step counts finished steps

        def on_evaluate(self, args, state, control, **kwargs):
            clock.evaluated(state.global_step)

    return StepClockCallback()


def training_arguments(workload: dict, run_dir: str):
    from gradiend_hf import GradiendTrainingArguments

    evaluate = workload["eval_steps"] is not None
    cap = workload["train_eval_rows"]
    return GradiendTrainingArguments(
        run_dir,
        max_steps=workload["steps"],
        learning_rate=workload["learning_rate"],
        sentences_per_gradient=workload["sentences_per_gradient"],
        eval_strategy="steps" if evaluate else "no",
        eval_steps=workload["eval_steps"] if evaluate else None,
        eval_on_start=evaluate,
        eval_max_rows=None if cap is None else 2 * cap,  # ours counts all rows, the reference's cap is per class
        logging_steps=workload["eval_steps"] or workload["steps"],
        seed=workload["seed"],
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        dataloader_pin_memory=False,  # items are groups of text; pinning them only warns
    )


def train(recorder: Recorder, gradiend, base, tokenizer, data, workload: dict, run_dir: str) -> None:
    from gradiend_hf import GradiendTrainer

    clock = StepClock()
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=base,
        processing_class=tokenizer,
        args=training_arguments(workload, run_dir),
        train_dataset=data,
        callbacks=[step_clock_callback(clock)],
    )
    with recorder.phase("training"):
        trainer.train()
    summary = gradiend.config.training_summary or {}
    recorder.out["steps"] = clock.summary()
    recorder.out["training"] = {
        "best_step": summary.get("best_step"),
        "best_correlation": summary.get("best_correlation"),
        "converged": summary.get("converged"),
    }


def evaluate_encoder(recorder: Recorder, gradiend, base, tokenizer, data, neutral, workload: dict) -> None:
    from gradiend_hf.evaluation import evaluate_encoder

    cap = workload["encoder_rows"]
    with recorder.phase("encoder_eval"):
        # Neutral rows as many as the reference encodes: every neutral sentence, or `cap` per type.
        report = evaluate_encoder(
            gradiend, base, tokenizer, data, neutral=neutral, max_rows=cap, max_neutral_rows=cap or len(neutral)
        )
    recorder.out["encoder"] = {
        "correlation": report.metrics["correlation"],
        "mean_by_class": report.metrics.get("mean_by_class"),
        "rows_by_type": report.rows.groupby("type").size().to_dict(),
        "rows": len(report.rows),
    }


def evaluate_decoder(recorder: Recorder, gradiend, base, tokenizer, data, neutral, workload: dict):
    from gradiend_hf.evaluation import DEFAULT_LEARNING_RATES, evaluate_decoder

    with recorder.phase("decoder_eval"):
        report = evaluate_decoder(
            gradiend,
            base,
            tokenizer,
            data,
            neutral=neutral,
            target_class=workload["decoder_class"],
            learning_rates=DEFAULT_LEARNING_RATES,  # the reference's default 16-point grid
            policy="lms_threshold",
            max_rows=workload["decoder_rows"],
            lms_max_texts=workload["lms_texts"],
            seed=workload["seed"],
        )
    s = report.selected
    recorder.out["decoder"] = {
        "target_class": workload["decoder_class"],
        "feature_factor": s.feature_factor,
        "learning_rate": s.learning_rate,
        "value": s.value,
        "base_value": s.base_value,
        "lms": s.lms,
        "base_lms": s.base_lms,
        "grid_points": len(report.grid) + 1,  # + the base model
        "rows_by_class": report.num_rows,
        "lms_texts": report.num_lms_texts,
    }
    return s


def main(spec: dict) -> None:
    workload = spec["workload"]
    set_threads(spec["threads"])
    recorder = Recorder("gradiend-hf", workload["name"])
    start = time.perf_counter()
    import gradiend_hf
    from gradiend_hf import GradiendModel, load_base_model

    recorder.out["import_seconds"] = round(time.perf_counter() - start, 3)
    recorder.out["package"] = {
        "gradiend_hf": gradiend_hf.__version__,
        "path": os.path.dirname(gradiend_hf.__file__),
        "torch": package_version("torch"),
    }
    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    workflow_start = time.perf_counter()
    with recorder.phase("load"):
        base, tokenizer = load_base_model(spec["model_dir"])
        data, neutral = load_data(spec["data_dir"])
        gradiend = GradiendModel.from_base_model(base)  # the whole backbone, like the reference's default
    recorder.out["gradiend_inputs"] = gradiend.config.num_base_parameters
    train(recorder, gradiend, base, tokenizer, data, workload, spec["run_dir"])
    if workload["encoder_eval"]:
        evaluate_encoder(recorder, gradiend, base, tokenizer, data, neutral, workload)
    if workload["decoder_eval"]:
        selected = evaluate_decoder(recorder, gradiend, base, tokenizer, data, neutral, workload)
        with recorder.phase("rewrite"):
            gradiend.rewrite(base, selected.feature_factor, selected.learning_rate)
    recorder.out["workflow_seconds"] = round(time.perf_counter() - workflow_start, 4)
    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    recorder.emit()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
