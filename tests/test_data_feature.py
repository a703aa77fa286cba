"""`make_feature_dataset`: matching, masking policy, alternatives, splits, errors and determinism."""

import re
from collections import Counter

import pytest

from gradiend_hf.data import (
    FEATURE_COLUMNS,
    MASK,
    ClassCountError,
    FeatureDataError,
    InvalidWordError,
    NoMatchError,
    NotEnoughRowsError,
    NotEnoughWordsError,
    NoTextError,
    OverlappingClassesError,
    make_feature_dataset,
    match_casing,
)


GENDER = {"M": ["he"], "F": ["she"]}
NUMBER = {"3SG": ["he", "she", "it"], "3PL": ["they"]}
ALL_TRAIN = (1.0, 0.0, 0.0)
NOUNS = ["garden", "letter", "house", "river", "book", "window", "carriage", "dinner", "ball", "piano"]


def corpus(pronoun: str, count: int, offset: int = 0) -> list[str]:
    """`count` distinct sentences with `pronoun` as their fourth word."""
    return [f"On day {offset + i} {pronoun} saw the {NOUNS[i % len(NOUNS)]} again." for i in range(count)]


def all_rows(dataset) -> list[dict]:
    return [row for split in dataset.values() for row in split.to_list()]


def test_schema_and_label_of_first_class():
    dataset = make_feature_dataset(["He was here today. She was there yesterday."], GENDER, split_ratios=ALL_TRAIN)
    assert list(dataset) == ["train", "validation", "test"]
    for split in dataset.values():
        assert tuple(split.column_names) == FEATURE_COLUMNS
        assert {name: feature.dtype for name, feature in split.features.items()} == {
            **dict.fromkeys(FEATURE_COLUMNS, "string"),
            "label": "int64",
            "left_context_words": "int64",
        }
    rows = {row["factual_class"]: row for row in dataset["train"]}
    assert rows["M"] | {} == {
        "text": "He was here today.",
        "masked": "[MASK] was here today.",
        "factual": "He",
        "alternative": "She",
        "factual_class": "M",
        "alternative_class": "F",
        "label": 1,
        "left_context_words": 0,
    }
    assert rows["F"]["label"] == -1 and rows["F"]["alternative"] == "He"
    assert len(dataset["validation"]) == len(dataset["test"]) == 0
    assert "M (label +1): he; F (label -1): she" in dataset["train"].info.description


def test_class_order_decides_the_label():
    dataset = make_feature_dataset(["He was here today. She was there yesterday."], {"F": ["she"], "M": ["he"]},
                                   split_ratios=ALL_TRAIN)  # fmt: skip
    assert {row["factual"]: row["label"] for row in dataset["train"]} == {"She": 1, "He": -1}


@pytest.mark.parametrize(
    ("factual", "alternative"),
    [("he", "she"), ("He", "She"), ("HE", "SHE"), ("hE", "she"), ("I", "We"), ("i", "we"), ("IT", "THEY")],
)
def test_match_casing(factual, alternative):
    assert match_casing(factual, alternative.lower()) == alternative


def test_alternative_takes_the_casing_of_the_factual_word():
    texts = ["HE WAS VERY LATE AGAIN.", "Then he was late again.", "She was late again today."]
    rows = {
        row["factual"]: row["alternative"]
        for row in all_rows(make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN))
    }
    assert rows == {"HE": "SHE", "he": "she", "She": "He"}


def test_whole_word_case_insensitive_matching():
    texts = [
        "Then the shed was full of ashes and hens.",  # no whole "he" or "she": "the", "then", "shed", "ashes"
        "Her brother was there with them.",
        "He's going to the theatre tonight.",  # "he" before an apostrophe is a word
        "Everyone agreed that SHE had won the game.",
    ]
    rows = all_rows(make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN))
    assert sorted((row["masked"], row["factual"]) for row in rows) == [
        ("Everyone agreed that [MASK] had won the game.", "SHE"),
        ("[MASK]'s going to the theatre tonight.", "He"),
    ]


def test_the_does_not_match_then_or_there():
    texts = ["Then there was nothing left.", "The dog barked at the postman.", "A cat sat on this mat."]
    rows = all_rows(make_feature_dataset(texts, {"DEF": ["the"], "INDEF": ["a"]}, split_ratios=ALL_TRAIN))
    assert sorted(row["masked"] for row in rows) == [
        "[MASK] cat sat on this mat.",
        "[MASK] dog barked at the postman.",
    ]


def test_sentences_with_both_classes_give_no_row():
    texts = ["She told him that he was late.", "He said she would come."] + corpus("he", 1) + corpus("she", 1, 1)
    rows = all_rows(make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN))
    assert sorted(row["text"] for row in rows) == sorted(corpus("he", 1) + corpus("she", 1, 1))


