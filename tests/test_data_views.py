"""Two-class views of feature datasets: pairs, one-vs-rest, merged classes, identity rows, transitions, errors."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradiend_hf.data import (
    FEATURE_COLUMNS,
    ClassView,
    EmptyClassError,
    FeatureDataError,
    InvalidViewError,
    OneVsRestError,
    UnknownClassError,
    all_pair_views,
    apply_view,
    builtin_info,
    feature_class_names,
    make_feature_dataset,
    merged_view,
    one_vs_rest_view,
    one_vs_rest_views,
    pair_view,
    transitions_view,
)
from gradiend_hf.errors import GradiendError


NOUNS = ["garden", "letter", "house", "river", "book", "window", "carriage", "dinner", "ball", "piano"]
PRONOUNS = {"1SG": ["i"], "1PL": ["we"], "2": ["you"], "3SG": ["he", "she", "it"], "3PL": ["they"]}
WORDS = {"i": 50, "we": 40, "you": 30, "he": 20, "she": 10, "it": 10, "they": 60}
# Everything a row holds except its alternative word, which is a seeded draw where a class has several words.
KEY = ("text", "masked", "factual", "factual_class", "alternative_class", "label", "left_context_words")


def corpus(pronoun: str, count: int, offset: int = 0) -> list[str]:
    return [f"On day {offset + i} {pronoun} saw the {NOUNS[i % len(NOUNS)]} again." for i in range(count)]


def texts_of(words: dict[str, int]) -> list[str]:
    """One pronoun per sentence, so a view of the k-class data and a direct build see the same sentences."""
    return [text for index, (word, count) in enumerate(words.items()) for text in corpus(word, count, 100 * index)]


TEXTS = texts_of(WORDS)


@pytest.fixture(scope="module")
def pronouns():
    return make_feature_dataset(TEXTS, PRONOUNS, seed=1)


def rows(dataset) -> list[dict]:
    return [row for split in dataset.values() for row in split.to_list()]


def keys(dataset) -> Counter:
    return Counter(tuple(row[column] for column in KEY) for row in rows(dataset))


def per_split_counts(dataset) -> dict:
    return {split: Counter(zip(data["factual_class"], data["label"])) for split, data in dataset.items()}


def assert_same_rows(view, direct, classes: dict[str, list[str]]):
    """The view has the rows of the direct build: same sentences, masks, classes, labels; valid alternatives."""
    assert list(view) == list(direct)
    for data in view.values():
        assert tuple(data.column_names) == FEATURE_COLUMNS
    assert keys(view) == keys(direct)
    assert per_split_counts(view) == per_split_counts(direct)
    by_text = {row["text"]: row["alternative"] for row in rows(direct)}
    for row in rows(view):
        word = row["alternative"].lower()
        assert word in classes[row["alternative_class"]]
        assert row["alternative"] == ("I" if word == "i" else word)  # every blank of TEXTS is mid-sentence
        if len(classes[row["alternative_class"]]) == 1:  # nothing to draw: the very same word
            assert row["alternative"] == by_text[row["text"]]


@pytest.mark.parametrize(("positive", "negative"), [("1SG", "3PL"), ("3SG", "2"), ("1PL", "3SG")])
def test_pair_view_equals_a_direct_build(pronouns, positive, negative):
    view = pair_view(pronouns, positive, negative)
    classes = {positive: PRONOUNS[positive], negative: PRONOUNS[negative]}
    assert_same_rows(view, make_feature_dataset(TEXTS, classes, seed=1), classes)
    assert feature_class_names(view) == [positive, negative]
    assert {row["label"] for row in rows(view) if row["factual_class"] == positive} == {1}


def test_one_vs_rest_view_equals_a_direct_build(pronouns):
    view = one_vs_rest_view(pronouns, "2")
    rest = [word for name, words in PRONOUNS.items() if name != "2" for word in words]
    classes = {"2": ["you"], "non-2": rest}
    assert_same_rows(view, make_feature_dataset(TEXTS, classes), classes)
    drawn = Counter(row["alternative"] for row in rows(view) if row["factual_class"] == "2")
    assert {word.lower() for word in drawn} <= set(rest) and len(drawn) >= 4  # from several rest classes


def test_merged_view_equals_a_direct_build(pronouns):
    view = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]})
    classes = {"SG": ["i", "he", "she", "it"], "PL": ["we", "they"]}
    assert_same_rows(view, make_feature_dataset(TEXTS, classes), classes)
    assert "2" not in {row["factual_class"] for row in rows(view)}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(10, 25), min_size=7, max_size=7),
    assignment=st.lists(st.integers(0, 3), min_size=7, max_size=7),
    seed=st.integers(0, 5),
)
def test_pair_views_equal_direct_builds_for_any_classes(counts, assignment, seed):
    words = dict(zip(WORDS, counts))
    classes = {f"C{index}": [w for w, a in zip(WORDS, assignment) if a == index] for index in range(4)}
    classes = {name: class_words for name, class_words in classes.items() if class_words}
    if len(classes) < 3:
        return
    texts = texts_of(words)
    dataset = make_feature_dataset(texts, classes, segment=False, seed=seed)
    first, second = list(classes)[:2]
    pair = {first: classes[first], second: classes[second]}
    direct = make_feature_dataset(texts, pair, segment=False, seed=seed)
    assert_same_rows(pair_view(dataset, first, second), direct, pair)


def test_pair_view_of_two_class_data_is_the_data_itself():
    data = make_feature_dataset(corpus("he", 30) + corpus("she", 20, 30), {"M": ["he"], "F": ["she"]})
    same = pair_view(data, "M", "F")
    assert {split: d.to_list() for split, d in same.items()} == {split: d.to_list() for split, d in data.items()}
    flipped = pair_view(data, "F", "M")
    assert [row["label"] for row in rows(flipped)] == [-row["label"] for row in rows(data)]
    assert feature_class_names(data) == ["M", "F"] and feature_class_names(flipped) == ["F", "M"]


def test_identity_rows_expect_zero(pronouns):
    view = pair_view(pronouns, "1SG", "3PL", identity=True)
    plain = pair_view(pronouns, "1SG", "3PL")
    for split in pronouns:
        identity = [row for row in view[split] if row["label"] == 0]
        others = Counter(name for name in pronouns[split]["factual_class"] if name not in ("1SG", "3PL"))
        assert Counter(row["factual_class"] for row in identity) == others
        for row in identity:
            assert row["factual"] == row["alternative"] and row["factual_class"] == row["alternative_class"]
        assert [row for row in view[split] if row["label"] != 0] == plain[split].to_list()
    merged = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, identity=True)
    assert {(row["factual_class"], row["label"]) for row in rows(merged) if row["label"] == 0} == {("2", 0)}
    assert "identity rows" in merged["train"].info.description


def test_merged_view_with_pairs_keeps_the_person(pronouns):
    view = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, pairs=[("1SG", "1PL"), ("3SG", "3PL")])
    original = {row["text"]: row["factual_class"] for row in rows(pronouns)}
    partner = {"1SG": {"we"}, "1PL": {"I"}, "3SG": {"they"}, "3PL": {"he", "she", "it"}}
    for row in rows(view):
        assert row["alternative"] in partner[original[row["text"]]]
    only_first = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, pairs=[("1SG", "1PL")])
    assert {original[row["text"]] for row in rows(only_first)} == {"1SG", "1PL"}


def test_merged_draws_do_not_depend_on_row_order(pronouns):
    view = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, seed=2)
    shuffled = merged_view(pronouns.shuffle(seed=9), {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, seed=2)
    assert sorted(map(str, rows(view))) == sorted(map(str, rows(shuffled)))
    other_seed = merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, seed=3)
    assert rows(view) != rows(other_seed)


def test_transitions_view(pronouns):
    view = ClassView.pair("1SG", "3SG")
    transitions = transitions_view(pronouns, view)
    for split in pronouns:
        assert len(transitions[split]) == 5 * len(pronouns[split])  # four transitions and the identity per row
        texts = {split_texts for split_texts in transitions[split]["text"]}
        assert texts == set(pronouns[split]["text"])  # a sentence stays in its split
        labelled = [row for row in transitions[split] if row["label"] != 0]
        assert {(row["factual_class"], row["alternative_class"], row["label"]) for row in labelled} == {
            ("1SG", "3SG", 1),
            ("3SG", "1SG", -1),
        }
        assert sorted(map(str, labelled)) == sorted(map(str, pair_view(pronouns, "1SG", "3SG")[split].to_list()))
    identity = [row for row in rows(transitions) if row["factual_class"] == row["alternative_class"]]
    assert len(identity) == sum(len(split) for split in pronouns.values())
    assert all(row["label"] == 0 and row["factual"] == row["alternative"] for row in identity)
    without = transitions_view(pronouns, identity=False)
    assert len(rows(without)) == 4 * len(rows(pronouns)) and {row["label"] for row in rows(without)} == {0}
    merged = transitions_view(pronouns, ClassView.merged({"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}))
    labels = {(row["factual_class"], row["alternative_class"]): row["label"] for row in rows(merged)}
    assert labels[("1SG", "3PL")] == 1 and labels[("1PL", "3SG")] == -1
    assert labels[("1SG", "3SG")] == labels[("2", "1SG")] == labels[("1SG", "1SG")] == 0


def test_views_keep_order_and_splits(pronouns):
    view = one_vs_rest_view(pronouns, "1SG")
    for split in pronouns:
        assert view[split]["text"] == pronouns[split]["text"]  # every row, in order


def test_a_single_split_dataset_gives_a_single_split_view(pronouns):
    view = pair_view(pronouns["validation"], "1SG", "2")
    assert view.split == "validation" and set(view["factual_class"]) == {"1SG", "2"}


# --- view specifications -----------------------------------------------------------------------------------------


def test_all_pairs_and_one_vs_rest_views():
    names = list(PRONOUNS)
    pairs = all_pair_views(names)
    assert len(pairs) == 10 and pairs[0].name == "1SG-vs-1PL" and pairs[-1].name == "3SG-vs-3PL"
    rest = one_vs_rest_views(names)
    assert [view.name for view in rest] == [f"{name}-vs-rest" for name in names]
    assert rest[0].negative_classes == ("1PL", "2", "3SG", "3PL")


@pytest.mark.parametrize(
    "view",
    [
        ClassView.pair("1SG", "3SG", identity=True),
        ClassView.one_vs_rest("2").resolve(list(PRONOUNS)),
        ClassView.merged({"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, pairs=[("1SG", "1PL")]),
    ],
)
def test_view_round_trip(view):
    assert ClassView.from_dict(view.to_dict()) == view


def test_apply_view_takes_a_stored_view(pronouns):
    stored = ClassView.one_vs_rest("3PL").resolve(feature_class_names(pronouns)).to_dict()
    assert rows(apply_view(pronouns, ClassView.from_dict(stored))) == rows(one_vs_rest_view(pronouns, "3PL"))


# --- errors, before any model is loaded ---------------------------------------------------------------------------


def test_pair_naming_an_unknown_class(pronouns):
    with pytest.raises(UnknownClassError, match=r"'1sg', but the dataset's classes are .*Did you mean '1SG'"):
        pair_view(pronouns, "1sg", "3SG")
    with pytest.raises(UnknownClassError, match="'4SG'"):  # checked from the class names alone
        ClassView.pair("1SG", "4SG").resolve(list(builtin_info("pronouns-en")["classes"]))
    with pytest.raises(UnknownClassError):
        merged_view(pronouns, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}, pairs=[("1SG", "2PL")])


def test_one_vs_rest_with_a_single_class(pronouns):
    with pytest.raises(OneVsRestError, match="needs at least one other class"):
        ClassView.one_vs_rest("1SG").resolve(["1SG"])
    with pytest.raises(OneVsRestError):
        one_vs_rest_view(pronouns, "1SG", rest=["1SG"])
    with pytest.raises(OneVsRestError):
        one_vs_rest_views(["1SG"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda data: pair_view(data, "1SG", "1SG"), "both sides"),
        (lambda data: merged_view(data, {"SG": ["1SG", "3SG"], "PL": ["3SG", "3PL"]}), r"\['3SG'\] are on both"),
        (lambda data: merged_view(data, {"SG": ["1SG"], "PL": ["1PL"], "X": ["2"]}), "exactly two groups"),
        (lambda data: merged_view(data, {"SG": "1SG", "PL": ["1PL"]}), "non-empty list"),
        (lambda data: merged_view(data, {"2": ["1SG"], "PL": ["1PL"]}), "also a class outside the view"),
        (lambda data: pair_view(transitions_view(data), "1SG", "2"), "one row per sentence"),
        (lambda data: merged_view(data, {"SG": ["1SG"], "PL": ["1PL"]}, pairs=[("1SG", "2")]), "does not join"),
    ],
)
def test_invalid_views(pronouns, make, message):
    with pytest.raises(InvalidViewError, match=message):
        make(pronouns)


def test_a_side_without_rows(pronouns):
    without_3pl = pronouns.filter(lambda row: row["factual_class"] != "3PL")
    with pytest.raises(EmptyClassError, match="no row of '3PL' in the split 'train'"):
        pair_view(without_3pl, "1SG", "3PL")


def test_view_errors_are_library_errors():
    for error in (UnknownClassError, OneVsRestError, InvalidViewError, EmptyClassError):
        assert issubclass(error, FeatureDataError) and issubclass(error, GradiendError)
