"""The sequence-cloze objective of causal LMs (`causal_lm_cloze`) against the plain computation: losses from a hand
loop over the word's and the window's tokens, group gradients from separate `.backward()` passes, batched `jvp`
encodings from the per-example loop, class probabilities from a step-by-step product; and its choice, record and
use through the API, the config, training, the CLI, PEFT export and the card."""

import json
import math

import pytest
import torch
import yaml

from gradiend_hf import GradiendConfig, GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.cli.main import main as cli
from gradiend_hf.data import load_builtin
from gradiend_hf.errors import GradiendError
from gradiend_hf.evaluation.lms import LanguageModelingScorer
from gradiend_hf.evaluation.probabilities import ClassProbabilityScorer
from gradiend_hf.export import export_peft
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.model_card import build_gradiend_card
from gradiend_hf.objectives import (
    CausalLMClozeObjective,
    ObjectiveError,
    detect_objective,
    get_objective,
    gradiend_objective,
)

from .tiny_models import CAUSAL_FAMILIES, tiny_model


# "he"/"she" are one token for the tiny tokenizers; "muslim", "doctors", "shedoctor" several; "New York" a phrase.
MASKED = [
    "The doctor said that [MASK] would come home.",
    "My sister thought that [MASK] was very tired.",
    "Yes, the old man knew [MASK] had seen the sea.",
    "Our teacher wrote that [MASK] could not sleep.",
]
FACTUAL = ["muslim", "he", "doctors", "New York"]
ALTERNATIVE = ["she", "shedoctor", "muslim", "he"]
WINDOWS = [0, 2, None]  # None: all of the rest


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def target_positions(tokenizer, text, word, window):
    """The filled-in text's ids and the positions of the loss targets: the word's tokens (by character offsets) and
    then `window` tokens after them (None: all), trailing special tokens excluded."""
    prefix, suffix = text.split("[MASK]")
    encoded = tokenizer(prefix + word + suffix, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    start, end = len(prefix), len(prefix) + len(word)
    word_positions = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a and a < end and b > start]
    last = len(ids)
    while ids[last - 1] in tokenizer.all_special_ids:
        last -= 1
    after = list(range(word_positions[-1] + 1, last))
    return ids, word_positions, after if window is None else after[:window]


def hand_loss(model, tokenizer, text, word, window):
    """Summed NLL of the word's and the window's tokens: one forward over the unpadded filled-in text, then each
    target's log-softmax read one by one (the logits at t - 1 predict token t)."""
    ids, word_positions, after = target_positions(tokenizer, text, word, window)
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    loss = 0.0
    for position in word_positions + after:
        loss = loss - torch.log_softmax(logits[position - 1], -1)[ids[position]]
    return loss


def cloze(family, window=None):
    model, tokenizer = tiny_model(family)
    return model, tokenizer, get_objective("causal_lm_cloze", tokenizer, model=model, right_window=window)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
@pytest.mark.parametrize("window", WINDOWS)
def test_losses_equal_a_hand_loop_over_the_word_and_window_tokens(family, window):
    model, tokenizer, objective = cloze(family, window)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    lengths = [len(target_positions(tokenizer, t, "he", None)[2]) for t in MASKED]
    assert min(lengths) > 2, "the rows need more than two tokens after the blank"
    with torch.no_grad():
        factual, alternative = objective.losses(model, batch)
        for row, text in enumerate(MASKED):
            for ours, word in ((factual[row], FACTUAL[row]), (alternative[row], ALTERNATIVE[row])):
                torch.testing.assert_close(ours, hand_loss(model, tokenizer, text, word, window), rtol=1e-4, atol=1e-5)
    if window == 0:  # no right context: exactly the next-token loss of causal_lm
        plain = get_objective("causal_lm", tokenizer, model=model)
        with torch.no_grad():
            torch.testing.assert_close(factual, plain.losses(model, plain.prepare(MASKED, FACTUAL, ALTERNATIVE))[0])


