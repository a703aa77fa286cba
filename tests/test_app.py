"""The GRADIEND app: its handlers called directly, and every event over HTTP with `gradio_client`."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from gradiend_hf import GradiendError, GradiendModel
from gradiend_hf.app import (
    CLASS_HEADERS,
    FEATURE_HEADERS,
    DemoInputError,
    GradiendDemo,
    build_demo,
    resolve_class_words,
    suggest_learning_rate,
)
from gradiend_hf.cli.app import make_parser

from .test_evaluation_common import one_thread, train_gradiend  # noqa: F401
from .tiny_models import tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "The doctor said that [MASK] would come home."


@pytest.fixture(scope="module")
def trained():
    return train_gradiend("bert", steps=30)


@pytest.fixture(scope="module")
def demo(trained):
    gradiend, base, tokenizer = trained
    return GradiendDemo(gradiend, base, tokenizer)


def probabilities(rows) -> dict[str, tuple[float, float]]:
    """Class → (base, rewritten) from the class-probability rows."""
    return {row[0]: (float(row[2]), float(row[3])) for row in rows}


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Type a sentence with [MASK]"),
        ("   ", "Type a sentence with [MASK]"),
        ("The doctor said that he would come.", "has no [MASK]"),
        ("[MASK] said that [MASK] would come.", "exactly one [MASK]; the text has 2"),
        ("word " * 200 + "[MASK].", "the limit is 500"),
        ("The doctor said that x[MASK] would come.", "does not work with the base model's tokenizer"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(demo, text, message):
    with pytest.raises(DemoInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        demo.parse(text)


def test_masked_input_is_kept_and_the_models_mask_token_is_accepted(demo):
    assert demo.parse(f"  {TEXT} ") == TEXT
    base, tokenizer = tiny_model("roberta")
    gradiend = GradiendModel.from_base_model(base, params=["lm_head.dense.weight"], feature_classes=["M", "F"])
    roberta = GradiendDemo(gradiend, base, tokenizer)
    assert roberta.parse("The doctor said that <mask> would come home.") == TEXT


def test_causal_input_is_cut_at_the_blank_or_read_as_a_prefix():
    base, tokenizer = tiny_model("gpt2")
    gradiend = GradiendModel.from_base_model(
        base, params=["transformer.h.1.mlp.c_proj.weight"], feature_classes=["M", "F"]
    )
    demo = GradiendDemo(gradiend, base, tokenizer)
    assert demo.parse("The doctor said that [MASK] would come home.") == "The doctor said that [MASK]"
    assert demo.parse("The doctor said that ") == "The doctor said that [MASK]"
    with pytest.raises(DemoInputError, match="text before"):
        demo.parse("[MASK] would come home.")
    features, base_top, rewritten_top, classes = demo.analyze("The doctor said that", 1.0, 0.0)
    assert [row[0] for row in classes] == ["M", "F"] and len(base_top) == demo.top_k


@pytest.mark.parametrize(
    "feature_factor, learning_rate, message",
    [(float("nan"), 1.0, "finite"), (1.0, -1.0, "0 or more"), ("x", 1.0, "must be numbers"), (1.0, None, "numbers")],
)
def test_bad_numbers_are_refused(demo, feature_factor, learning_rate, message):
    with pytest.raises(DemoInputError, match=message):
        demo.rewrite(TEXT, feature_factor, learning_rate)


# --------------------------------------------------------------------------- what the app shows


def test_analyze_shows_feature_values_predictions_and_class_probabilities(demo):
    features, base_top, rewritten_top, classes = demo.analyze(TEXT, 0.0, 0.0)
    assert len(FEATURE_HEADERS) == len(features[0]) and len(CLASS_HEADERS) == len(classes[0])
    by_word = {row[0]: row for row in features}
    # The trained GRADIEND reads the gradient towards "he" as +1 (class M) and towards "she" as -1.
    assert by_word["he"][1:3] == ["M", "+1"] and float(by_word["he"][3]) > 0.5
    assert by_word["she"][1:3] == ["F", "-1"] and float(by_word["she"][3]) < -0.5
    top_word = base_top[0][0]
    if top_word not in ("he", "she") and top_word.isalpha():
        assert by_word[top_word][1:3] == ["none (top prediction)", "0"]
    assert len(base_top) == demo.top_k and all(0 < float(p) < 1 for _, p in base_top)
    assert rewritten_top == base_top  # learning rate 0 is the base model
    assert all(base == rewritten for base, rewritten in probabilities(classes).values())


@pytest.mark.parametrize("target", ["M", "F"])
def test_the_slider_strengthens_a_class_and_the_model_is_restored_exactly(demo, target):
    before = {name: value.clone() for name, value in demo.base_model.state_dict().items()}
    ff = demo.strengthen[target]
    rewritten_top, classes = demo.rewrite(TEXT, ff, 2.0)
    base_p, rewritten_p = probabilities(classes)[target]
    assert rewritten_p > base_p
    _, weaker = demo.rewrite(TEXT, -ff, 2.0)
    assert probabilities(weaker)[target][1] < base_p
    after = demo.base_model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # in place, reverted bit for bit


def test_the_learning_rate_comes_from_the_recorded_rewrite_or_a_default(trained):
    gradiend, base, tokenizer = trained
    gradiend = copy.deepcopy(gradiend)
    plain = GradiendDemo(gradiend, base, tokenizer)
    assert plain.feature_factor == 0.0
    assert plain.learning_rate == suggest_learning_rate(gradiend, base, plain.strengthen["M"])
    assert f"{plain.learning_rate:g}"[0] in "125" and "no rewrite recorded" in plain.learning_rate_note
    gradiend.config.selected_rewrite = {"feature_factor": -1.0, "learning_rate": 0.2, "target_class": "F"}
    recorded = GradiendDemo(gradiend, base, tokenizer)
    assert (recorded.feature_factor, recorded.learning_rate) == (-1.0, 0.2)
    assert "chosen by the decoder evaluation (strengthens `F`)" in recorded.learning_rate_note


def test_class_words_come_from_the_argument_the_config_or_a_builtin_dataset(trained):
    config = copy.deepcopy(trained[0].config)
    assert resolve_class_words(config) == {"M": ["he"], "F": ["she"]}  # the built-in gender-en classes
    assert resolve_class_words(config, {"M": ["him"], "F": ["her"]}) == {"M": ["him"], "F": ["her"]}
    config.class_words = {"M": ["his"], "F": ["hers"]}
    assert resolve_class_words(config) == {"M": ["his"], "F": ["hers"]}
    config.feature_classes, config.positive_class, config.class_words = ["A", "B"], "A", None
    with pytest.raises(ValueError, match="class_words="):
        resolve_class_words(config)


def test_build_demo_names_the_extra_when_gradio_is_missing(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(ImportError, match=r'pip install "gradiend-hf\[app\]"'):
        build_demo(*trained)


def test_cli_arguments():
    args = make_parser().parse_args(["me/g", "--share", "false", "--port", "7861", "--classes", '{"M": ["he"]}'])
    assert (args.gradiend, args.share, args.port, args.classes, args.host) == (
        "me/g",
        False,
        7861,
        {"M": ["he"]},
        "127.0.0.1",
    )
    assert make_parser().parse_args(["me/g", "--share", "true"]).share is True
    assert make_parser().parse_args(["me/g", "--benchmarks", "out/bench"]).benchmarks == "out/bench"
    assert make_parser().parse_args(["me/g"]).benchmarks is None
    with pytest.raises(SystemExit):
        make_parser().parse_args(["me/g", "--share", "maybe"])


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        blocks = build_demo(*trained, examples=[TEXT, "My sister thought that [MASK] was very tired."])
        _, url, _ = blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            yield blocks, url
        finally:
            blocks.close()


def test_every_event_answers_over_http(server):
    from gradio_client import Client

    blocks, url = server
    demo = blocks.gradiend_demo
    client = Client(url, verbose=False)
    named = set(client.view_api(return_format="dict")["named_endpoints"])
    assert {"/analyze", "/rewrite"} <= named
    every = {dependency.api_name for dependency in blocks.fns.values()}
    assert None not in every and every == {"analyze", "rewrite", "load_example", "analyze_example"}

    features, base_top, rewritten_top, classes = client.predict(TEXT, demo.strengthen["F"], 2.0, api_name="/analyze")
    assert features["headers"] == FEATURE_HEADERS and [row[1] for row in features["data"]] == ["M", "F"] + (
        ["none (top prediction)"] if len(features["data"]) == 3 else []
    )
    assert probabilities(classes["data"])["F"][1] > probabilities(classes["data"])["F"][0]
    rewritten_top, classes = client.predict(TEXT, demo.strengthen["M"], 2.0, api_name="/rewrite")
    assert probabilities(classes["data"])["M"][1] > probabilities(classes["data"])["M"][0]
    loaded = client.predict(1, api_name="/load_example")  # an update of the textbox
    assert loaded["value"] == "My sister thought that [MASK] was very tired."
    outputs = client.predict(TEXT, 0.0, 0.0, api_name="/analyze_example")
    assert len(outputs) == 4 and outputs[1]["data"] == outputs[2]["data"]


def test_bad_input_over_http_is_an_error_message(server):
    from gradio_client import Client

    _, url = server
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=r"has no \[MASK\]"):
        client.predict("The doctor said that he would come.", 0.0, 1.0, api_name="/analyze")


def test_cli_names_a_missing_gradiend_in_one_line(capsys):
    from gradiend_hf.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["/no/such/gradiend"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "gradiend-hf app: error: '/no/such/gradiend' is neither a GRADIEND folder nor a Hub repo id.\n"
    )


def test_the_app_shows_the_benchmark_table_of_the_selected_rewrite(trained, tmp_path):
    from .test_benchmarks_report import _report

    blocks = build_demo(*trained, benchmarks={"base": _report(), "rewritten": _report(shift=-5.0)})
    (table,) = [b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "benchmarks"]
    assert "| benchmark | metric | bias type | base | rewritten | ideal | verdict |" in table.value
    assert (
        "| CrowS-Pairs | stereotype score | gender | 66.67 [33.33–100.00] | 50.00 [16.67–83.33] | 50 |" in table.value
    )
    plain = build_demo(*trained)
    assert not [b for b in plain.blocks.values() if getattr(b, "elem_id", None) == "benchmarks"]
    with pytest.raises(GradiendError, match="Cannot read the benchmark report"):
        build_demo(*trained, benchmarks=tmp_path / "none.json")


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_requests_reuse_the_sentences_lower_layers_and_show_what_the_plain_model_shows(family, monkeypatch):
    from gradiend_hf import app as app_module
    from gradiend_hf.evaluation.prefix_cache import layer_stack

    base, tokenizer = tiny_model(family, layers=4)
    upper = {id(p) for layer in layer_stack(base)[2:] for p in layer.parameters()}
    names = [name for name, p in base.named_parameters() if id(p) in upper]
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(base, params=names, feature_classes=["M", "F"])
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.05)

    def requests(demo):
        return [demo.analyze(TEXT, 1.0, 0.5), demo.rewrite(TEXT, -1.0, 2.0), demo.rewrite(TEXT, 1.0, 5.0)]

    reused = GradiendDemo(gradiend, base, tokenizer)
    shown = requests(reused)
    assert (
        reused._frozen_prefix.prefix.enabled and reused._frozen_prefix.prefix.reused_passes >= 4
    )  # every rewritten pass after the check
    monkeypatch.setattr(app_module, "APP_PREFIX_BYTES", 0)  # nothing kept: every request runs every layer
    plain = GradiendDemo(gradiend, base, tokenizer)
    assert requests(plain) == shown and plain._frozen_prefix.prefix.reused_passes == 0
