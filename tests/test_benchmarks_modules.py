"""The shipped `evaluate` modules load offline and compute exactly what the library functions compute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gradiend_hf.benchmarks import MODULES, BenchmarkError, crows_pairs_metrics, module_path, winobias_metrics
from gradiend_hf.evaluation.metrics import encoder_metrics


ROOT = Path(__file__).resolve().parents[1]

INPUTS = {
    "crows_pairs": dict(
        sent_more_score=[-10.0, -12.0, -8.0, -6.5],
        sent_less_score=[-11.0, -11.5, -9.0, -7.0],
        bias_type=["gender", "gender", "age", "age"],
        bootstrap_samples=50,
    ),
    "stereoset": dict(
        stereotype_score=[0.3, 0.1, 0.6],
        anti_stereotype_score=[0.2, 0.4, 0.1],
        unrelated_score=[0.1, 0.2, 0.7],
        target=["nurse", "nurse", "chess player"],
        bias_type=["profession"] * 3,
        bootstrap_samples=50,
    ),
    "winobias": dict(
        pro_score=[-3.0, -2.0, -1.0],
        anti_score=[-4.0, -1.0, -2.0],
        pro_gender=["male", "female", "male"],
        bootstrap_samples=50,
    ),
    "gradiend_encoder": dict(
        encoding=[0.9, -0.8, 0.7, -0.6, 0.05],
        expected=[1, -1, 1, -1, 0],
        type=["training"] * 4 + ["neutral_dataset"],
        factual_class=["M", "F", "M", "F", ""],
        factual=["he", "she", "he", "she", ""],
    ),
}

SCRIPT = """
import json, sys
import evaluate
from gradiend_hf.benchmarks import module_path
inputs = json.loads(sys.argv[1])
modules = {name: evaluate.load(module_path(name)) for name in inputs}
results = {name: modules[name].compute(**kwargs) for name, kwargs in inputs.items()}
info = {
    name: {"citation": m.citation, "description": m.description, "urls": m.reference_urls, "inputs": m.inputs_description}
    for name, m in modules.items()
}
print(json.dumps({"results": results, "info": info}))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every module loaded and computed in a fresh process with the Hub switched off and an empty modules cache."""
    cache = tmp_path_factory.mktemp("hf")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_HOME": str(cache),
        "HF_MODULES_CACHE": str(cache / "modules"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(INPUTS)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def module_results(loaded):
    return loaded["results"]


def test_every_module_loads_offline(module_results):
    assert set(module_results) == set(MODULES)


def test_modules_compute_through_the_library_functions(module_results):
    kwargs = dict(INPUTS["crows_pairs"])
    expected = crows_pairs_metrics(
        kwargs.pop("sent_more_score"), kwargs.pop("sent_less_score"), kwargs.pop("bias_type"), **kwargs
    )
    assert module_results["crows_pairs"] == json.loads(json.dumps(expected))
    # Pairs 1, 3 and 4 prefer the more stereotypical sentence: 75 %; gender 1 of 2, age 2 of 2.
    assert module_results["crows_pairs"]["stereotype_score"]["value"] == 75.0
    assert module_results["crows_pairs"]["by_bias_type"] == {
        "age": {**module_results["crows_pairs"]["by_bias_type"]["age"], "value": 100.0},
        "gender": {**module_results["crows_pairs"]["by_bias_type"]["gender"], "value": 50.0},
    }
    w = INPUTS["winobias"]
    expected = winobias_metrics(w["pro_score"], w["anti_score"], w["pro_gender"], bootstrap_samples=50)
    assert module_results["winobias"] == json.loads(json.dumps(expected))
    assert module_results["winobias"]["accuracy_pro"]["value"] == pytest.approx(200 / 3)
    assert module_results["stereoset"]["overall"]["ss"]["value"] == pytest.approx(100 * (0.5 + 1.0) / 2)


def test_encoder_module_matches_the_encoder_report_metrics(module_results):
    e = INPUTS["gradiend_encoder"]
    rows = pd.DataFrame({k: e[k] for k in ("encoding", "expected", "type", "factual_class", "factual")})
    rows.loc[rows["factual_class"] == "", "factual_class"] = None
    expected = json.loads(json.dumps(encoder_metrics(rows)))
    assert module_results["gradiend_encoder"] == expected
    assert module_results["gradiend_encoder"]["binary_accuracy"] == 1.0
    assert module_results["gradiend_encoder"]["mean_by_class"] == pytest.approx({"M": 0.8, "F": -0.7})


@pytest.mark.parametrize("name", MODULES)
def test_module_card_has_the_header_evaluate_spaces_expect(name):
    text = (Path(module_path(name)) / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    assert {"title", "emoji", "colorFrom", "colorTo", "sdk", "app_file", "tags", "description"} <= set(header)
    assert "evaluate" in header["tags"] and "metric" in header["tags"]
    for section in ("## Metric Description", "## How to Use", "### Inputs", "### Output Values", "## Citation"):
        assert section in text
    assert (Path(module_path(name)) / f"{name}.py").is_file()
    assert (Path(module_path(name)) / header["app_file"]).is_file()


def test_module_files_import_each_dependency_on_its_own_line():
    # evaluate reads a module's requirements line by line: `import a, b` would be misread.
    for name in MODULES:
        for line in (Path(module_path(name)) / f"{name}.py").read_text().splitlines():
            if line.startswith("import "):
                assert "," not in line, line


def test_module_texts_come_from_the_module_card_and_citation_file(loaded):
    crows = loaded["info"]["crows_pairs"]
    assert crows["citation"].startswith("@inproceedings{nangia-etal-2020-crows,")
    assert crows["urls"] == ["https://github.com/nyu-mll/crows-pairs", "https://aclanthology.org/2020.emnlp-main.154"]
    assert crows["description"].startswith("CrowS-Pairs (Nangia et al., 2020) pairs a sentence")
    assert "sent_more_score" in crows["inputs"] and "Examples" not in crows["description"]
    for name, info in loaded["info"].items():
        assert info["citation"].startswith("@"), name
        assert info["description"] and info["inputs"], name


def test_unknown_module_is_refused():
    with pytest.raises(BenchmarkError, match="crows_pairs"):
        module_path("seat")
