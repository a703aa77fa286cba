"""The built-in `pronouns-en`: five English subject-pronoun classes, their counts, rows, casing and views."""

import re
from collections import Counter

import pytest

from gradiend_hf.data import (
    MASK,
    MULTICLASS_COLUMNS,
    builtin_info,
    feature_class_names,
    list_builtin,
    load_builtin,
    merged_view,
    pair_view,
)


WORD = re.compile(r"[^\W_]+")
CLASSES = {"1SG": ["i"], "1PL": ["we"], "2": ["you"], "3SG": ["he", "she", "it"], "3PL": ["they"]}
# The text has fewer usable sentences than 500 for these classes (docs/data.md); every other class has >= 500.
DOCUMENTED_ROWS = {"1PL": 141, "2": 367}


@pytest.fixture(scope="module")
def pronouns():
    return load_builtin("pronouns-en")


def test_listed_with_its_classes_in_order(pronouns):
    assert "pronouns-en" in list_builtin()
    info = builtin_info("pronouns-en")
    assert info["classes"] == CLASSES and list(info["classes"]) == list(CLASSES)
    assert feature_class_names(pronouns) == list(CLASSES)
    assert "Public domain" in info["license"] and "CC BY-SA" in info["license"]
    for split, data in pronouns.items():
        assert tuple(data.column_names) == MULTICLASS_COLUMNS
        assert len(data) == info["num_rows"][split]
        assert data.info.license == info["license"]


def test_rows_per_class(pronouns):
    info = builtin_info("pronouns-en")
    per_class = Counter(name for split in pronouns.values() for name in split["factual_class"])
    for name in CLASSES:
        assert per_class[name] >= DOCUMENTED_ROWS.get(name, 500), (name, per_class)
        assert sum(info["num_rows_per_class"][split][name] for split in pronouns) == per_class[name]
        assert sum(info["num_rows_per_class_and_source"][name].values()) == per_class[name]
        train, validation, test = (Counter(pronouns[split]["factual_class"])[name] for split in pronouns)
        assert abs(validation - test) <= 1 and abs(train - 8 * validation) <= 9
    assert info["num_rows_per_class_and_source"]["1SG"]["wikipedia"] == 0  # Wikipedia's "I" is a numeral


def test_every_row_has_ten_words_before_the_blank_and_valid_alternatives(pronouns):
    for data in pronouns.values():
        for row in data:
            before, after = row["masked"].split(MASK)  # exactly one mask, or this raises
            assert before + row["factual"] + after == row["text"]
            assert row["left_context_words"] == len(WORD.findall(before)) >= 10
            assert list(row["alternatives"]) == list(CLASSES)
            assert row["alternatives"][row["factual_class"]] == row["factual"]
            for name, word in row["alternatives"].items():
                assert word.lower() in CLASSES[name]
            assert row["alternatives"]["1SG"] == "I"
            visible = {word.lower() for word in WORD.findall(before + " " + after)}
            others = {word for name, words in CLASSES.items() if name != row["factual_class"] for word in words}
            assert not visible & others, row["text"]


def test_alternatives_of_i_are_cased_for_their_position(pronouns):
    rows = [row for data in pronouns.values() for row in data if row["factual"] == "I"]
    after_a_word = [row for row in rows if re.search(r"[a-z,;] \[MASK\]", row["masked"])]
    assert len(after_a_word) > 300
    assert {row["alternatives"]["1PL"] for row in after_a_word} == {"we"}
    assert {row["alternatives"]["3PL"] for row in after_a_word} == {"they"}


def test_splits_are_disjoint(pronouns):
    texts = [set(split["text"]) for split in pronouns.values()]
    assert sum(map(len, texts)) == sum(len(split) for split in pronouns.values())
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_views_of_the_built_in(pronouns):
    view = pair_view(pronouns, "1SG", "3SG", identity=True)
    for split in view.values():
        assert {(name, label) for name, label in zip(split["factual_class"], split["label"])} == {
            ("1SG", 1),
            ("3SG", -1),
            ("1PL", 0),
            ("2", 0),
            ("3PL", 0),
        }
    number = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]})
    assert Counter(number["train"]["factual_class"]) == {
        "SG": sum(Counter(pronouns["train"]["factual_class"])[name] for name in ("1SG", "3SG")),
        "PL": sum(Counter(pronouns["train"]["factual_class"])[name] for name in ("1PL", "3PL")),
    }
