"""Property-based tests: arbitrary text in, valid rows (or a documented error) out."""

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradiend_hf.data import (
    MASK,
    FeatureDataError,
    NoMatchError,
    NotEnoughRowsError,
    NoTextError,
    make_feature_dataset,
    make_neutral_dataset,
    split_sentences,
)


# The specification of a word, written independently of the library: a run of letters and digits.
WORD = re.compile(r"[^\W_]+")
CLASS_DEFINITIONS = [
    {"M": ["he"], "F": ["she"]},
    {"3SG": ["he", "she", "it"], "3PL": ["they"]},
    {"DEF": ["the"], "INDEF": ["a", "an"]},
]
DOCUMENTED_ERRORS = (NoTextError, NoMatchError, NotEnoughRowsError)

CLASS_WORDS = st.sampled_from(
    ["he", "He", "HE", "hE", "she", "She", "SHE", "it", "It", "they", "They", "THEY", "the", "The", "a", "A", "an"]
)
NEAR_MISSES = st.sampled_from(
    ["then", "shed", "hen", "ashes", "these", "theya", "he's", "she-wolf", "_he_", "He2", "éhe"]
)
FILLERS = st.sampled_from(
    ["Mr.", "U.S.", "p.m.", "said", "Darcy", "came", "home", "late", "garden", "and", "of", "to"]
)
NOISE = st.one_of(
    st.sampled_from(
        [
            *(
                ".",
                ",",
                "!",
                "?",
                ";",
                '"',
                "'",
                "\u201c",
                "\u201d",
                "--",
                "\u2014",
                "(",
                ")",
                "...",
                "[MASK]",
                "[MASK",
            ),
            *("\n", "\n\n", "\t", "\r\n", "\u00a0", "\u200b", "\x00", "  "),
        ]
    ),
    st.text(max_size=6),
)
TOKENS = st.one_of(CLASS_WORDS, NEAR_MISSES, FILLERS, FILLERS, NOISE)
SENTENCE = st.builds(lambda tokens, end: " ".join(tokens) + end, st.lists(TOKENS, min_size=1, max_size=16),
                     st.sampled_from([".", "!", "?", '."', "", "\n\n"]))  # fmt: skip
PROSE = st.lists(SENTENCE, max_size=10).map(" ".join)
ANY_TEXT = st.one_of(PROSE, st.text(max_size=80), st.just(""), st.text(alphabet=string.punctuation + " \n"))
HUGE_LINE = st.builds(lambda chunk, times: chunk * times, st.one_of(PROSE, st.text(min_size=1, max_size=30)),
                      st.integers(100, 600))  # fmt: skip


def words(text: str) -> list[str]:
    return [word.lower() for word in WORD.findall(text)]


def assert_valid_rows(dataset, classes: dict[str, list[str]], min_left_context_words: int) -> None:
    """Every row of every split obeys the contract of `make_feature_dataset`."""
    names = list(classes)
    assert list(dataset) == ["train", "validation", "test"]
    texts = []
    for split in dataset.values():
        assert split.features["label"].dtype == "int64"
        for row in split:
            texts.append(row["text"])
            masked, factual, alternative = row["masked"], row["factual"], row["alternative"]
            assert masked.count(MASK) == 1
            before, after = masked.split(MASK)
            assert before + factual + after == row["text"]
            # a whole word: no letter or digit glued to either side of the mask
            assert not WORD.fullmatch(before[-1:] or " ") and not WORD.fullmatch(after[:1] or " ")
            assert row["factual_class"] in names and row["alternative_class"] in names
            assert row["factual_class"] != row["alternative_class"]
            assert factual.lower() in classes[row["factual_class"]]
            assert alternative.lower() in classes[row["alternative_class"]]
            assert row["label"] == (1 if row["factual_class"] == names[0] else -1)
            visible = words(before + " " + after)
            assert not set(visible) & set(classes[row["alternative_class"]])
            assert row["left_context_words"] == len(words(before)) >= min_left_context_words
            if factual.islower():
                assert alternative.islower()
            elif len(factual) > 1 and factual.isupper():
                assert alternative.isupper()
            elif factual[0].isupper():
                assert alternative[0].isupper() and alternative[1:] == alternative[1:].lower()
    assert len(texts) == len(set(texts)), "one row per sentence"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(ANY_TEXT, max_size=12),
    classes=st.sampled_from(CLASS_DEFINITIONS),
    min_left_context_words=st.integers(0, 4),
    split_ratios=st.sampled_from([(1.0, 0.0, 0.0), (0.8, 0.1, 0.1), (0.5, 0.5, 0.0)]),
    seed=st.integers(0, 3),
)
def test_feature_rows_are_valid_or_a_documented_error(texts, classes, min_left_context_words, split_ratios, seed):
    try:
        dataset = make_feature_dataset(
            texts, classes, min_left_context_words=min_left_context_words, split_ratios=split_ratios, seed=seed
        )
    except DOCUMENTED_ERRORS as error:
        all_words = set(words(" ".join(texts)))
        if isinstance(error, NoTextError):
            assert split_sentences(texts) == []
        if not all(all_words & set(class_words) for class_words in classes.values()):
            # a class without any word in the text can only end in one of these two errors
            assert isinstance(error, NoTextError | NoMatchError)
        return
    assert_valid_rows(dataset, classes, min_left_context_words)
    wanted = [split for split, ratio in zip(dataset, split_ratios) if ratio > 0]
    for split in wanted:  # every split with a non-zero ratio has rows of both classes
        assert set(dataset[split]["factual_class"]) == set(classes)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(line=HUGE_LINE, classes=st.sampled_from(CLASS_DEFINITIONS))
def test_huge_lines(line, classes):
    try:
        dataset = make_feature_dataset([line, "He was late. She was early. It was late. They were early."], classes)
    except FeatureDataError as error:
        assert isinstance(error, DOCUMENTED_ERRORS)
        return
    assert_valid_rows(dataset, classes, 0)


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(ANY_TEXT, max_size=8), min_words=st.integers(1, 5), extra=st.integers(0, 10))
def test_sentences_are_clean(texts, min_words, extra):
    for sentence in split_sentences(texts, min_words=min_words, max_words=min_words + extra):
        assert sentence == sentence.strip() and "\n" not in sentence and "  " not in sentence
        assert min_words <= len(words(sentence)) <= min_words + extra
        assert sentence.count('"') % 2 == 0
        assert all(char.isprintable() or char == " " for char in sentence)


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(ANY_TEXT, max_size=8), exclude=st.sampled_from([[], ["he"], ["he", "she", "it", "they"]]))
def test_neutral_rows_never_contain_an_excluded_word(texts, exclude):
    try:
        dataset = make_neutral_dataset(texts, exclude)
    except NoTextError:
        return
    assert dataset.column_names == ["text"] and len(dataset) > 0
    for text in dataset["text"]:
        assert not set(words(text)) & set(exclude)
        assert MASK not in text
