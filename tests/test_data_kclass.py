"""Feature datasets with more than two classes: rows, splits, casing and the errors of bad class definitions."""

import re
from collections import Counter

import pytest

from gradiend_hf.data import (
    MASK,
    MULTICLASS_COLUMNS,
    EmptyClassError,
    FeatureDataError,
    NoMatchError,
    NotEnoughRowsError,
    NotEnoughWordsError,
    OverlappingClassesError,
    feature_class_names,
    make_feature_dataset,
    recase,
)
from gradiend_hf.data.casing import starts_capitalised
from gradiend_hf.errors import GradiendError


WORD = re.compile(r"[^\W_]+")
NOUNS = ["garden", "letter", "house", "river", "book", "window", "carriage", "dinner", "ball", "piano"]
THREE = {"M": ["he"], "F": ["she"], "N": ["it"]}
PRONOUNS = {"1SG": ["i"], "1PL": ["we"], "2": ["you"], "3SG": ["he", "she", "it"], "3PL": ["they"]}


def corpus(pronoun: str, count: int, offset: int = 0) -> list[str]:
    """`count` distinct sentences with `pronoun` as their fourth word."""
    return [f"On day {offset + i} {pronoun} saw the {NOUNS[i % len(NOUNS)]} again." for i in range(count)]


def all_rows(dataset) -> list[dict]:
    return [row for split in dataset.values() for row in split.to_list()]


def pronoun_corpus() -> list[str]:
    """Sentences with exactly one pronoun each: 50 I, 40 we, 30 you, 20+10+10 he/she/it, 60 they."""
    return (
        corpus("I", 50)
        + corpus("we", 40, 100)
        + corpus("you", 30, 200)
        + corpus("he", 20, 300)
        + corpus("she", 10, 400)
        + corpus("it", 10, 500)
        + corpus("they", 60, 600)
    )


def test_three_classes_from_prose():
    prose = " ".join(corpus("he", 30) + corpus("she", 20, 30) + corpus("it", 10, 50))
    prose += " He told her that it was late. Nothing happened on that day."  # three classes, then none: no rows
    dataset = make_feature_dataset(prose, THREE)
    assert list(dataset) == ["train", "validation", "test"]
    assert feature_class_names(dataset) == ["M", "F", "N"]
    for split in dataset.values():
        assert tuple(split.column_names) == MULTICLASS_COLUMNS
        assert list(split.features["alternatives"]) == ["M", "F", "N"]
    counts = {split: Counter(data["factual_class"]) for split, data in dataset.items()}
    assert counts == {
        "train": {"M": 24, "F": 16, "N": 8},
        "validation": {"M": 3, "F": 2, "N": 1},
        "test": {"M": 3, "F": 2, "N": 1},
    }
    for row in all_rows(dataset):
        assert row["masked"].replace(MASK, row["factual"]) == row["text"] and row["masked"].count(MASK) == 1
        assert row["alternatives"][row["factual_class"]] == row["factual"]  # the identity transition
        for name, word in row["alternatives"].items():
            assert word.lower() in THREE[name]
        assert "told her" not in row["text"]
    assert "M: he; F: she; N: it" in dataset["train"].info.description


