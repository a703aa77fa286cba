"""Sentence splitting, cleaning and word tokenisation (`gradiend_hf.data.text`)."""

import pytest

from gradiend_hf.data import clean_sentence, count_words, split_sentences
from gradiend_hf.data.text import is_single_word


def test_abbreviations_do_not_end_sentences():
    text = "Mr. Darcy met Mrs. Bennet at 5 p.m. in the U.S. embassy. Then they left the room together."
    assert split_sentences(text) == [
        "Mr. Darcy met Mrs. Bennet at 5 p.m. in the U.S. embassy.",
        "Then they left the room together.",
    ]


def test_dialogue_keeps_attribution_and_splits_long_speeches():
    text = (
        '"I am sure," said he, "that you are right, Mr. Darcy." '
        '"Oh! Mr. Bennet, how can you abuse your own children in such a way? You take delight in vexing me." '
        "cried she. "
        '"Me! I should be quite in the way. But, perhaps, I may be equally in the way here." Then he left.'
    )
    assert split_sentences(text) == [
        '"I am sure," said he, "that you are right, Mr. Darcy."',
        "Oh! Mr. Bennet, how can you abuse your own children in such a way?",
        '"You take delight in vexing me." cried she.',
        "Me! I should be quite in the way.",
        "But, perhaps, I may be equally in the way here.",
        "Then he left.",
    ]


def test_short_quotation_inside_a_sentence_stays_whole():
    assert split_sentences('She said "Stop. Now." and left the room.') == ['She said "Stop. Now." and left the room.']


def test_paragraphs_and_wrapped_lines():
    text = "The first line\nwraps here.\n\n  The second   paragraph\tstarts here.\r\n\r\nA third one is here."
    assert split_sentences(text) == [
        "The first line wraps here.",
        "The second paragraph starts here.",
        "A third one is here.",
    ]


def test_length_filters_and_deduplication():
    text = "Yes. This one is long enough. This one is long enough. " + "word " * 70 + "end."
    assert split_sentences(text) == ["This one is long enough.", "This one is long enough."]
    assert split_sentences(text, deduplicate=True) == ["This one is long enough."]
    assert split_sentences(text, min_words=1, max_words=4) == ["Yes."]


def test_segment_false_keeps_paragraphs_whole():
    text = "One sentence here. Another sentence here."
    assert split_sentences(text, segment=False) == [text]


def test_typographic_quotes_and_invisible_characters_are_normalised():
    text = "\u201cWell,\u201d said Anne\u2019s friend,\u200b \u201cit is late.\u201d\x00"
    assert split_sentences(text) == ['"Well," said Anne\'s friend, "it is late."']


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('"Oh! Mr. Bennet, how can you', "Oh! Mr. Bennet, how can you"),
        ('She said "stop', 'She said "stop"'),
        ('You take delight in vexing me," cried she.', '"You take delight in vexing me," cried she.'),
        ('"Quite right."', "Quite right."),
        ('"Do you?" "Yes."', '"Do you?" "Yes."'),
        ('He said "no" twice.', 'He said "no" twice.'),
        ("-- Then   he left. --", "Then he left."),
        ("", ""),
    ],
)
def test_clean_sentence(raw, clean):
    assert clean_sentence(raw) == clean


def test_empty_and_punctuation_only_input():
    assert split_sentences([]) == []
    assert split_sentences(["", "   ", "!!! ... ???", "\n\n"]) == []


def test_non_string_items_are_rejected():
    with pytest.raises(TypeError, match="strings"):
        split_sentences(["fine text here", 3])


def test_words():
    # He / s / a / she / wolf / isn / t / it / 42 / times
    assert count_words("He's a she-wolf, isn't it? 42 times!") == 10
    assert is_single_word("he") and is_single_word("Élan") and is_single_word("3PL")
    for word in ("", "he is", "he's", "she-wolf", " he", "he_", None, 3):
        assert not is_single_word(word)