def test_first_qualifying_occurrence_is_masked_and_same_class_words_stay():
    texts = ["He said that he would come tomorrow.", "Later that day she came home."]
    rows = {row["factual_class"]: row for row in all_rows(make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN))}
    assert rows["M"]["masked"] == "[MASK] said that he would come tomorrow."
    rows = all_rows(make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN, min_left_context_words=3))
    masked = {row["factual_class"]: (row["masked"], row["left_context_words"]) for row in rows}
    assert masked == {
        "M": ("He said that [MASK] would come tomorrow.", 3),
        "F": ("Later that day [MASK] came home.", 3),
    }


def test_min_left_context_words_drops_early_words():
    texts = ["She came home early.", "At last she came home.", "After a walk she came home."]
    texts += corpus("he", 2)  # "he" after three words
    dataset = make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN, min_left_context_words=3)
    she = [row for row in dataset["train"] if row["factual_class"] == "F"]
    assert [(row["masked"], row["left_context_words"]) for row in she] == [("After a walk [MASK] came home.", 3)]
    with pytest.raises(NotEnoughRowsError, match="Class 'M' has 0 usable"):
        make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN, min_left_context_words=4)


def test_alternatives_follow_the_frequencies_of_the_other_class():
    texts = corpus("he", 90) + corpus("it", 10, 90) + corpus("they", 200, 100)
    dataset = make_feature_dataset(texts, NUMBER, split_ratios=ALL_TRAIN, seed=3)
    alternatives = Counter(row["alternative"] for row in dataset["train"] if row["factual_class"] == "3PL")
    assert alternatives["she"] == 0  # "she" never occurs in the text
    assert 0.8 < alternatives["he"] / 200 < 0.98 and alternatives["it"] > 0
    assert {row["alternative"] for row in dataset["train"] if row["factual_class"] == "3SG"} == {"they"}


def test_identical_sentences_give_one_row():
    texts = corpus("he", 3) * 4 + corpus("she", 3, 3)
    dataset = make_feature_dataset(texts, GENDER, split_ratios=ALL_TRAIN)
    assert Counter(dataset["train"]["factual_class"]) == {"M": 3, "F": 3}


def test_a_single_string_is_one_text():
    dataset = make_feature_dataset(" ".join(corpus("he", 3) + corpus("she", 3, 3)), GENDER)
    assert sum(len(split) for split in dataset.values()) == 6


def test_max_rows_per_class():
    texts = corpus("he", 50) + corpus("she", 7, 50)
    dataset = make_feature_dataset(texts, GENDER, max_rows_per_class=10)
    counts = Counter(row["factual_class"] for row in all_rows(dataset))
    assert counts == {"M": 10, "F": 7}


@pytest.mark.parametrize(
    ("ratios", "sizes"),
    [((0.8, 0.1, 0.1), (80, 10, 10)), ((0.5, 0.25, 0.25), (50, 25, 25)), ({"train": 0.9, "test": 0.1}, (90, 0, 10))],
)
def test_row_split_sizes_per_class(ratios, sizes):
    dataset = make_feature_dataset(corpus("he", 100) + corpus("she", 100, 100), GENDER, split_ratios=ratios)
    for split, size in zip(dataset, sizes):
        assert Counter(dataset[split]["factual_class"]) == ({"M": size, "F": size} if size else {})


def test_row_splits_are_disjoint_and_cover_every_row():
    texts = corpus("he", 37) + corpus("she", 23, 37)
    dataset = make_feature_dataset(texts, GENDER)
    seen = [set(split["text"]) for split in dataset.values()]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    assert set().union(*seen) == set(texts)
    for split in dataset.values():  # every split has both classes
        assert set(split["factual_class"]) == {"M", "F"}


def test_split_by_word_holds_out_words():
    words_a = ["red", "green", "blue", "yellow", "purple", "orange"]
    words_b = ["cat", "dog", "horse", "mouse", "goat"]
    texts = [
        f"On day {i} we saw {'the' if i % 2 else 'a'} {w} there." for i, w in enumerate(words_a * 12 + words_b * 12)
    ]
    dataset = make_feature_dataset(texts, {"COLOR": words_a, "ANIMAL": words_b}, split_by="word", seed=1)
    for name in ("COLOR", "ANIMAL"):
        factual = {split: {r["factual"] for r in dataset[split] if r["factual_class"] == name} for split in dataset}
        assert all(factual.values()), factual  # every split has words of the class
        assert not factual["train"] & factual["validation"]
        assert not factual["train"] & factual["test"]
        assert not factual["validation"] & factual["test"]
    assert len(dataset["train"]) > len(dataset["validation"]) and len(dataset["train"]) > len(dataset["test"])