def test_five_pronoun_classes_row_counts_and_disjoint_splits():
    texts = pronoun_corpus()
    dataset = make_feature_dataset(texts, PRONOUNS, seed=3)
    per_class = Counter(row["factual_class"] for row in all_rows(dataset))
    assert per_class == {"1SG": 50, "1PL": 40, "2": 30, "3SG": 40, "3PL": 60}
    for name, total in per_class.items():
        train, validation, test = (Counter(dataset[split]["factual_class"])[name] for split in dataset)
        assert (train, validation, test) == (total * 8 // 10, total // 10, total // 10)
    seen = [set(split["text"]) for split in dataset.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert set().union(*seen) == set(texts)


def test_alternatives_follow_the_frequencies_of_each_class():
    texts = corpus("he", 90) + corpus("she", 10, 90) + corpus("it", 100, 100) + corpus("they", 100, 200)
    dataset = make_feature_dataset(texts, {"M": ["he"], "SHE": ["she"], "N": ["it"], "PL": ["they", "them"]})
    rows = [row for row in all_rows(dataset) if row["factual_class"] != "PL"]
    assert {row["alternatives"]["PL"] for row in rows} == {"they"}  # "them" never occurs
    dataset = make_feature_dataset(texts, {"SG": ["he", "she"], "N": ["it"], "PL": ["they"]}, seed=5)
    drawn = Counter(row["alternatives"]["SG"] for row in all_rows(dataset) if row["factual_class"] == "PL")
    assert 0.8 < drawn["he"] / 100 < 0.98 and drawn["she"] > 0


def test_sentences_with_words_of_two_classes_give_no_row():
    mixed = ["On that day I told you about the garden.", "Later that day we saw that it was late."]
    dataset = make_feature_dataset(pronoun_corpus() + mixed, PRONOUNS)
    assert not set(mixed) & {row["text"] for row in all_rows(dataset)}


def test_same_seed_same_dataset():
    def build(seed):
        return {split: data.to_list() for split, data in make_feature_dataset(texts, PRONOUNS, seed=seed).items()}

    texts = pronoun_corpus()
    assert build(4) == build(4)
    assert build(4) != build(5)


def test_max_rows_per_class_and_min_left_context_words():
    texts = pronoun_corpus() + ["We came home late.", "You came home late.", "I came home late."]
    dataset = make_feature_dataset(texts, PRONOUNS, max_rows_per_class=25, min_left_context_words=3)
    rows = all_rows(dataset)
    assert Counter(row["factual_class"] for row in rows) == {"1SG": 25, "1PL": 25, "2": 25, "3SG": 25, "3PL": 25}
    assert min(row["left_context_words"] for row in rows) == 3


def test_split_by_word_holds_out_words_per_class():
    texts = corpus("he", 30) + corpus("she", 30, 30) + corpus("it", 30, 60) + corpus("they", 30, 90)
    texts += corpus("them", 30, 120) + corpus("those", 30, 150) + corpus("we", 30, 180) + corpus("us", 30, 210)
    texts += corpus("ours", 30, 240)
    classes = {"3SG": ["he", "she", "it"], "3PL": ["they", "them", "those"], "1PL": ["we", "us", "ours"]}
    dataset = make_feature_dataset(texts, classes, split_by="word")
    for name in classes:
        words = {split: {r["factual"] for r in data if r["factual_class"] == name} for split, data in dataset.items()}
        assert all(words.values()) and not (words["train"] & (words["validation"] | words["test"]))
    with pytest.raises(NotEnoughWordsError, match="class '1SG'"):
        make_feature_dataset(pronoun_corpus(), PRONOUNS, split_by="word")


# --- casing ------------------------------------------------------------------------------------------------------


def alternatives_of(texts, classes=PRONOUNS, **kwargs) -> dict[str, dict]:
    dataset = make_feature_dataset(pronoun_corpus() + texts, classes, split_ratios=(1.0, 0.0, 0.0), **kwargs)
    return {row["text"]: row["alternatives"] for row in dataset["train"] if row["text"] in texts}


def test_casing_of_i_and_we_follows_the_position():
    texts = [
        "On that day I saw the garden.",
        "I saw the garden on that day.",
        "On that day we saw the letter.",
        "We saw the letter on that day.",
        "ON THAT DAY HE SAW THE HOUSE.",
        'Mary said, "I saw the river yesterday."',
        "It rained. Then we saw the river.",
        "So you saw the ball.",
    ]
    got = alternatives_of(texts)
    assert got[texts[0]] == {"1SG": "I", "1PL": "we", "2": "you", "3SG": got[texts[0]]["3SG"], "3PL": "they"}
    assert got[texts[0]]["3SG"] in {"he", "she", "it"}
    assert got[texts[1]]["1PL"] == "We" and got[texts[1]]["3PL"] == "They"
    assert got[texts[2]]["1SG"] == "I" and got[texts[2]]["2"] == "you"  # I stays capitalised mid-sentence
    assert got[texts[3]]["1SG"] == "I" and got[texts[3]]["2"] == "You"  # sentence-initial We
    assert got[texts[4]] | {"3SG": "HE"} == {"1SG": "I", "1PL": "WE", "2": "YOU", "3SG": "HE", "3PL": "THEY"}
    assert got[texts[5]]["1PL"] == "We"  # a quotation starts with a capital
    assert texts[6] not in got  # "It" and "we": two classes
    assert got[texts[7]]["1SG"] == "I" and got[texts[7]]["1PL"] == "we"


def test_two_class_data_with_i_keeps_it_capitalised():
    texts = corpus("I", 20) + corpus("we", 20, 20) + ["We saw the garden on that day.", "I saw the book today."]
    rows = {row["text"]: row for row in all_rows(make_feature_dataset(texts, {"SG": ["i"], "PL": ["we"]}))}
    assert rows[corpus("I", 1)[0]]["alternative"] == "we"
    assert rows[corpus("we", 1, 20)[0]]["alternative"] == "I"
    assert rows["We saw the garden on that day."]["alternative"] == "I"
    assert rows["I saw the book today."]["alternative"] == "We"
    rows = all_rows(make_feature_dataset(texts, {"SG": ["i"], "PL": ["we"]}, capitalised_words=[]))
    assert {row["alternative"] for row in rows if row["text"] == corpus("we", 1, 20)[0]} == {"i"}


@pytest.mark.parametrize(
    ("template", "word", "position", "expected"),
    [
        ("he", "she", False, "she"),
        ("He", "she", False, "She"),
        ("HE", "she", False, "SHE"),
        ("I", "we", False, "we"),
        ("I", "we", True, "We"),
        ("we", "i", False, "I"),
        ("We", "i", True, "I"),
        ("WE", "i", False, "I"),
        ("I", "they", False, "they"),
    ],
)
def test_recase(template, word, position, expected):
    assert recase(template, word, capitalised_position=position, always_capitalised=frozenset({"i"})) == expected


@pytest.mark.parametrize(
    ("template", "word", "position", "expected"),
    [("Paris", "rome", False, "Rome"), ("PARIS", "rome", False, "ROME"), ("Paris", "town", False, "town")],
)
def test_recase_of_other_always_capitalised_words(template, word, position, expected):
    capitalised = frozenset({"paris", "rome"})
    assert recase(template, word, capitalised_position=position, always_capitalised=capitalised) == expected


@pytest.mark.parametrize(
    ("sentence", "word", "expected"),
    [
        ("I came.", "I", True),
        ('"I came."', "I", True),
        ("Then I came.", "I", False),
        ('He said, "I came."', "I", True),
        ("No. I came.", "I", True),
        ("Then (I think) I came.", "I", False),
    ],
)
def test_starts_capitalised(sentence, word, expected):
    assert starts_capitalised(sentence, sentence.rindex(word)) is expected


# --- errors ------------------------------------------------------------------------------------------------------


def test_class_without_rows():
    texts = pronoun_corpus() + ["Then he and they said that you were there."]
    classes = {**PRONOUNS, "3PL-OBJ": ["them"]}
    with pytest.raises(NoMatchError, match=r"class '3PL-OBJ' \(them\)") as error:
        make_feature_dataset(texts, classes)
    assert isinstance(error.value, EmptyClassError)
    texts += ["Then he and they saw them there."]  # "them" occurs, but only beside words of other classes
    with pytest.raises(EmptyClassError, match=r"Class '3PL-OBJ' has 0 usable rows: .* 1 sentence\(s\), 1 of which"):
        make_feature_dataset(texts, classes)
    with pytest.raises(EmptyClassError, match="Class '1SG' has 0 usable rows"):
        make_feature_dataset(texts, PRONOUNS, min_left_context_words=4)


def test_word_in_two_classes():
    classes = {"1SG": ["i"], "3SG": ["he", "she", "it"], "3PL": ["they", "It"]}
    with pytest.raises(OverlappingClassesError, match=r"\['it'\] belong to both classes '3SG' and '3PL'"):
        make_feature_dataset(pronoun_corpus(), classes)


def test_error_hierarchy():
    for error in (EmptyClassError, NoMatchError, OverlappingClassesError):
        assert issubclass(error, FeatureDataError) and issubclass(error, GradiendError)
    assert issubclass(EmptyClassError, NotEnoughRowsError)


def test_rows_of_a_class_never_show_a_word_of_another_class():
    dataset = make_feature_dataset(pronoun_corpus() + ["Then she saw that they were right."], PRONOUNS)
    words = {word: name for name, class_words in PRONOUNS.items() for word in class_words}
    for row in all_rows(dataset):
        visible = {words[w.lower()] for w in WORD.findall(row["masked"]) if w.lower() in words}
        assert visible <= {row["factual_class"]}
