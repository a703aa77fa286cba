"""The language-modelling score against hand computations (one text at a time, no padding)."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gradiend_hf.evaluation import LanguageModelingScorer

from .test_evaluation_common import neutral_dataset, one_thread  # noqa: F401
from .tiny_models import tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = list(neutral_dataset()["text"][:12]) + ["It was very tired.", "They know it is late and they would come home."]


def test_masked_lm_masks_only_ordinary_tokens_at_least_one_per_text():
    _, tokenizer = tiny_model("bert")
    scorer = LanguageModelingScorer(tokenizer, TEXTS, "masked_lm", batch_size=4, seed=3)
    special = set(tokenizer.all_special_ids)
    seen = []
    for ids, mask, target in scorer.batches:
        for row in range(ids.shape[0]):
            length = int(mask[row].sum())
            chosen = (target[row] != -100).nonzero().flatten().tolist()
            original = ids[row, :length].clone()
            original[chosen] = target[row, chosen]
            assert original[0] == tokenizer.cls_token_id and original[length - 1] == tokenizer.sep_token_id
            assert all(0 < i < length - 1 for i in chosen)  # never [CLS], [SEP] or padding
            assert all(int(original[i]) not in special for i in chosen)
            assert all(ids[row, i] == tokenizer.mask_token_id for i in chosen)
            ordinary = length - 2
            assert len(chosen) == max(1, round(0.15 * ordinary))
            seen.append(tokenizer.decode(original[1 : length - 1]))
    assert sorted(seen) == sorted(tokenizer.decode(tokenizer(t)["input_ids"][1:-1]) for t in TEXTS)
    again = LanguageModelingScorer(tokenizer, TEXTS, "masked_lm", batch_size=4, seed=3)
    assert all(torch.equal(a[2], b[2]) for a, b in zip(scorer.batches, again.batches))  # seeded


def test_masked_lm_accuracy_matches_a_loop_over_unpadded_texts():
    model, tokenizer = tiny_model("bert")
    with torch.no_grad():  # favour a few frequent words so that some predictions are right
        for word in ("the", "that", "said", "would", "."):
            model.cls.predictions.bias[tokenizer.convert_tokens_to_ids(word)] += 4.0
    scorer = LanguageModelingScorer(tokenizer, TEXTS, "masked_lm", batch_size=5, seed=1)
    correct = total = 0
    with torch.no_grad():
        for ids, mask, target in scorer.batches:
            for row in range(ids.shape[0]):
                length = int(mask[row].sum())
                logits = model(input_ids=ids[row : row + 1, :length]).logits[0]
                for i in range(length):
                    if target[row, i] != -100:
                        total += 1
                        correct += int(logits[i].argmax()) == int(target[row, i])
    score = scorer(model)
    assert 0 < correct < total
    assert score["lms"] == pytest.approx(correct / total)
    assert set(score) == {"lms"}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_causal_lm_score_is_the_next_token_nll_computed_by_hand(family):
    model, tokenizer = tiny_model(family)
    he = tokenizer(" he", add_special_tokens=False)["input_ids"]
    assert len(he) == 1
    scorer = LanguageModelingScorer(tokenizer, TEXTS, "causal_lm", batch_size=4, excluded_token_ids=he)
    special = set(tokenizer.all_special_ids)
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(text)["input_ids"]
            log_probs = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
            for t in range(len(ids) - 1):
                if ids[t + 1] not in special and ids[t + 1] != he[0]:
                    nll -= float(log_probs[t, ids[t + 1]])
                    count += 1
    score = scorer(model)
    assert score["nll"] == pytest.approx(nll / count, rel=1e-5)
    assert score["lms"] == pytest.approx(1 / (1 + nll / count), rel=1e-5)
    assert score["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert scorer.num_tokens == count


class AbsurdLM(nn.Module):
    """Returns logits that no softmax survives: huge, infinite and NaN entries."""

    def __init__(self, vocab: int, kind: str):
        super().__init__()
        self.vocab, self.kind = vocab, kind

    def forward(self, input_ids, attention_mask=None, **kwargs):
        shape = (*input_ids.shape, self.vocab)
        if self.kind == "huge":
            logits = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 1e30
        elif self.kind == "inf":
            logits = torch.full(shape, math.inf)
        else:
            logits = torch.full(shape, math.nan)
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("kind", ["huge", "inf", "nan"])
def test_absurd_logits_give_lms_zero_without_an_exception(kind):
    _, tokenizer = tiny_model("gpt2")
    score = LanguageModelingScorer(tokenizer, TEXTS, "causal_lm")(AbsurdLM(len(tokenizer), kind))
    assert score["lms"] == 0.0
    assert score["perplexity"] == math.inf
    _, tokenizer = tiny_model("bert")
    if kind != "huge":
        assert LanguageModelingScorer(tokenizer, TEXTS, "masked_lm")(AbsurdLM(len(tokenizer), kind))["lms"] == 0.0


def test_no_scorable_text_is_a_clear_error():
    _, tokenizer = tiny_model("bert")
    with pytest.raises(ValueError, match="no token to score|has a token"):
        LanguageModelingScorer(tokenizer, ["", "   "], "masked_lm")


class FixedLogitsLM(nn.Module):
    """Returns the same `(batch, length, vocab)` logits whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.logits)


def test_masked_lm_hits_equal_the_plain_argmax_and_finiteness_check():
    # Hand-made rows: a clear hit, a tie before the target (argmax takes the first), a hit next to -inf, +inf or
    # NaN elsewhere in the row (never a hit), and a miss.
    from gradiend_hf.objectives import IGNORE_INDEX, get_objective

    _, tokenizer = tiny_model("bert")
    objective = get_objective("masked_lm", tokenizer)
    vocab, length = 12, 6
    logits = torch.zeros(1, length, vocab)
    target = torch.full((1, length), IGNORE_INDEX)
    target[0, :] = 5
    logits[0, :, 5] = 3.0
    logits[0, 1, 2] = 3.0  # tie at an earlier index
    logits[0, 2, 9] = -math.inf
    logits[0, 3, 0] = math.inf
    logits[0, 4, 7] = math.nan
    logits[0, 5, 5], logits[0, 5, 1] = 1.0, 2.0  # miss
    ids = torch.ones(1, length, dtype=torch.long)
    hits, tokens = objective.lms_batch_totals(FixedLogitsLM(logits), (ids, torch.ones_like(ids), target))
    plain = (logits[0].argmax(-1) == target[0]) & torch.isfinite(logits[0]).all(-1)
    assert (hits, tokens) == (int(plain.sum()), length) == (1, length)
