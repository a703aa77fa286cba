"""save_rewritten: the folder reloads as the rewritten model, with its tokenizer and a truthful model card."""

import os
import re

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from gradiend_hf.artefacts import MANIFEST_NAME
from gradiend_hf.card_utils import CARD_STATE_NAME
from gradiend_hf.evaluation import evaluate_decoder
from gradiend_hf.rewrite_io import save_rewritten

from .test_evaluation_common import he_she_dataset, neutral_dataset, one_thread, trained  # noqa: F401


pytestmark = pytest.mark.usefixtures("one_thread")


def sections(card_text: str) -> dict[str, str]:
    body = card_text.split("---", 2)[2]
    parts = re.split(r"^## (.+)$", body, flags=re.M)
    return {title: content.strip() for title, content in zip(parts[1::2], parts[2::2])}


@pytest.mark.parametrize("family, auto", [("gpt2", AutoModelForCausalLM), ("bert", AutoModelForMaskedLM)])
def test_saved_rewrite_reloads_with_the_rewritten_outputs(tmp_path, family, auto):
    gradiend, base, tokenizer = trained(family, "alternative" if family == "gpt2" else "factual")
    rewritten = gradiend.rewrite(base, feature_factor=1.0, learning_rate=2.0)
    save_rewritten(rewritten, tokenizer, tmp_path / "out", gradiend=gradiend, feature_factor=1.0, learning_rate=2.0)
    leftovers = [
        n for n in os.listdir(tmp_path / "out") if n.startswith(".") and n not in (MANIFEST_NAME, CARD_STATE_NAME)
    ]
    assert not leftovers  # no staging left behind
    loaded = auto.from_pretrained(tmp_path / "out").eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    inputs = loaded_tokenizer(["The doctor said that it was very tired."], return_tensors="pt")
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        expected = rewritten(**inputs).logits
        torch.testing.assert_close(loaded(**inputs).logits, expected)
        assert not torch.allclose(base(**inputs).logits, expected)


def test_card_states_the_rewrite_and_the_measured_effect(tmp_path):
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    gradiend.config.base_model_name_or_path = "openai-community/gpt2"
    try:
        report = evaluate_decoder(
            gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), target_class="M", learning_rates=[0.5, 5.0]
        )
        s = report.selected
        rewritten = gradiend.rewrite(base, s.feature_factor, s.learning_rate)
        save_rewritten(rewritten, tokenizer, tmp_path, gradiend=gradiend, decoder_report=report, model_id="me/gpt2-he")
    finally:
        gradiend.config.base_model_name_or_path = None
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.base_model == "openai-community/gpt2"
    assert card.data.base_model_relation == "finetune"
    assert card.data.pipeline_tag == "text-generation"
    assert "gradiend" in card.data.tags
    found = sections(card.content)
    assert all(found.values()), "a heading without content"
    rewrite = found["Rewrite"]
    assert f"| Feature factor | {s.feature_factor:.4g} |" in rewrite
    assert f"| Learning rate | {s.learning_rate:.4g} |" in rewrite
    assert "strengthen class `M`" in rewrite
    effect = found["Measured effect"]
    assert f"| P(M) on `F` rows | {report.base['prob_M_on_F']:.4g} | {s.probabilities['F']['M']:.4g} |" in effect
    assert f"| Language-modelling score | {s.base_lms:.4g} | {s.lms:.4g} |" in effect
    assert "Perplexity" in effect
    assert 'AutoModelForCausalLM.from_pretrained("me/gpt2-he")' in found["Quick start"]


def test_card_omits_unknown_facts_and_local_base_paths(tmp_path):
    gradiend, base, tokenizer = trained("bert", "factual")
    save_rewritten(base, tokenizer, tmp_path / "plain")
    card = ModelCard.load(tmp_path / "plain" / "README.md")
    assert card.data.base_model is None and card.data.pipeline_tag == "fill-mask"
    found = sections(card.content)
    assert "Measured effect" not in found
    assert all(found.values())
    assert "Feature factor" not in card.content and "GRADIEND |" not in card.content
    assert "AutoModelForMaskedLM" in found["Quick start"]

    local_base = tmp_path / "local-base"
    local_base.mkdir()
    gradiend.config.base_model_name_or_path = str(local_base)
    try:
        save_rewritten(base, tokenizer, tmp_path / "local", gradiend=gradiend, feature_factor=-1.0, learning_rate=0.1)
    finally:
        gradiend.config.base_model_name_or_path = None
    card = ModelCard.load(tmp_path / "local" / "README.md")
    assert card.data.base_model is None  # a local folder is not a Hub id
    assert "| Feature factor | -1 |" in card.content and "| Learning rate | 0.1 |" in card.content
    assert "Measured effect" not in card.content


def test_saving_onto_a_file_is_refused(tmp_path):
    gradiend, base, tokenizer = trained("bert", "factual")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        save_rewritten(base, tokenizer, tmp_path / "file")
