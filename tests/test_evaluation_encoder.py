"""evaluate_encoder on trained tiny GRADIENDs."""

import pytest
import torch
from datasets import Dataset, DatasetDict

from gradiend_hf import GradiendModel
from gradiend_hf.evaluation import EvaluationError, evaluate_encoder
from gradiend_hf.gradients import encode_rows_loop
from gradiend_hf.objectives import get_objective

from .test_evaluation_common import he_she_dataset, neutral_dataset, one_thread, trained  # noqa: F401
from .tiny_models import tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family, source", [("gpt2", "alternative"), ("bert", "factual")])
def test_trained_gradiend_separates_the_classes(family, source):
    gradiend, base, tokenizer = trained(family, source)
    report = evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), neutral=neutral_dataset())
    m = report.metrics
    assert m["correlation"] > 0.9
    assert m["accuracy"] > 0.9 and m["binary_accuracy"] == 1.0
    positive = gradiend.config.positive_class
    # With the alternative source a "he" row reads the gradient of "she".
    read = {"M": "F", "F": "M"} if source == "alternative" else {"M": "M", "F": "F"}
    for name in ("M", "F"):
        sign = 1 if read[name] == positive else -1
        assert m["mean_by_class"][name] * sign > 0.5
    rows = report.rows
    assert set(rows["type"]) == {"training", "neutral_training_masked", "neutral_dataset"}
    assert (rows["type"] == "training").sum() == len(he_she_dataset()["test"])
    neutral = rows[rows["type"] != "training"]
    assert (neutral["label"] == 0).all() and (neutral["expected"] == 0).all()
    assert not neutral["factual"].str.lower().isin(["he", "she"]).any()
    assert (neutral["factual"] == neutral["alternative"]).all()
    assert all(text.count("[MASK]") == 1 for text in rows["text"])


def test_batched_encodings_equal_one_backward_pass_per_row():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    report = evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), neutral=neutral_dataset(), max_rows=4)
    sample = report.rows.groupby("type").head(3)  # rows of all types and lengths
    objective = get_objective(base, tokenizer)
    batch = objective.prepare(list(sample["text"]), list(sample["factual"]), list(sample["alternative"]))
    expected = encode_rows_loop(gradiend, base, objective, batch)[:, 0]
    torch.testing.assert_close(
        torch.tensor(sample["encoding"].to_list(), dtype=torch.float64), expected.double(), atol=1e-4, rtol=1e-3
    )


def test_max_rows_is_a_seeded_cap_per_class_and_neutral_rows_follow():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    first = evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), max_rows=5, seed=1)
    again = evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), max_rows=5, seed=1)
    training = first.rows[first.rows["type"] == "training"]
    assert training["factual_class"].value_counts().to_dict() == {"M": 5, "F": 5}
    assert first.metrics["num_rows"]["neutral_dataset"] == 10
    assert first.rows.equals(again.rows)


def test_base_model_keeps_its_training_mode():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    base.train()
    try:
        evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), max_rows=2)
        assert base.training
    finally:
        base.eval()


def _one_class(data: DatasetDict) -> DatasetDict:
    return DatasetDict({"test": data["test"].filter(lambda r: r["factual_class"] == "M")})


def test_clear_errors():
    base, tokenizer = tiny_model("gpt2")
    gradiend = GradiendModel.from_base_model(base, params=["transformer.h.1.mlp.*"], feature_classes=["M", "F"])
    data = he_she_dataset()
    with pytest.raises(EvaluationError, match="one class only"):
        evaluate_encoder(gradiend, base, tokenizer, _one_class(data))
    with pytest.raises(EvaluationError, match="no rows of the classes"):
        evaluate_encoder(gradiend, base, tokenizer, DatasetDict({"test": data["test"].select([])}))
    with pytest.raises(EvaluationError, match="no split 'dev'"):
        evaluate_encoder(gradiend, base, tokenizer, data, split="dev")
    with pytest.raises(EvaluationError, match="at least 2"):
        evaluate_encoder(gradiend, base, tokenizer, Dataset.from_list(data["test"].select([0]).to_list()))
    unnamed = GradiendModel.from_base_model(base, params=["transformer.h.1.mlp.*"])
    with pytest.raises(ValueError, match="feature_classes"):
        evaluate_encoder(unnamed, base, tokenizer, data)
