"""Tiny language models and tokenizers built from configs, offline: for tests, examples and quick experiments.

Every family the library supports is here: BERT, RoBERTa and DistilBERT (masked LMs), GPT-2 and Llama (causal LMs),
T5 and BART (seq2seq LMs). Tokenizers are trained with the `tokenizers` library on a small corpus so that the pronouns the tests use are single
tokens.
"""

from __future__ import annotations

import collections
import functools
import re
import string

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
    T5Config,
    T5ForConditionalGeneration,
)

from gradiend_hf.data import load_builtin


FAMILIES = ("bert", "roberta", "distilbert", "gpt2", "llama")
"""The masked and causal families (what most tests run over); the seq2seq ones are `SEQ2SEQ_FAMILIES`."""
MASKED_FAMILIES = ("bert", "roberta", "distilbert")
CAUSAL_FAMILIES = ("gpt2", "llama")
SEQ2SEQ_FAMILIES = ("t5", "bart")
T5_SENTINELS = 100
"""Sentinel tokens `<extra_id_0>` … of the tiny T5 tokenizer, as many as the real one has."""

_SUBJECTS = ["the doctor", "my sister", "the old man", "our teacher", "the girl", "his brother", "the pilot"]
_VERBS = ["said that", "thought that", "knew that", "hoped that", "wrote that"]
_PRONOUNS = ["he", "she", "it", "they"]
_ENDS = ["would come home", "was very tired", "had seen the sea", "liked the red car", "could not sleep"]

CORPUS = [
    f"{s.capitalize()} {v} {p} {e}." for s in _SUBJECTS for v in _VERBS for p in _PRONOUNS for e in _ENDS[:2]
] + [
    "He said she would come.",
    "She said he was tired.",
    "They know it is late.",
    "Mary and John went to the market on Sunday morning.",
]


@functools.cache
def _builtin_texts() -> tuple[str, ...]:
    """Sentences of the bundled datasets, so tiny tokenizers read real text in few tokens."""

    texts = []
    for name in ("gender-en", "pronoun-number-en"):
        texts.extend(load_builtin(name)["train"]["text"])
    texts.extend(load_builtin("neutral-en")["text"])
    return tuple(texts)


def _word_level_corpus() -> list[str]:
    return CORPUS * 3 + list(_builtin_texts())


@functools.cache
def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer ([CLS] … [SEP], lower-cased)."""
    # The vocabulary is built by hand: the `tokenizers` WordPiece trainer breaks frequency ties differently from
    # one process to the next, and the two-process training test needs identical models in both processes.
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    counts = collections.Counter(w for text in _word_level_corpus() for w in re.findall(r"\w+", text.lower()))
    frequent = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3000]]
    words = sorted(set(frequent) | {w for text in CORPUS for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    pieces = specials + words + [c for c in chars if c not in words] + ["##" + c for c in string.ascii_lowercase]
    tok = Tokenizer(models.WordPiece(vocab={p: i for i, p in enumerate(dict.fromkeys(pieces))}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tok.decoder = decoders.WordPiece()
    specials = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, mask_token="[MASK]", **specials)


@functools.cache
def byte_bpe_tokenizer(style: str = "gpt2") -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer: `"gpt2"` (no specials added), `"roberta"` (<s> … </s>, <mask>) or `"llama"`
    (<s> prepended)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=3000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_word_level_corpus(), trainer)
    if style == "roberta":
        # As in the real RoBERTa tokenizer, the mask token swallows the space before it.
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
        )
        roles = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, cls_token="<s>", sep_token="</s>", mask_token="<mask>", **roles
        )
    if style == "llama":
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="</s>")


@functools.cache
def sentencepiece_style_tokenizer() -> PreTrainedTokenizerFast:
    """A T5-style tokenizer: BPE on `▁`-marked words (as SentencePiece writes them), `</s>` appended, `<pad>` = 0
    (T5's decoder start), and the sentinel tokens `<extra_id_0>` … `<extra_id_99>` as special tokens."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Punctuation is split off as SentencePiece's T5 vocabulary mostly does, so a word before "." stays its own token.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=["<pad>", "</s>", "<unk>"])
    tok.train_from_iterator(_word_level_corpus(), trainer)
    sentinels = [f"<extra_id_{i}>" for i in range(T5_SENTINELS)]
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in sentinels])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_special_tokens=sentinels
    )


