"""The seq2seq objective (T5, BART) against the plain computation: losses from a hand loop over the decoder's
tokens, one-forward gradients from separate `.backward()` passes, batched `jvp` encodings from the per-row loop, class
probabilities from the plain chain-rule product, LMS from a hand loop; training, saving, the decoder grid, PEFT
export, encoder/decoder parameter selection and the card on tiny T5 and BART."""

import json
import math
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSeq2SeqLM

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.benchmarks.errors import BenchmarkError
from gradiend_hf.benchmarks.scoring import family_of
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import evaluate_decoder
from gradiend_hf.evaluation.lms import LanguageModelingScorer
from gradiend_hf.evaluation.probabilities import ClassProbabilityScorer
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.objectives import ObjectiveError, Seq2SeqObjective, detect_objective, get_objective
from gradiend_hf.objectives.registry import objective_of_config
from gradiend_hf.params import GradiendParameterError, select_parameters

from .test_evaluation_common import he_she_dataset, neutral_dataset, one_thread  # noqa: F401
from .test_gradients import split_into_parts
from .tiny_models import SEQ2SEQ_FAMILIES, masked_rows, tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")

# "he" and "she" are one token for both tiny tokenizers; "muslim" and "New York" are several.
MASKED = [
    "The doctor said that [MASK] would come home.",
    "My sister thought that [MASK] was very tired.",
    "[MASK] had seen the sea.",
    "Our teacher wrote that [MASK] could not sleep.",
]
FACTUAL = ["muslim", "he", "she", "New York"]
ALTERNATIVE = ["she", "muslim", "he", "he"]


def by_hand(tokenizer, text, word):
    """Encoder ids (the word's tokens replaced by the family's one mask token), the decoder's context before the word
    and the word's tokens, found from the tokenizer's offsets of the filled-in sentence."""
    prefix, suffix = text.split("[MASK]")
    encoded = tokenizer(prefix + word + suffix, return_offsets_mapping=True)
    ids, start, end = encoded["input_ids"], len(prefix), len(prefix) + len(word)
    span = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a and a < end and b > start]
    sentinel = tokenizer.convert_tokens_to_ids("<extra_id_0>")
    t5 = sentinel != tokenizer.unk_token_id
    mask = sentinel if t5 else tokenizer.mask_token_id
    encoder = ids[: span[0]] + [mask] + ids[span[-1] + 1 :]
    # T5's target is "<extra_id_0> word …"; BART's the whole sentence, so its decoder reads the prefix first.
    context = [mask] if t5 else ids[: span[0]]
    return encoder, context, [ids[i] for i in span]


def hand_log_prob(model, tokenizer, text, word):
    """log P(word): one forward pass per token, the decoder fed its start token, the context and the word so far."""
    encoder, context, tokens = by_hand(tokenizer, text, word)
    start = model.config.decoder_start_token_id
    total = torch.zeros((), dtype=torch.float64)
    for i, token in enumerate(tokens):
        decoder = torch.tensor([[start, *context, *tokens[:i]]])
        logits = model(input_ids=torch.tensor([encoder]), decoder_input_ids=decoder).logits[0, -1]
        total = total + logits.double().log_softmax(-1)[token]
    return total


def hf_loss(model, tokenizer, text, word):
    """The word's summed cross-entropy from Hugging Face's own seq2seq loss (labels shifted by the model itself)."""
    encoder, context, tokens = by_hand(tokenizer, text, word)
    labels = torch.tensor([[-100] * len(context) + tokens])
    decoder_labels = torch.tensor([context + tokens])
    decoder = model.prepare_decoder_input_ids_from_labels(labels=decoder_labels)
    out = model(input_ids=torch.tensor([encoder]), decoder_input_ids=decoder, labels=labels)
    return out.loss * len(tokens)


@pytest.fixture(scope="module", params=SEQ2SEQ_FAMILIES)
def family(request):
    return request.param


def test_detection_and_family_attributes(family):
    model, tokenizer = tiny_model(family)
    assert detect_objective(model) == "seq2seq_lm" == objective_of_config(model.config)
    objective = get_objective(model, tokenizer)
    assert isinstance(objective, Seq2SeqObjective)
    assert objective.style == ("span" if family == "t5" else "sentence")
    assert objective.peft_task_type == "SEQ_2_SEQ_LM" and objective.reads_right_context
    assert objective.auto_model_class() is AutoModelForSeq2SeqLM
    assert type(AutoModelForSeq2SeqLM.from_config(model.config)) is type(model)