def test_split_by_word_needs_enough_distinct_words():
    with pytest.raises(NotEnoughWordsError, match=r"class 'M'.*split_by='row'"):
        make_feature_dataset(corpus("he", 20) + corpus("she", 20, 20), GENDER, split_by="word")
    # with one held-out split, two words per class are enough
    dataset = make_feature_dataset(
        corpus("he", 10) + corpus("it", 10, 10) + corpus("they", 10, 20) + corpus("them", 10, 30),
        {"SG": ["he", "it"], "PL": ["they", "them"]},
        split_by="word",
        split_ratios=(0.5, 0.5, 0.0),
    )
    assert {r["factual"] for r in dataset["train"]}.isdisjoint({r["factual"] for r in dataset["validation"]})


def test_same_seed_same_dataset_other_seed_other_dataset():
    texts = corpus("he", 40) + corpus("it", 40, 40) + corpus("they", 40, 80)

    def build(seed):
        return {split: data.to_list() for split, data in make_feature_dataset(texts, NUMBER, seed=seed).items()}

    assert build(7) == build(7)
    assert build(7) != build(8)


def test_rows_are_valid():
    texts = corpus("he", 30) + corpus("she", 30, 30) + ['He said "she" and then he left the room.']
    rows = all_rows(make_feature_dataset(texts, GENDER))
    assert len(rows) == 60  # the sentence with both "he" and "she" gives no row
    for row in rows:
        assert row["masked"].count(MASK) == 1
        assert row["masked"].replace(MASK, row["factual"]) == row["text"]
        other = GENDER[row["alternative_class"]][0]
        assert not re.search(rf"\b{other}\b", row["masked"], re.IGNORECASE)


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("texts", [[], "", ["   ", "\n\n"], ["!!! ... ???"], ["Two words."]])
def test_no_text(texts):
    with pytest.raises(NoTextError, match="No sentence"):
        make_feature_dataset(texts, GENDER)


def test_class_without_match_is_named():
    with pytest.raises(NoMatchError, match=r"class 'F' \(she\)"):
        make_feature_dataset(corpus("he", 20), GENDER)


def test_class_with_too_few_rows():
    texts = corpus("he", 20) + corpus("she", 2, 20) + ["She told him that he was late again."]
    with pytest.raises(NotEnoughRowsError, match=r"Class 'F' has 2 usable row\(s\)") as error:
        make_feature_dataset(texts, GENDER)
    assert not isinstance(error.value, NotEnoughWordsError)
    dataset = make_feature_dataset(texts, GENDER, split_ratios=(0.5, 0.5, 0))
    assert Counter(dataset["validation"]["factual_class"]) == {"M": 10, "F": 1}


def test_matches_that_never_qualify_give_not_enough_rows():
    texts = corpus("he", 20) + ["She told him that he was late again."]
    with pytest.raises(NotEnoughRowsError, match="Class 'F' has 0 usable"):
        make_feature_dataset(texts, GENDER)


@pytest.mark.parametrize(
    ("classes", "error", "message"),
    [
        ({"M": ["he"]}, ClassCountError, "at least two classes, got 1"),
        ([("M", ["he"]), ("F", ["she"])], ClassCountError, "mapping"),
        ({"M": ["he"], "F": ["New-York"]}, InvalidWordError, "'New-York', which is neither a word nor a phrase"),
        ({"M": ["he's"], "F": ["she"]}, InvalidWordError, "neither a word nor a phrase"),
        ({"M": [""], "F": ["she"]}, InvalidWordError, "neither a word nor a phrase"),
        ({"M": [3], "F": ["she"]}, InvalidWordError, "neither a word nor a phrase"),
        ({"M": "he", "F": ["she"]}, InvalidWordError, r"not the string 'he'"),
        ({"M": [], "F": ["she"]}, InvalidWordError, "Class 'M' has no words"),
        ({"M": ["he", "It"], "F": ["she", "it"]}, OverlappingClassesError, r"\['it'\] belong to both"),
    ],
)
def test_invalid_classes(classes, error, message):
    with pytest.raises(error, match=message):
        make_feature_dataset(corpus("he", 20), classes)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split_ratios": (0.8, 0.1)},
        {"split_ratios": (0.8, 0.3, 0.1)},
        {"split_ratios": (0.0, 0.5, 0.5)},
        {"split_ratios": (1.2, -0.1, -0.1)},
        {"split_ratios": {"train": 0.9, "dev": 0.1}},
        {"split_by": "sentence"},
        {"min_left_context_words": -1},
        {"max_rows_per_class": 0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(FeatureDataError):
        make_feature_dataset(corpus("he", 20) + corpus("she", 20, 20), GENDER, **kwargs)


def test_errors_are_value_errors():
    assert issubclass(FeatureDataError, ValueError)
    with pytest.raises(ValueError):
        make_feature_dataset([], GENDER)
