import pytest
import torch

from gradiend_hf.objectives import (
    ObjectiveError,
    UnrepresentableWordError,
    detect_objective,
    get_objective,
    is_single_token,
)

from .tiny_models import CAUSAL_FAMILIES, FAMILIES, MASKED_FAMILIES, masked_rows, tiny_model


def word_ids_of(batch, row, slot=0):
    """The target token ids of word `slot` of `row` in a prepared batch."""
    picked = (batch.target_rows == row) & (batch.target_slots == slot)
    return batch.target_ids[picked].tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_detect_objective(family):
    model, _ = tiny_model(family)
    assert detect_objective(model) == ("masked_lm" if family in MASKED_FAMILIES else "causal_lm")


def test_detect_objective_rejects_a_backbone():
    model, _ = tiny_model("bert")
    with pytest.raises(ObjectiveError, match="AutoModelForMaskedLM"):
        detect_objective(model.bert)


@pytest.mark.parametrize("family", MASKED_FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_masked_lm_log_probs_equal_hand_computation(family, side):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(5)
    masked[1] = "A short one said that [MASK] did."  # different lengths force padding
    batch = objective.prepare(masked, factual, alternative, padding_side=side)
    log_probs = objective.target_log_probs(model, batch)
    for i, text in enumerate(masked):
        # Hand computation: the unpadded sentence with the mask token typed in by hand.
        spaced = text.replace("[MASK]", tok.mask_token)
        ids = tok(spaced, return_tensors="pt")["input_ids"]
        position = (ids[0] == tok.mask_token_id).nonzero().item()
        expected = model(input_ids=ids).logits[0, position].log_softmax(-1)
        torch.testing.assert_close(log_probs[i], expected, rtol=1e-4, atol=1e-5)
        word_ids = tok(" " + factual[i], add_special_tokens=False)["input_ids"]
        if family != "roberta":
            word_ids = tok(factual[i], add_special_tokens=False)["input_ids"]
        assert word_ids_of(batch, i) == word_ids and len(word_ids) == 1


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_lm_next_token_log_probs_equal_hand_computation(family, side):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(5, causal=True)
    masked[2] = "Yes, [MASK] did."
    masked[3] = "The doctor and the old pilot said that [MASK] came."
    batch = objective.prepare(masked, factual, alternative, padding_side=side)
    assert (batch.attention_mask.sum(1) < batch.input_ids.shape[1]).any(), "the test needs padding"
    log_probs = objective.target_log_probs(model, batch)
    for i, text in enumerate(masked):
        prefix = text.split("[MASK]")[0].rstrip()
        ids = tok(prefix, return_tensors="pt")["input_ids"]
        expected = model(input_ids=ids).logits[0, -1].log_softmax(-1)
        torch.testing.assert_close(log_probs[i], expected, rtol=1e-4, atol=1e-5)
        # The target is the word WITH its leading space, as the tokenizer writes it after the prefix.
        word_ids = tok(" " + factual[i], add_special_tokens=False)["input_ids"]
        assert len(word_ids) == 1 and word_ids_of(batch, i) == word_ids
        assert tok.convert_ids_to_tokens(word_ids)[0].startswith("Ġ")


def test_causal_lm_reads_the_last_real_prefix_position():
    model, tok = tiny_model("gpt2")
    objective = get_objective(model, tok)
    batch = objective.prepare(["He said that [MASK] came.", "Yes [MASK] did."], ["she", "he"], ["he", "she"], "right")
    lengths = batch.attention_mask.sum(1)
    # Single-token rows: one sequence (the prefix) and one read per row, shared by the factual and the alternative.
    assert batch.read_sequences.tolist() == [0, 1]
    assert batch.read_positions.tolist() == (lengths - 1).tolist()
    batch = objective.prepare(["He said that [MASK] came.", "Yes [MASK] did."], ["she", "he"], ["he", "she"], "left")
    assert batch.read_positions.tolist() == [batch.input_ids.shape[1] - 1] * 2


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_bad_rows_raise_clear_errors(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    with pytest.raises(ObjectiveError, match="exactly one literal"):
        objective.prepare(["no blank here"], ["he"], ["she"])
    with pytest.raises(ObjectiveError, match="exactly one literal"):
        objective.prepare(["[MASK] and [MASK]"], ["he"], ["she"])
    if family == "bert":
        with pytest.raises(UnrepresentableWordError, match="does not know"):
            objective.prepare(["The doctor said that [MASK] came."], ["Ωψ"], ["he"])
    with pytest.raises(ObjectiveError, match="same length"):
        objective.prepare(["The doctor said that [MASK] came."], ["he", "she"], ["he"])


def test_empty_prefix_raises_for_causal_lm():
    model, tok = tiny_model("llama")
    objective = get_objective(model, tok)
    with pytest.raises(ObjectiveError, match="no text before"):
        objective.prepare(["  [MASK] came home."], ["he"], ["she"])


def test_is_single_token():
    _, tok = tiny_model("gpt2")
    assert is_single_token(tok, "she")
    assert not is_single_token(tok, "shedoctor")