def test_single_and_multi_token_losses_equal_the_hand_loop(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    counts = batch.token_counts()
    assert counts[0, 0] > 1 and counts[1, 1] > 1 and counts[3, 0] > 1 and counts[1, 0] == 1, "needs multi-token words"
    assert len(batch.input_ids) < 2 * len(MASKED)  # single-token pairs share one sequence
    with torch.no_grad():
        factual, alternative = objective.losses(model, batch)
        for row, text in enumerate(MASKED):
            for ours, word in ((factual[row], FACTUAL[row]), (alternative[row], ALTERNATIVE[row])):
                expected = -hand_log_prob(model, tokenizer, text, word)
                torch.testing.assert_close(ours.double(), expected, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(ours, hf_loss(model, tokenizer, text, word), rtol=1e-4, atol=1e-5)


def test_encoder_reads_the_blank_as_one_mask_and_rows_share_it(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    for sequence in range(len(batch.input_ids)):
        row = int(batch.sequence_rows[sequence])
        encoder = batch.input_ids[sequence][batch.attention_mask[sequence].bool()].tolist()
        assert encoder == by_hand(tokenizer, MASKED[row], FACTUAL[row])[0]
        assert encoder.count(objective.mask_id) == 1


def plain_mean_gradients(model, tokenizer, masked, words, names):
    model.zero_grad(set_to_none=True)
    loss = sum(hf_loss(model, tokenizer, text, word) for text, word in zip(masked, words)) / len(masked)
    loss.backward()
    grads = {name: model.get_parameter(name).grad.clone() for name in names}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("split", [False, True], ids=["one_pass", "parts_by_length"])
def test_one_forward_group_gradients_equal_separate_backward_passes(family, split, monkeypatch):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    names = select_parameters(model)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    widths = split_into_parts(monkeypatch, objective) if split else None
    ours = group_gradients(model, objective, batch, names, ("factual", "alternative"))
    if split:
        assert len(widths) > 1 and min(widths) < batch.input_ids.shape[1]
    assert all(p.grad is None for p in model.parameters())
    plain_f = plain_mean_gradients(model, tokenizer, MASKED, FACTUAL, names)
    plain_a = plain_mean_gradients(model, tokenizer, MASKED, ALTERNATIVE, names)
    scale = max(plain_f[name].abs().max() for name in names)
    for name in names:
        torch.testing.assert_close(ours["factual"][name] / scale, plain_f[name] / scale, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(ours["alternative"][name] / scale, plain_a[name] / scale, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("source", ["alternative", "diff"])
def test_batched_jvp_encodings_equal_the_per_row_loop(family, source):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    torch.manual_seed(3)
    gradiend = GradiendModel.from_base_model(model, latent_dim=2, source=source)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    batched = encode_rows(gradiend, model, objective, batch)
    loop = encode_rows_loop(gradiend, model, objective, batch)
    assert ((batched - loop).norm() / loop.norm()).item() <= 1e-4


def test_class_probabilities_are_the_plain_chain_rule_products(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    masked = MASKED[:2] + masked_rows(3)[0]
    factual = ["he"] * len(masked)
    words = {"M": ["he", "New York"], "F": ["she", "muslim"]}
    probabilities = ClassProbabilityScorer(objective, masked, factual, words)(model)
    with torch.no_grad():
        for name, class_words in words.items():
            expected = [sum(math.exp(hand_log_prob(model, tokenizer, t, w)) for w in class_words) for t in masked]
            torch.testing.assert_close(
                probabilities[name].double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-9
            )


def test_lms_is_the_masked_token_nll_of_a_hand_loop(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    texts = neutral_dataset()["text"][:6]
    scorer = LanguageModelingScorer(tokenizer, texts, objective, batch_size=4, mask_rate=0.3)
    scores = scorer(model)
    # Rebuild each masked text from the scorer's batches and score it alone: the decoder written by hand.
    nll, count, start = 0.0, 0, model.config.decoder_start_token_id
    with torch.no_grad():
        for ids, mask, target in scorer.batches:
            for row in range(len(ids)):
                n = int(mask[row].sum())
                inputs, gold = ids[row, :n].tolist(), target[row, :n].tolist()
                scored = [i for i in range(n) if gold[i] != -100]
                if family == "t5":
                    labels = [t for i in scored for t in (inputs[i], gold[i])]  # <extra_id_k> t_k …
                    wanted = list(range(1, len(labels), 2))
                else:
                    labels = [gold[i] if gold[i] != -100 else inputs[i] for i in range(n)]  # the whole text
                    wanted = scored
                logits = model(
                    input_ids=torch.tensor([inputs]), decoder_input_ids=torch.tensor([[start] + labels[:-1]])
                ).logits[0]
                log_probs = logits.double().log_softmax(-1)
                nll -= sum(float(log_probs[p, labels[p]]) for p in wanted)
                count += len(wanted)
    assert count == scorer.num_tokens
    assert scores["nll"] == pytest.approx(nll / count, rel=1e-5)
    assert scores["lms"] == pytest.approx(1 / (1 + nll / count), rel=1e-5)


def test_stack_selection_covers_only_that_stack(family):
    model, _ = tiny_model(family)
    encoder = {id(p) for p in model.get_encoder().parameters()}
    decoder = {id(p) for p in model.get_decoder().parameters()}
    backbone = select_parameters(model)
    assert "lm_head.weight" not in backbone
    chosen = {stack: select_parameters(model, stack) for stack in ("encoder", "decoder")}
    for stack, own, other in (("encoder", encoder, decoder), ("decoder", decoder, encoder)):
        ids = [id(model.get_parameter(name)) for name in chosen[stack]]
        assert ids and all(i in own and i not in other for i in ids), stack
    shared = [name for name in backbone if name not in chosen["encoder"] + chosen["decoder"]]
    assert len(shared) == 1 and model.get_parameter(shared[0]) is model.get_input_embeddings().weight
    gradiend = GradiendModel.from_base_model(model, params="decoder")
    assert gradiend.param_names == chosen["decoder"]
    with pytest.raises(GradiendParameterError, match="encoder-decoder"):
        select_parameters(tiny_model("bert")[0], "encoder")


def test_an_untied_lm_head_is_not_in_the_backbone():
    model, _ = tiny_model("t5")
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    names = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" in names and select_parameters(model) == [n for n in names if n != "lm_head.weight"]


def test_a_tokenizer_without_mask_or_sentinels_is_refused():
    _, tokenizer = tiny_model("gpt2")
    with pytest.raises(ObjectiveError, match="sentinel"):
        get_objective("seq2seq_lm", tokenizer)
    # BART's tokenizer starts the decoder with </s>; T5 was trained on decoders that start with <pad>.
    bart_objective = get_objective("seq2seq_lm", tiny_model("bart")[1])
    with pytest.raises(ObjectiveError, match="starts its decoder"):
        bart_objective.losses(tiny_model("t5")[0], bart_objective.prepare(*masked_rows(1)))


# ---------------------------------------------------------------------------------------------------------------------
# training, saving, the decoder grid, PEFT export, the card
# ---------------------------------------------------------------------------------------------------------------------

# BART's decoder re-reads the sentence up to the blank, so a word's gradient carries a large part that is the same for
# both classes (the prefix tokens' embeddings); the factual − alternative difference cancels it.
SOURCES = {"t5": "alternative", "bart": "diff"}
STEPS = {"t5": 20, "bart": 40}  # T5 is at correlation 1.0 after 20 steps, BART at 0.95 after 40


@pytest.fixture(scope="module")
def trained(family, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp(f"train-{family}")
    model, tokenizer = tiny_model(family)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, source=SOURCES[family])
    args = GradiendTrainingArguments(
        str(output_dir),
        max_steps=STEPS[family],
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=10,
        eval_max_rows=64,
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=model,
        processing_class=tokenizer,
        args=args,
        train_dataset=load_builtin("gender-en"),
    )
    trainer.train()
    return trainer, gradiend, model, tokenizer, output_dir


def test_tiny_model_learns_the_gender_feature(trained):
    trainer, gradiend, model, _, _ = trained
    metrics = trainer.evaluate()
    assert metrics["eval_correlation"] >= 0.9, metrics
    assert gradiend.config.objective == "seq2seq_lm"
    assert all(not p.requires_grad for p in model.parameters())


def test_save_and_load_round_trip_is_bit_identical(trained, tmp_path):
    _, gradiend, _, _, _ = trained
    gradiend.save_pretrained(tmp_path)
    loaded = GradiendModel.from_pretrained(tmp_path)
    assert loaded.config.param_names == gradiend.config.param_names and loaded.config.objective == "seq2seq_lm"
    own, other = gradiend.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys() and all(torch.equal(own[key], other[key]) for key in own)


def test_decoder_grid_runs_and_restores_the_weights_exactly(trained):
    _, gradiend, model, tokenizer, _ = trained
    before = {name: value.clone() for name, value in model.state_dict().items()}
    report = evaluate_decoder(
        gradiend,
        model,
        tokenizer,
        he_she_dataset(),
        neutral_dataset(),
        target_class="F",
        learning_rates=[1e-2, 1.0, 100.0],
        max_rows=12,
        lms_max_texts=24,
    )
    assert len(report.grid) == 3 and report.base["lms"] > 0
    assert report.grid["lms"].iloc[-1] != report.base["lms"]  # the rewrites were really applied
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_model_card_names_the_seq2seq_objective(trained):
    trainer, _, _, _, output_dir = trained
    trainer.create_model_card()
    card = (output_dir / "README.md").read_text()
    assert Seq2SeqObjective.description in card, card[:2000]


def test_peft_export_of_a_t5_rewrite_merges_to_the_dense_rewrite(tmp_path):
    model, _ = tiny_model("t5")
    gradiend = GradiendModel.from_base_model(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in gradiend.decoder.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    report = gradiend.export_peft(model, 1.0, 1e-2, tmp_path, rank="full")
    expected = gradiend.rewrite(model, 1.0, 1e-2)
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = PeftModel.from_pretrained(tiny_model("t5")[0], tmp_path).merge_and_unload()
    for name, param in expected.named_parameters(remove_duplicate=False):
        scale = max(param.abs().max().item(), 1.0)
        assert (merged.get_parameter(name) - param).abs().max().item() <= 1e-5 * scale, name
    # The tied LM head got the shared embedding's delta, as the gradient did.
    head, embedding = merged.get_output_embeddings().weight, expected.get_input_embeddings().weight
    assert (head - embedding).abs().max() <= 1e-5 * embedding.abs().max()
    assert report.relative_error < 1e-6


def test_bias_benchmarks_refuse_seq2seq_models():
    with pytest.raises(BenchmarkError, match="not supported"):
        family_of(tiny_model("t5")[0])
