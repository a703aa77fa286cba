"""Suites of GRADIENDs over a feature with several classes: member specs, per-transition metrics, training with
resume, the report, the Hub collection and the command line."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from transformers import TrainerCallback

from gradiend_hf import GradiendConfig, GradiendTrainingArguments, SuiteTrainingArguments
from gradiend_hf.cli.main import main as cli
from gradiend_hf.comparison import similarity_matrix
from gradiend_hf.data import make_feature_dataset
from gradiend_hf.data.errors import InvalidViewError, OneVsRestError, UnknownClassError
from gradiend_hf.data.view_specs import views_from_specs
from gradiend_hf.errors import GradiendSaveError
from gradiend_hf.evaluation.metrics import encoder_metrics
from gradiend_hf.hub import push_suite
from gradiend_hf.suite import load_suite, train_suite
from gradiend_hf.testing_utils import _ENDS, _SUBJECTS, _VERBS
from gradiend_hf.transition_encoding import transition_frame, transition_orientation

from .tiny_models import tiny_model


CLASSES = ["M", "F", "P"]


# --------------------------------------------------------------------------- member specs


def names(specs, classes=CLASSES, **kwargs):
    return [view.name for view in views_from_specs(specs, classes, **kwargs)]


def test_families_expand_in_class_order():
    assert names("pairs") == ["M-vs-F", "M-vs-P", "F-vs-P"]
    assert names("one_vs_rest") == ["M-vs-rest", "F-vs-rest", "P-vs-rest"]
    assert len(names("all")) == 6
    # A member named twice is kept once; order is the order of the specs.
    assert names(["F-vs-P", "pairs"]) == ["F-vs-P", "M-vs-F", "M-vs-P"]


def test_merged_groups_and_one_vs_rest():
    views = views_from_specs([{"MF": ["M", "F"], "P": ["P"]}, "P-vs-rest"], CLASSES)
    assert [view.name for view in views] == ["MF-vs-P", "P-vs-rest"]
    assert views[0].positive == "MF" and views[0].negative == "P"


@pytest.mark.parametrize(
    "specs, error, text",
    [
        ("M-vs-X", UnknownClassError, "X"),
        ({"A": ["M", "Q"], "B": ["F"]}, UnknownClassError, "Q"),
        ("M_and_F", InvalidViewError, "M_and_F"),
        (42, InvalidViewError, "42"),
        ([], InvalidViewError, "no member"),
        # A second member called "M-vs-F" that is not the pair M vs F.
        (["M-vs-F", {"M": ["M"], "F": ["F", "P"]}], InvalidViewError, "both called 'M-vs-F'"),
    ],
)
def test_bad_member_specs_name_the_problem(specs, error, text):
    with pytest.raises(error, match=None) as info:
        views_from_specs(specs, CLASSES)
    assert text in str(info.value)


def test_one_vs_rest_needs_a_rest():
    assert names("M-vs-rest", ["M", "F"]) == ["M-vs-rest"]  # the rest is F
    with pytest.raises(OneVsRestError):
        views_from_specs("one_vs_rest", ["M"])


# --------------------------------------------------------------------------- metrics per transition


def encoded_rows() -> pd.DataFrame:
    rows = [
        # The GRADIEND's own pair M vs F (alternative-word gradients: M→F expects -1, F→M +1).
        ("training", "M", "F", -1, -0.9),
        ("training", "M", "F", -1, -0.7),
        ("training", "F", "M", 1, 0.8),
        ("training", "F", "M", 1, 0.4),
        # Other transitions of the dataset: never part of the pair correlation.
        ("identity", "P", "P", 0, 0.9),
        ("identity", "P", "P", 0, 0.5),
        ("transition", "P", "M", 0, 0.6),
        ("neutral_dataset", None, None, 0, 0.1),
    ]
    return pd.DataFrame(rows, columns=["type", "factual_class", "alternative_class", "expected", "encoding"])


def test_identity_and_other_transitions_stay_out_of_the_pair_correlation():
    metrics = encoder_metrics(encoded_rows())
    plain = np.corrcoef([-1, -1, 1, 1], [-0.9, -0.7, 0.8, 0.4])[0, 1]
    assert metrics["correlation"] == pytest.approx(plain)
    # With the identity rows it would be much lower: the test can tell the two apart.
    with_identity = np.corrcoef([-1, -1, 1, 1, 0, 0], [-0.9, -0.7, 0.8, 0.4, 0.9, 0.5])[0, 1]
    assert abs(plain - with_identity) > 0.1
    assert metrics["mean_by_class"] == pytest.approx({"F": 0.6, "M": -0.8})
    assert metrics["mean_by_transition"] == pytest.approx({"F→M": 0.6, "M→F": -0.8, "P→M": 0.6, "P→P": 0.7})
    assert metrics["encoding_by_transition"]["P→P"]["count"] == 2
    assert metrics["encoding_by_transition"]["P→P"]["expected"] == 0
    assert metrics["num_rows"] == {"identity": 2, "neutral_dataset": 1, "training": 4, "transition": 1}


class _Report:
    def __init__(self, rows):
        self.rows = rows


def test_transition_frame_orients_each_member_to_its_positive_class():
    rows = encoded_rows().dropna()
    # Training decides which class encodes to +1 (`positive_class`); the matrix shows the view's positive side as +1.
    view = views_from_specs("F-vs-M", ["M", "F"])[0].to_dict()
    plain = GradiendConfig(feature_classes=["M", "F"], positive_class="F", class_view=view)
    flipped = GradiendConfig(feature_classes=["M", "F"], positive_class="M", class_view=view)
    assert transition_orientation(plain) == 1 and transition_orientation(flipped) == -1
    frame = transition_frame({"a": (_Report(rows), plain), "b": (_Report(rows), flipped)}, CLASSES)
    assert list(frame.columns) == ["M→F", "F→M", "P→M", "P→P"]
    assert frame.loc["a"].tolist() == pytest.approx([-0.8, 0.6, 0.6, 0.7])
    assert frame.loc["b"].tolist() == pytest.approx([0.8, -0.6, -0.6, -0.7])
    assert frame.attrs["counts"]["P→P"] == {"a": 2, "b": 2}


# --------------------------------------------------------------------------- training, resume, report, Hub


@pytest.fixture(scope="module")
def three_classes():
    texts = [
        f"{s.capitalize()} {v} {p} {e}."
        for s in _SUBJECTS
        for v in _VERBS
        for p in ("he", "she", "they")
        for e in _ENDS
    ]
    return make_feature_dataset(texts, {"M": ["he"], "F": ["she"], "P": ["they"]})


class Interrupt(Exception):
    pass


class CountAndInterrupt(TrainerCallback):
    """Counts training runs; raises at step `at_step` of run number `in_run` (1-based), like a killed job."""

    def __init__(self, in_run=None, at_step=None):
        self.runs, self.in_run, self.at_step = 0, in_run, at_step

    def on_train_begin(self, args, state, control, **kwargs):
        self.runs += 1

    def on_step_end(self, args, state, control, **kwargs):
        if self.runs == self.in_run and state.global_step == self.at_step:
            raise Interrupt(f"interrupted at step {state.global_step}")


def suite_args(folder):
    return SuiteTrainingArguments(
        str(folder),
        max_steps=30,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=10,
        eval_max_rows=32,
        save_strategy="steps",
        save_steps=10,
        report_to="none",
        disable_tqdm=True,
    )


def test_plain_training_arguments_refuse_a_suite_folder_and_name_the_fix(resumed_suite):
    folder, *_ = resumed_suite
    with pytest.raises(GradiendSaveError, match="SuiteTrainingArguments"):
        GradiendTrainingArguments(str(folder))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def resumed_suite(three_classes, tmp_path_factory):
    """A three-member suite interrupted in its second member's training and then run again."""
    folder = tmp_path_factory.mktemp("suite")
    model, tokenizer = tiny_model("bert")

    def run(callback, figures):
        return train_suite(
            model,
            tokenizer,
            three_classes,
            suite_args(folder),
            "pairs",
            eval_max_rows=16,
            top_k=100,
            figures=figures,
            callbacks=[callback],
        )

    first = CountAndInterrupt(in_run=2, at_step=15)
    with pytest.raises(Interrupt):
        run(first, figures=False)
    interrupted = json.loads((folder / "suite.json").read_text())
    weights = digest(folder / "members" / "M-vs-F" / "model.safetensors")
    second = CountAndInterrupt()
    result = run(second, figures=True)
    return folder, interrupted, weights, first, second, result