def tokenizer_for(family: str) -> PreTrainedTokenizerFast:
    if family in ("bert", "distilbert"):
        return wordpiece_tokenizer()
    if family == "t5":
        return sentencepiece_style_tokenizer()
    if family in ("roberta", "bart"):  # BART uses RoBERTa's tokenizer
        return byte_bpe_tokenizer("roberta")
    if family == "llama":
        return byte_bpe_tokenizer("llama")
    return byte_bpe_tokenizer("gpt2")


# Each family's config class, model class, and the names its config gives hidden size, depth, heads, MLP size and
# positions (the same small model in every family's vocabulary).
_FAMILY_SPECS = {
    "bert": (
        BertConfig,
        BertForMaskedLM,
        ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings"),
        128,
        {},
    ),
    "roberta": (
        RobertaConfig,
        RobertaForMaskedLM,
        ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings"),
        130,  # RoBERTa reserves padding_idx + 1 positions
        {"special": True},
    ),
    "distilbert": (
        DistilBertConfig,
        DistilBertForMaskedLM,
        ("dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings"),
        128,
        {},
    ),
    "gpt2": (
        GPT2Config,
        GPT2LMHeadModel,
        ("n_embd", "n_layer", "n_head", None, "n_positions"),
        128,
        {"special": True},
    ),
    "llama": (
        LlamaConfig,
        LlamaForCausalLM,
        ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings"),
        128,
        {"special": True, "num_key_value_heads": 1, "tie_word_embeddings": True},
    ),
    # T5 with relative positions (no position limit); transformers 5 always ties its LM head to the shared embedding.
    "t5": (
        T5Config,
        T5ForConditionalGeneration,
        ("d_model", "num_layers", "num_heads", "d_ff", None),
        None,
        {"eos": True, "start": "pad", "mirror": {"num_decoder_layers": "num_layers"}},
    ),
    # BART ties its LM head to the shared embedding; the decoder starts with `</s>` as in the real BART.
    "bart": (
        BartConfig,
        BartForConditionalGeneration,
        ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "max_position_embeddings"),
        128,
        {
            "special": True,
            "start": "eos",
            "mirror": {
                "decoder_layers": "encoder_layers",
                "decoder_attention_heads": "encoder_attention_heads",
                "decoder_ffn_dim": "encoder_ffn_dim",
            },
            "forced_eos_token_id": None,
        },
    ),
}


def tiny_model(family: str, seed: int = 0, hidden: int = 32, layers: int = 2, attn: str = "eager"):
    """A randomly initialised tiny model of `family`, in eval mode, and its tokenizer."""
    if family not in _FAMILY_SPECS:
        raise ValueError(f"unknown family {family}")
    tokenizer = tokenizer_for(family)
    torch.manual_seed(seed)
    config_class, model_class, names, positions, extra = _FAMILY_SPECS[family]
    extra = dict(extra)
    values = dict(zip(names, (hidden, layers, 2, 2 * hidden, positions)))
    values.pop(None, None)
    if extra.pop("special", False):
        values.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if extra.pop("pad", True):
        values["pad_token_id"] = tokenizer.pad_token_id
    if extra.pop("eos", False):
        values["eos_token_id"] = tokenizer.eos_token_id
    # Encoder-decoder configs size their decoder separately: the same as the encoder here.
    values.update({name: values[same] for name, same in extra.pop("mirror", {}).items()})
    if family == "t5":
        values["d_kv"] = hidden // 2  # T5 does not derive the head size from d_model
    start = extra.pop("start", None)
    if start is not None:
        values["decoder_start_token_id"] = getattr(tokenizer, f"{start}_token_id")
    config = config_class(vocab_size=len(tokenizer), attn_implementation=attn, **values, **extra)
    model = model_class(config)
    model.eval()
    return model, tokenizer


def masked_rows(n: int = 8, causal: bool = False) -> tuple[list[str], list[str], list[str]]:
    """`n` rows (masked text, factual, alternative) alternating he→she and she→he."""
    masked, factual, alternative = [], [], []
    for i in range(n):
        subject = _SUBJECTS[i % len(_SUBJECTS)]
        verb = _VERBS[i % len(_VERBS)]
        end = _ENDS[i % len(_ENDS)]
        text = f"{subject.capitalize()} {verb} [MASK] {end}."
        masked.append(text)
        if i % 2 == 0:
            factual.append("he"), alternative.append("she")
        else:
            factual.append("she"), alternative.append("he")
    return masked, factual, alternative
