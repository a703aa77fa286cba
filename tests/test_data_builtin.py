"""Built-in datasets: shipped files, offline loading, sizes, splits and row validity."""

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from gradiend_hf.data import (
    ENGLISH_PERSONAL_PRONOUNS,
    FEATURE_COLUMNS,
    MASK,
    UnknownBuiltinError,
    builtin_info,
    list_builtin,
    load_builtin,
)


WORD = re.compile(r"[^\W_]+")
FEATURE_DATASETS = {
    "gender-en": {"M": ["he"], "F": ["she"]},
    "pronoun-number-en": {"3SG": ["he", "she", "it"], "3PL": ["they"]},
}


@pytest.fixture(scope="module", params=sorted(FEATURE_DATASETS))
def feature_dataset(request):
    return request.param, load_builtin(request.param)


def test_list_builtin():
    assert list_builtin() == ["gender-en", "names-en", "neutral-en", "pronoun-number-en", "pronouns-en"]
    with pytest.raises(UnknownBuiltinError, match="available: .*gender-en"):
        load_builtin("gender-de")


def test_feature_dataset_shape(feature_dataset):
    name, dataset = feature_dataset
    classes = FEATURE_DATASETS[name]
    assert list(dataset) == ["train", "validation", "test"]
    info = builtin_info(name)
    assert info["classes"] == classes and list(info["classes"]) == list(classes)  # label order
    for split, data in dataset.items():
        assert tuple(data.column_names) == FEATURE_COLUMNS
        assert len(data) == info["num_rows"][split]
        assert "label +1" in data.info.description and data.info.license
    per_class = Counter(row["factual_class"] for split in dataset.values() for row in split)
    for class_name in classes:
        assert 1000 <= per_class[class_name] <= 3000, per_class
        train, validation, test = (Counter(dataset[split]["factual_class"])[class_name] for split in dataset)
        assert validation == test and abs(train - 8 * validation) <= 8


def test_feature_rows_are_valid_with_ten_words_of_left_context(feature_dataset):
    name, dataset = feature_dataset
    classes = FEATURE_DATASETS[name]
    first = next(iter(classes))
    for data in dataset.values():
        for row in data:
            before, after = row["masked"].split(MASK)  # exactly one mask, or this raises
            assert before + row["factual"] + after == row["text"]
            assert row["left_context_words"] == len(WORD.findall(before)) >= 10
            assert row["factual"].lower() in classes[row["factual_class"]]
            assert row["alternative"].lower() in classes[row["alternative_class"]]
            assert row["label"] == (1 if row["factual_class"] == first else -1)
            visible = {word.lower() for word in WORD.findall(before + " " + after)}
            assert not visible & set(classes[row["alternative_class"]])


def test_feature_splits_are_disjoint(feature_dataset):
    _, dataset = feature_dataset
    texts = [set(split["text"]) for split in dataset.values()]
    assert sum(map(len, texts)) == sum(len(split) for split in dataset.values())  # no duplicate within a split
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_neutral_dataset():
    dataset = load_builtin("neutral-en")
    assert dataset.column_names == ["text"] and 1000 <= len(dataset) <= 5000
    assert len(set(dataset["text"])) == len(dataset)
    pronouns = set(ENGLISH_PERSONAL_PRONOUNS)
    for text in dataset["text"]:
        assert not {word.lower() for word in WORD.findall(text)} & pronouns, text


def test_manifest_files_exist_with_attribution():
    from gradiend_hf.data.builtin_datasets import _builtin_dir

    folder = _builtin_dir()
    assert "CC BY-SA" in folder.joinpath("ATTRIBUTION.md").read_text(encoding="utf-8")
    for name in list_builtin():
        for path in builtin_info(name)["files"].values():
            assert folder.joinpath(path).is_file(), path


def test_loads_offline_without_writing_a_cache(tmp_path):
    code = (
        "from gradiend_hf.data import load_builtin; import json; "
        "print(json.dumps({n: len(load_builtin(n)['train']) for n in ['gender-en', 'pronoun-number-en']}))"
    )
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        name: builtin_info(name)["num_rows"]["train"] for name in FEATURE_DATASETS
    }
    cache = tmp_path / "hf" / "datasets"
    assert not cache.exists() or not any(path.suffix == ".arrow" for path in cache.rglob("*"))