def test_an_interrupted_suite_keeps_its_finished_members_and_resumes(resumed_suite):
    folder, interrupted, weights, first, second, result = resumed_suite
    assert first.runs == 2
    assert interrupted["complete"] is False
    assert [(m["name"], m["status"]) for m in interrupted["members"]] == [
        ("M-vs-F", "trained"),
        ("M-vs-P", "pending"),
        ("F-vs-P", "pending"),
    ]
    # The finished member is loaded, not trained again; the interrupted one continues from its checkpoint.
    assert {name: m.status for name, m in result.members.items()} == {
        "M-vs-F": "loaded",
        "M-vs-P": "resumed",
        "F-vs-P": "trained",
    }
    assert second.runs == 2
    assert digest(folder / "members" / "M-vs-F" / "model.safetensors") == weights
    assert all(m.converged for m in result.members.values())


def test_the_suite_report_and_transition_matrix(resumed_suite):
    folder, *_, result = resumed_suite
    report = json.loads((folder / "suite.json").read_text())
    assert report["complete"] is True and report["classes"] == CLASSES
    assert load_suite(folder).members.keys() == result.members.keys()
    matrix = result.transition_matrix
    assert list(matrix.index) == ["M-vs-F", "M-vs-P", "F-vs-P"]
    assert len(matrix.columns) == 9  # every A→B of three classes, identities included
    # Each member encodes the gradient towards its positive class as +1 and towards its other class as -1.
    for name, member in result.members.items():
        view = member.class_view
        assert matrix.loc[name, f"{view.negative}→{view.positive}"] > 0.5, matrix
        assert matrix.loc[name, f"{view.positive}→{view.negative}"] < -0.5, matrix
    assert set(report["topk_overlap"]["index"]) == set(result.members)
    # The comparison functions take a suite as it is (a mapping name -> GRADIEND).
    cosine = similarity_matrix(result, measure="cosine")
    assert list(cosine.index) == list(result.members) and np.allclose(np.diag(cosine.to_numpy()), 1.0)
    for path in result.figures.values():
        assert path.endswith(".png") and open(path, "rb").read(4) == b"\x89PNG"
    assert "M-vs-P" in (folder / "suite.md").read_text()
    card = (folder / "members" / "F-vs-P" / "README.md").read_text()
    assert "## Suite" in card and "../M-vs-F" in card


