"""Shared helpers of the evaluation tests (a he/she dataset, a trained tiny GRADIEND) and tests of the row helpers."""

from __future__ import annotations

import functools

import pytest
import torch
from datasets import Dataset, DatasetDict

from gradiend_hf import GradiendModel
from gradiend_hf.evaluation.rows import blank_random_word, class_words, resolve_split, sample_by_class
from gradiend_hf.gradients import encode_rows, group_gradients
from gradiend_hf.objectives import get_objective

from .tiny_models import _ENDS, _SUBJECTS, _VERBS, tiny_model


@pytest.fixture
def one_thread():
    """Tiny models run several times faster on one thread (and do not fight other processes for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


pytestmark = pytest.mark.usefixtures("one_thread")


def he_she_dataset() -> DatasetDict:
    """Rows "<Subject> <verb> [MASK] <end>." with he (class M, label +1) or she (class F, label -1)."""
    templates = [f"{s.capitalize()} {v} [MASK] {e}." for s in _SUBJECTS for v in _VERBS for e in _ENDS]
    splits = {"train": [], "validation": [], "test": []}
    for i, masked in enumerate(templates):
        split = "test" if i % 5 == 0 else "validation" if i % 5 == 1 else "train"
        for factual, alternative, fc, ac, label in (("he", "she", "M", "F", 1), ("she", "he", "F", "M", -1)):
            splits[split].append(
                {
                    "text": masked.replace("[MASK]", factual),
                    "masked": masked,
                    "factual": factual,
                    "alternative": alternative,
                    "factual_class": fc,
                    "alternative_class": ac,
                    "label": label,
                }
            )
    return DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()})


def neutral_dataset() -> Dataset:
    texts = [
        f"{s.capitalize()} {v} {p} {e}." for s in _SUBJECTS for v in _VERBS for p in ("it", "they") for e in _ENDS
    ]
    return Dataset.from_dict({"text": texts[::3]})


def pretrain_language_model(model, tokenizer, steps: int, seed: int = 0):
    """A few steps of the model's own LM loss (masked: 15 % of the ordinary tokens) on the he/she and neutral texts,
    so its language-modelling score is far from 0 and a rewrite can lose it."""
    texts = list(he_she_dataset()["train"]["text"]) + list(neutral_dataset()["text"])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        picked = torch.randint(len(texts), (16,), generator=generator).tolist()
        inputs = tokenizer([texts[i] for i in picked], return_tensors="pt", padding=True)
        labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
        if tokenizer.mask_token_id is not None:
            special = torch.tensor(
                [tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in labels.tolist()]
            ).bool()
            masked = (
                (torch.rand(labels.shape, generator=generator) < 0.15) & ~special & (inputs["attention_mask"] == 1)
            )
            labels = labels.masked_fill(~masked, -100)
            inputs["input_ids"] = inputs["input_ids"].masked_fill(masked, tokenizer.mask_token_id)
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def train_gradiend(family: str, source: str = "alternative", steps: int = 40, seed: int = 0, lm_steps: int = 0):
    """A GRADIEND trained on the he/she rows with a plain loop, its sign oriented so `positive_class` is right (on a
    base model first trained `lm_steps` steps on its LM loss, see [`pretrain_language_model`])."""
    base, tokenizer = tiny_model(family, seed=seed)
    if lm_steps:
        pretrain_language_model(base, tokenizer, lm_steps, seed)
    objective = get_objective(base, tokenizer)
    torch.manual_seed(seed)
    gradiend = GradiendModel.from_base_model(base, feature_classes=["M", "F"], source=source, target="diff")
    train = he_she_dataset()["train"]
    groups = []
    for word in ("he", "she"):
        rows = train.filter(lambda r, w=word: r["factual"] == w)
        for start in range(0, len(rows) - 7, 8):
            chunk = rows.select(range(start, start + 8))
            groups.append(objective.prepare(chunk["masked"], chunk["factual"], chunk["alternative"]))
    he_groups, she_groups = groups[: len(groups) // 2], groups[len(groups) // 2 :]
    optimizer = torch.optim.AdamW(gradiend.parameters(), lr=1e-3)
    for step in range(steps):
        pool = he_groups if step % 2 == 0 else she_groups
        batch = pool[(step // 2) % len(pool)]
        grads = group_gradients(base, objective, batch, gradiend.param_names, kinds=(source, "diff"))
        loss = gradiend(source_gradients=grads[source], target_gradients=grads["diff"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Orientation: on he rows the encoder reads the gradient of "she" (alternative source) or of "he". The positive
    # class is the class of that word when those rows encode > 0, else the other class.
    he_rows = he_groups[0]
    read_class = "F" if source == "alternative" else "M"
    sign = float(encode_rows(gradiend, base, objective, he_rows).mean())
    gradiend.config.positive_class = read_class if sign > 0 else ("M" if read_class == "F" else "F")
    return gradiend, base, tokenizer


@functools.cache
def trained(family: str, source: str = "alternative"):
    return train_gradiend(family, source)


# --------------------------------------------------------------------------- row helpers


def test_resolve_split_names_the_missing_split_and_columns():
    data = he_she_dataset()
    assert len(resolve_split(data, "test")) == len(data["test"])
    with pytest.raises(ValueError, match="no split 'dev'"):
        resolve_split(data, "dev")
    with pytest.raises(ValueError, match="lacks the column"):
        resolve_split(Dataset.from_dict({"masked": ["a [MASK] b"]}), None)


def test_sample_by_class_caps_each_class_and_drops_others():
    rows = Dataset.from_dict(
        {
            "masked": [f"r{i} [MASK]" for i in range(9)],
            "factual": ["he"] * 9,
            "alternative": ["she"] * 9,
            "factual_class": ["M"] * 5 + ["F"] * 3 + ["X"],
            "alternative_class": ["F"] * 9,
        }
    )
    picked = sample_by_class(rows, ["M", "F"], 2, seed=0)
    assert sorted(r["factual_class"] for r in picked) == ["F", "F", "M", "M"]
    assert len(sample_by_class(rows, ["M", "F"], None, seed=0)) == 8
    assert sample_by_class(rows, ["M", "F"], 2, seed=0) == picked  # seeded


def test_class_words_collects_factual_and_alternative_words_of_all_splits():
    words = class_words(he_she_dataset(), ["M", "F"])
    assert words == {"M": ["he"], "F": ["she"]}
    with pytest.raises(ValueError, match="class 'X'"):
        class_words(he_she_dataset(), ["M", "X"])


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_blank_random_word_never_blanks_class_words_and_keeps_left_context(family):
    _, tokenizer = tiny_model(family)
    objective = get_objective("masked_lm" if family == "bert" else "causal_lm", tokenizer)
    texts = ["He said she would come.", "The doctor said that it was very tired.", "she he"]
    out = blank_random_word(texts, objective, ["he", "she"], seed=0)
    assert [index for index, _, _ in out] == [0, 1]  # the last text has only class words
    for index, masked, word in out:
        assert word.lower() not in {"he", "she"}
        assert masked.replace("[MASK]", word) == texts[index]
        if family == "gpt2":
            assert masked.split("[MASK]")[0].strip()  # at least one word of left context
    assert blank_random_word(texts, objective, ["he", "she"], seed=0) == out
