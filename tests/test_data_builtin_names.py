"""The built-in `names-en`: male vs female character names, many of several tokens, their counts, rows and splits."""

import re
from collections import Counter

import pytest

from gradiend_hf.data import FEATURE_COLUMNS, MASK, builtin_info, list_builtin, load_builtin
from gradiend_hf.objectives.registry import is_single_token
from gradiend_hf.testing_utils import tokenizer_for


WORD = re.compile(r"[^\W_]+")
TITLES = {"mr", "mrs", "miss", "sir", "lady", "colonel", "captain", "dr", "admiral", "general", "lord", "madam", "st"}
# From manifest.json (rows per split and class).
ROWS_PER_CLASS = {
    "train": {"M": 392, "F": 1348},
    "validation": {"M": 49, "F": 169},
    "test": {"M": 49, "F": 168},
}


@pytest.fixture(scope="module")
def names():
    return load_builtin("names-en")


def test_listed_with_its_classes_in_order(names):
    assert "names-en" in list_builtin()
    info = builtin_info("names-en")
    assert list(info["classes"]) == ["M", "F"]  # M is +1
    assert {"Darcy", "Willoughby", "Edmund"} <= set(info["classes"]["M"])
    assert {"Elizabeth", "Elinor", "Fanny"} <= set(info["classes"]["F"])
    assert not {w.lower() for w in info["classes"]["M"]} & {w.lower() for w in info["classes"]["F"]}
    assert info["license"] == "Public domain" and "janeaustenr" in info["sources"][0]
    for split, data in names.items():
        assert tuple(data.column_names) == FEATURE_COLUMNS
        assert len(data) == info["num_rows"][split] == sum(ROWS_PER_CLASS[split].values())
        assert "label +1" in data.info.description and data.info.license == "Public domain"


def test_rows_per_class(names):
    assert builtin_info("names-en")["num_rows_per_class"] == ROWS_PER_CLASS
    for split, data in names.items():
        assert dict(Counter(data["factual_class"])) == ROWS_PER_CLASS[split]


def test_every_class_word_has_rows(names):
    factual = Counter(word for split in names.values() for word in split["factual"])
    for words in builtin_info("names-en")["classes"].values():
        assert all(factual[word] > 0 for word in words), [word for word in words if not factual[word]]


def test_rows_are_valid_with_ten_words_of_left_context(names):
    classes = builtin_info("names-en")["classes"]
    for data in names.values():
        for row in data:
            before, after = row["masked"].split(MASK)  # exactly one mask, or this raises
            assert before + row["factual"] + after == row["text"]
            assert row["left_context_words"] == len(WORD.findall(before)) >= 10
            assert row["factual"] in classes[row["factual_class"]]
            assert row["alternative"] in classes[row["alternative_class"]]
            assert row["label"] == (1 if row["factual_class"] == "M" else -1)
            words = WORD.findall(before + " " + after)
            assert not set(words) & set(classes[row["alternative_class"]]), row["text"]
            preceding = WORD.findall(before)[-1].lower()
            assert preceding not in TITLES, row["text"]  # "Mr. [MASK]" would give the gender away


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_some_words_of_each_class_are_several_tokens(family):
    tokenizer = tokenizer_for(family)
    objective = "masked_lm" if family == "bert" else "causal_lm"
    for class_name, words in builtin_info("names-en")["classes"].items():
        split = [word for word in words if not is_single_token(tokenizer, word, objective)]
        single = [word for word in words if word not in split]
        assert len(split) >= 5 and single, (class_name, split)


def test_splits_are_disjoint(names):
    texts = [set(split["text"]) for split in names.values()]
    assert sum(map(len, texts)) == sum(len(split) for split in names.values())  # no duplicate within a split
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
