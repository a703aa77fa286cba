"""`make_neutral_dataset`: sentences without the excluded words."""

import pytest

from gradiend_hf.data import ENGLISH_PERSONAL_PRONOUNS, InvalidWordError, NoTextError, make_neutral_dataset


TEXT = (
    "The river rose after the storm. He went home early. Then the shed was repaired by the village. "
    "SHE came back later that night. The [MASK] token is not text. Their house stood by the old mill. "
    "Ashes covered the hen house for days."
)


def test_sentences_with_excluded_words_are_dropped_whole_word_and_case_insensitive():
    dataset = make_neutral_dataset(TEXT, ["he", "she", "their"])
    assert dataset.column_names == ["text"]
    assert sorted(dataset["text"]) == [
        "Ashes covered the hen house for days.",
        "The river rose after the storm.",
        "Then the shed was repaired by the village.",
    ]


def test_personal_pronouns_and_no_exclusion():
    assert {"i", "he", "she", "it", "they", "them", "their", "yourselves"} <= set(ENGLISH_PERSONAL_PRONOUNS)
    kept = make_neutral_dataset(TEXT, ENGLISH_PERSONAL_PRONOUNS)["text"]
    assert "Their house stood by the old mill." not in kept and "The river rose after the storm." in kept
    assert len(make_neutral_dataset(TEXT, [])) == 6  # all but the sentence with a literal [MASK]


def test_max_rows_and_seed():
    texts = [f"The river number {i} rose after the storm." for i in range(50)]
    first, again, other = (make_neutral_dataset(texts, ["he"], max_rows=10, seed=seed)["text"] for seed in (1, 1, 2))
    assert len(first) == 10 and len(set(first)) == 10 and set(first) <= set(texts)
    assert first == again and first != other


def test_errors():
    with pytest.raises(NoTextError, match="free of the excluded words"):
        make_neutral_dataset("He went home early. She came back later.", ["he", "she"])
    with pytest.raises(NoTextError):
        make_neutral_dataset([], ["he"])
    with pytest.raises(InvalidWordError, match="neither a word nor a phrase"):
        make_neutral_dataset(TEXT, ["he's"])
    with pytest.raises(InvalidWordError, match="not the string"):
        make_neutral_dataset(TEXT, "he")