def test_each_word_carries_its_own_right_hand_targets_and_a_window_never_reaches_past_the_text():
    model, tokenizer, objective = cloze("gpt2", window=50)
    batch = objective.prepare(MASKED[:1], ["muslim"], ["he"])
    for slot, word in enumerate(["muslim", "he"]):
        ids, word_positions, after = target_positions(tokenizer, MASKED[0], word, None)
        assert batch.target_ids[batch.target_slots == slot].tolist() == [ids[p] for p in word_positions + after]
    # Different words: two sequences, each the filled-in text without its last token.
    assert len(batch.input_ids) == 2
    # The word's probability is what `prepare_words` scores: its own tokens only, as for causal_lm.
    words = objective.prepare_words(MASKED[:1], [["muslim", "he"]])
    assert words.token_counts().tolist() == [[len(target_positions(tokenizer, MASKED[0], "muslim", 0)[1]), 1]]


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_one_forward_group_gradients_equal_separate_plain_backward_passes(family):
    model, tokenizer, objective = cloze(family, window=2 if family == "gpt2" else None)
    names = GradiendModel.from_base_model(model, objective="causal_lm_cloze").param_names
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    ours = group_gradients(model, objective, batch, names, kinds=("factual", "alternative"))
    params = dict(model.named_parameters())
    for kind, words in (("factual", FACTUAL), ("alternative", ALTERNATIVE)):
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.requires_grad_(True)
        loss = sum(hand_loss(model, tokenizer, t, w, objective.right_window) for t, w in zip(MASKED, words))
        (loss / len(MASKED)).backward()
        scale = max(params[n].grad.abs().max() for n in names if params[n].grad is not None)
        for name in names:
            plain = params[name].grad if params[name].grad is not None else torch.zeros_like(params[name])
            torch.testing.assert_close(ours[kind][name] / scale, plain / scale, atol=2e-5, rtol=1e-4)
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.requires_grad_(False)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_batched_jvp_encodings_equal_the_per_example_loop(family):
    model, tokenizer, objective = cloze(family)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, latent_dim=2, objective="causal_lm_cloze")
    with torch.no_grad():
        for weight in gradiend.encoder.weight.values():
            weight.normal_(0, 0.05)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    for source in ("alternative", "diff"):
        fast = torch.atanh(encode_rows(gradiend, model, objective, batch, source=source).double())
        slow = torch.atanh(encode_rows_loop(gradiend, model, objective, batch, source=source).double())
        relative = (fast - slow).abs().max() / slow.abs().max()
        assert relative <= 1e-4, relative


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_decoder_word_probability_is_the_chain_rule_product_given_the_prefix(family):
    model, tokenizer, objective = cloze(family)
    words = {"A": ["he", "muslim"], "B": ["she", "New York"]}
    scorer = ClassProbabilityScorer(objective, MASKED, ["he"] * len(MASKED), words, batch_size=3)
    probs = scorer(model)
    with torch.no_grad():
        for row, text in enumerate(MASKED):
            for name, class_words in words.items():
                expected = 0.0
                for word in class_words:
                    ids, positions, _ = target_positions(tokenizer, text, word, 0)
                    log_prob = 0.0
                    for position in positions:  # one forward pass per token, over the text before it
                        logits = model(input_ids=torch.tensor([ids[:position]])).logits[0, -1].double()
                        log_prob += float(logits.log_softmax(-1)[ids[position]])
                    expected += math.exp(log_prob)
                assert float(probs[name][row]) == pytest.approx(expected, rel=1e-4)
    # Only the class words' tokens are kept out of the LMS, never the text after the blank.
    plain = ClassProbabilityScorer(get_objective("causal_lm", tokenizer), MASKED, ["he"] * 4, words, batch_size=3)
    assert scorer.token_ids() == plain.token_ids()


def test_lms_is_the_next_token_nll_of_the_whole_text():
    model, tokenizer, objective = cloze("gpt2", window=2)
    texts = [t.replace("[MASK]", "it") for t in MASKED]
    ours = LanguageModelingScorer(tokenizer, texts, objective)(model)
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text)["input_ids"]
            log_probs = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
            nll -= sum(float(log_probs[t - 1, ids[t]]) for t in range(1, len(ids)))
            count += len(ids) - 1
    assert ours["nll"] == pytest.approx(nll / count, rel=1e-5)
    assert ours["lms"] == pytest.approx(1 / (1 + nll / count), rel=1e-5)


def test_it_is_chosen_by_name_never_detected_and_only_for_causal_lms():
    model, tokenizer = tiny_model("gpt2")
    assert detect_objective(model) == "causal_lm"
    assert GradiendModel.from_base_model(model).config.objective == "causal_lm"
    bert, _ = tiny_model("bert")
    with pytest.raises(ObjectiveError, match="'causal_lm_cloze' cannot score BertForMaskedLM.*masked_lm"):
        GradiendModel.from_base_model(bert, objective="causal_lm_cloze")
    family = CausalLMClozeObjective
    assert (family.peft_task_type, family.auto_class, family.reads_right_context) == (
        "CAUSAL_LM",
        "AutoModelForCausalLM",
        False,  # the model still predicts the blank left to right (benchmarks, app, perplexity)
    )
    objective = get_objective("causal_lm_cloze", tokenizer)
    text = "He said that [MASK] would come."
    assert objective.row_from_text(text) == text  # the text after the blank is kept: the loss reads it
    assert objective.row_from_text("He said that") == "He said that [MASK]"
    with pytest.raises(ObjectiveError, match="before"):
        objective.row_from_text("[MASK] came.")


@pytest.mark.parametrize("window", [-2, 1.5, "2", True, [1]])
def test_an_invalid_window_is_refused_with_a_clear_error(window):
    _, tokenizer = tiny_model("gpt2")
    with pytest.raises(ObjectiveError, match="`right_window` must be a whole number of tokens >= 0, or -1"):
        get_objective("causal_lm_cloze", tokenizer, right_window=window)
    with pytest.raises(ObjectiveError, match="right_window"):
        GradiendConfig(objective="causal_lm_cloze", objective_options={"right_window": window})


