"""Phrases as class targets and paired word forms (issue 15, data layer)."""

import pytest

from gradiend_hf.data import (
    InvalidPairingError,
    WordPairing,
    make_feature_dataset,
    make_neutral_dataset,
    match_casing,
)
from gradiend_hf.data.classes import FeatureClasses


ALL_TRAIN = (1.0, 0.0, 0.0)
NOUNS = ["garden", "letter", "house", "river", "book", "window", "carriage", "dinner", "ball", "piano"]


def rows_of(dataset) -> list[dict]:
    return [row for split in dataset.values() for row in split.to_list()]


def sentences(word: str, count: int, offset: int = 0) -> list[str]:
    return [f"On day {offset + i} {word} saw the {NOUNS[i % len(NOUNS)]} again." for i in range(count)]


def test_phrases_are_matched_as_whole_phrases_and_masked_whole():
    text = [
        "On day 1 the African American man saw the garden again.",
        "On day 2 an African-American man saw the letter again.",  # hyphen: not the phrase
        "On day 3 two African Americans saw the house again.",  # another word
        "On day 4 the white man saw the river again.",
        "On day 5 the WHITE man saw the book again.",
    ]
    data = make_feature_dataset(text, {"B": ["African  American"], "W": ["white"]}, split_ratios=ALL_TRAIN)
    rows = sorted(rows_of(data), key=lambda r: r["text"])
    assert [(r["masked"], r["factual"], r["alternative"]) for r in rows] == [
        ("On day 1 the [MASK] man saw the garden again.", "African American", "White"),
        ("On day 4 the [MASK] man saw the river again.", "white", "african american"),
        ("On day 5 the [MASK] man saw the book again.", "WHITE", "AFRICAN AMERICAN"),
    ]


def test_the_longest_phrase_wins_where_several_start():
    text = ["On day 1 we saw New York City again.", "On day 2 we saw New York again.", "On day 3 we saw Paris again."]
    data = make_feature_dataset(text, {"A": ["new york city", "paris"], "B": ["new york"]}, split_ratios=ALL_TRAIN)
    by_text = {r["text"]: r for r in rows_of(data)}
    assert by_text[text[0]]["masked"] == "On day 1 we saw [MASK] again." and by_text[text[0]]["factual_class"] == "A"
    assert by_text[text[1]]["factual"] == "New York" and by_text[text[1]]["alternative"] in {"New York City", "Paris"}


@pytest.mark.parametrize(
    "template, word, expected",
    [
        ("Black", "african american", "African American"),
        ("New York", "los angeles", "Los Angeles"),
        ("African american", "white", "White"),
        ("BLACK", "african american", "AFRICAN AMERICAN"),
        ("black", "african american", "african american"),
    ],
)
def test_casing_of_phrases(template, word, expected):
    assert match_casing(template, word) == expected


def test_neutral_data_excludes_phrases_whole():
    text = ["I went to New York last year with friends.", "I went to new-york last year with my friends."]
    kept = make_neutral_dataset(text, ["New York"], min_words=3)["text"]
    assert kept == ["I went to new-york last year with my friends."]


GENDER_FORMS = {"M": ["he", "him", "his"], "F": ["she", "her", "her"]}


def test_paired_forms_give_each_word_its_counterpart():
    text = (
        sentences("he", 4)
        + [f"On day {10 + i} I saw him near the {NOUNS[i]} again." for i in range(4)]
        + [f"On day {20 + i} I saw his old {NOUNS[i]} again." for i in range(4)]
        + [f"On day {30 + i} I saw her old {NOUNS[i]} again." for i in range(6)]
        + sentences("she", 4, offset=40)
    )
    data = make_feature_dataset(text, GENDER_FORMS, paired=True, split_ratios=ALL_TRAIN)
    pairs = {(r["factual"], r["alternative"]) for r in rows_of(data)}
    assert {(f, a) for f, a in pairs if f != "her"} == {("he", "she"), ("him", "her"), ("his", "her"), ("she", "he")}
    assert {a for f, a in pairs if f == "her"} <= {"him", "his"}
    assert "Paired word forms" in data["train"].info.description
    # The same through an explicit table, in class order or by class name.
    table = [("he", "she"), {"M": "him", "F": "her"}, ("his", "her")]
    again = make_feature_dataset(
        text, {"M": ["he", "him", "his"], "F": ["she", "her"]}, pairs=table, split_ratios=ALL_TRAIN
    )
    assert {(r["factual"], r["alternative"]) for r in rows_of(again)} == pairs


@pytest.mark.parametrize(
    "classes, kwargs, message",
    [
        ({"M": ["he", "him"], "F": ["she"]}, {"paired": True}, r"same length.*\{'M': 2, 'F': 1\}"),
        ({"M": ["he", "him"], "F": ["she", "her"]}, {"pairs": [("he", "she")]}, r"\['him'\] of class 'M' have no"),
        ({"M": ["he"], "F": ["she"]}, {"pairs": [("he", "it")]}, r"\['it'\] for class 'F'"),
        ({"M": ["he"], "F": ["she"]}, {"pairs": [("he",)]}, "one word for each of the classes"),
        ({"M": ["he"], "F": ["she"]}, {"pairs": [("he", "she")], "paired": True}, "not both"),
        (
            {"M": ["him", "his"], "F": ["her", "hers"]},
            {"pairs": [("him", "her"), ("his", "her"), ("his", "hers")]},
            r"\['him', 'his'\] \(M\) and \['her', 'hers'\] \(F\) are paired many-to-many",
        ),
    ],
)
def test_bad_pairings_are_errors_naming_the_words(classes, kwargs, message):
    text = sentences("he", 3) + sentences("she", 3, offset=10)
    with pytest.raises(InvalidPairingError, match=message):
        make_feature_dataset(text, classes, split_ratios=ALL_TRAIN, **kwargs)


def test_counterparts_many_to_one():
    pairing = WordPairing.aligned(GENDER_FORMS)
    pairing.check(FeatureClasses.from_mapping(GENDER_FORMS))
    assert pairing.counterparts("His", 0, 1) == ("her",)
    assert pairing.counterparts("her", 1, 0) == ("him", "his")
    assert pairing.counterparts("it", 0, 1) == ()