def test_push_suite_makes_a_collection_whose_cards_link_the_siblings(resumed_suite, local_hub):
    folder, *_ = resumed_suite
    pushed = push_suite(str(folder), f"{local_hub.user}/gradiend-toy", collection_title="Toy pronouns")
    assert pushed.repos == {name: f"{local_hub.user}/gradiend-toy-{name}" for name in ["M-vs-F", "M-vs-P", "F-vs-P"]}
    collection = local_hub.api.get_collection(pushed.collection.slug)
    assert collection.title == "Toy pronouns"
    assert [item.item_id for item in collection.items] == list(pushed.repos.values())
    for repo in pushed.repos.values():
        card = local_hub.api.hf_hub_download(repo, "README.md")
        text = open(card, encoding="utf-8").read()
        for sibling in pushed.repos.values():
            assert sibling in text
    # Pushing again reuses the collection.
    again = push_suite(str(folder), f"{local_hub.user}/gradiend-toy", collection_title="Toy pronouns")
    assert again.collection.slug == pushed.collection.slug


# --------------------------------------------------------------------------- command line


def test_cli_suite_refuses_an_unknown_class_before_loading_the_model(tmp_path, capsys):
    model, tokenizer = tiny_model("bert")
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    for weights in (tmp_path / "base").glob("*.safetensors"):
        weights.unlink()  # only the config is read before the members are checked
    capsys.readouterr()
    argv = [
        "suite",
        "--base_model",
        str(tmp_path / "base"),
        "--output_dir",
        str(tmp_path / "out"),
        "--members",
        "1SG-vs-3SG",
        "1SG-vs-4SG",
        "--report_to",
        "none",
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gradiend-hf suite: error:"), err
    assert "4SG" in err and "safetensors" not in err
    assert not (tmp_path / "out").exists()


def test_cli_suite_runs_a_config_with_merged_groups(tmp_path, capsys):
    import yaml

    model, tokenizer = tiny_model("bert")
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    config = dict(
        base_model=str(tmp_path / "base"),
        output_dir=str(tmp_path / "suite"),
        max_rows_per_class=24,
        members=["1SG-vs-3SG", {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}],
        max_steps=2,
        learning_rate=1e-3,
        sentences_per_gradient=2,
        eval_strategy="no",
        suite_eval_rows=4,
        figures=False,
        report_to="none",
        disable_tqdm=True,
    )
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # the first group is +1
    cli(["suite", str(tmp_path / "suite.yaml")])
    out = capsys.readouterr().out
    assert "Suite of 2 GRADIENDs" in out and "SG-vs-PL" in out
    report = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert [m["name"] for m in report["members"]] == ["1SG-vs-3SG", "SG-vs-PL"]
    merged = report["members"][1]["view"]
    assert merged["positive_classes"] == ["1SG", "3SG"] and merged["negative_classes"] == ["1PL", "3PL"]