def test_options_are_checked_against_the_objective():
    _, tokenizer = tiny_model("gpt2")
    with pytest.raises(ObjectiveError, match="'causal_lm' takes no options; got right_window"):
        get_objective("causal_lm", tokenizer, right_window=2)
    with pytest.raises(ObjectiveError, match="takes only right_window; got window"):
        GradiendConfig(objective="causal_lm_cloze", objective_options={"window": 2})
    with pytest.raises(GradiendError, match="need an `objective`"):
        GradiendConfig(objective_options={"right_window": 2})
    assert GradiendConfig(objective="causal_lm_cloze").objective_options == {"right_window": -1}  # recorded
    assert get_objective("causal_lm_cloze", tokenizer, right_window=-1).right_window is None


def train_on_gender(tmp_path, window, **config):
    """A tiny GPT-2 GRADIEND trained with the test settings of `test_trainer.py` (40 steps, 4 rows a gradient)."""
    model, tokenizer = tiny_model("gpt2")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(
        model, objective="causal_lm_cloze", objective_options={"right_window": window}, **config
    )
    args = GradiendTrainingArguments(
        str(tmp_path),
        max_steps=40,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=10,
        eval_max_rows=64,
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    data = load_builtin("gender-en")
    trainer = GradiendTrainer(
        model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=data
    )
    assert isinstance(trainer.objective, CausalLMClozeObjective)
    assert trainer.objective.right_window == (None if window == -1 else window)
    trainer.train()
    return trainer, gradiend, model, tokenizer


def test_the_whole_right_context_trains_with_the_diff_source(tmp_path):
    # With every token after the word in the loss, the alternative gradient of a random tiny model is mostly the
    # text after the blank (the same for both classes); the factual-minus-alternative gradient cancels it.
    trainer, *_ = train_on_gender(tmp_path, -1, source="diff")
    assert trainer.evaluate()["eval_correlation"] >= 0.9


def test_training_reaches_the_gender_correlation_and_save_load_round_trips(tmp_path):
    trainer, gradiend, model, tokenizer = train_on_gender(tmp_path, 2)
    assert trainer.evaluate()["eval_correlation"] >= 0.9

    gradiend.save_pretrained(tmp_path / "saved")
    recorded = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert recorded["objective"] == "causal_lm_cloze" and recorded["objective_options"] == {"right_window": 2}
    loaded = GradiendModel.from_pretrained(tmp_path / "saved")
    assert loaded.state_dict().keys() == gradiend.state_dict().keys()
    for key, value in gradiend.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        tmp_path / "saved" / "model.safetensors"
    ).read_bytes()
    objective = gradiend_objective(loaded.config, model, tokenizer)
    assert isinstance(objective, CausalLMClozeObjective) and objective.right_window == 2

    card = str(build_gradiend_card(loaded.config, str(tmp_path / "saved")))
    assert "causal LM sequence cloze" in card and "2 tokens after it" in card
    export_peft(loaded, model, 1.0, 1e-2, tmp_path / "adapter", rank=4)
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    model, tokenizer = tiny_model("llama")
    path = tmp_path_factory.mktemp("llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_config(folder, tmp_path, **values):
    config = dict(
        base_model=str(folder),
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        params=["model.layers.1.mlp.*"],
        **values,
    )
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_cli_trains_with_the_objective_and_records_its_window(llama_folder, tmp_path):
    cli(["train", train_config(llama_folder, tmp_path, objective="causal_lm_cloze", right_window=3)])
    config = GradiendModel.from_pretrained(tmp_path / "out").config
    assert config.objective == "causal_lm_cloze" and config.objective_options == {"right_window": 3}


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"objective": "causal_lm_cloze", "right_window": -2}, "`right_window` must be a whole number"),
        ({"right_window": 2}, "`right_window` is an option of `objective: causal_lm_cloze`"),
        ({"objective": "causal_lm", "right_window": 2}, "not of causal_lm"),
        ({"objective": "cloze"}, "Unknown objective 'cloze'"),
    ],
)
def test_the_cli_refuses_a_bad_objective_or_window_in_one_line(values, expected, llama_folder, tmp_path, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli(["train", train_config(llama_folder, tmp_path, **values)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gradiend-hf train: error:") and expected in err, err
    assert not (tmp_path / "out" / "config.json").exists()


def test_every_suite_member_records_the_objective_the_cli_config_names():
    from gradiend_hf.cli.arguments import ModelArguments
    from gradiend_hf.cli.suite import member_init

    model, _ = tiny_model("llama")
    chosen = ModelArguments(objective="causal_lm_cloze", right_window=1, params=["model.layers.1.mlp.*"])
    config = member_init(model, chosen)(None).config
    assert config.objective == "causal_lm_cloze" and config.objective_options == {"right_window": 1}
    assert member_init(model, ModelArguments()) is None  # the detected objective, as before
