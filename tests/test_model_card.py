"""Model cards of GRADIENDs (and of rewritten models): full text, metadata, missing facts, the files they go with."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard

from gradiend_hf import GradiendModel
from gradiend_hf.evaluation import DecoderReport, DecoderSelection, EncoderReport
from gradiend_hf.model_card import build_gradiend_card, write_gradiend_card
from gradiend_hf.model_card_sections import compact_parameter_names
from gradiend_hf.rewrite_io import save_rewritten

from .tiny_models import tiny_model


# --------------------------------------------------------------------------- full-text patterns (setfit style)

PLACEHOLDERS = {
    "{VERSION}": r"[0-9][0-9A-Za-z.+\-]*",
    "{PATH}": r"[^\"`\n]+",
}


def card_pattern(expected: str) -> re.Pattern:
    """The whole card as a regex: `expected` verbatim except for the placeholders (versions, temporary paths)."""
    pattern = re.escape(expected)
    for placeholder, regex in PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape(placeholder), regex)
    return re.compile(pattern)


def sections(text: str) -> dict[str, str]:
    body = text.split("---", 2)[2]
    parts = re.split(r"^#{2,3} (.+)$", body, flags=re.M)
    return {title: content.strip() for title, content in zip(parts[1::2], parts[2::2])}


def assert_no_empty_headings(text: str) -> None:
    body = re.sub(r"```.*?```", "```code```", text.split("---", 2)[2], flags=re.S)  # comments in code are no headings
    for match in re.finditer(r"^(#{1,3}) (.+)\n+(?=(#{1,3}) |\Z)", body, flags=re.M):
        # A heading may be followed directly by a deeper sub-heading, never by a sibling or the end.
        if match.group(3) is None or len(match.group(3)) <= len(match.group(1)):
            raise AssertionError(f"empty heading {match.group(2)!r}")
    assert "\n\n\n" not in text
    assert "None" not in body and "nan" not in body


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gradiend():
    base, _ = tiny_model("bert")
    torch.manual_seed(0)
    model = GradiendModel.from_base_model(
        base,
        params=["bert.encoder.layer.*.output.dense.weight", "bert.encoder.layer.*.attention.self.query.*"],
        feature_classes=["M", "F"],
        base_model_name_or_path="google-bert/bert-base-cased",
        base_model_revision="cd5ef92a9fb2f889e972770a36d4ed042daf221e",
    )
    model.config.training_summary = {
        "history": [
            {"step": 0, "epoch": 0.0, "correlation": 0.05, "mean_M": 0.01, "mean_F": 0.02},
            {"step": 100, "epoch": 0.5, "correlation": 0.97, "mean_M": -0.91, "mean_F": 0.88},
        ],
        "best_step": 100,
        "best_correlation": 0.97,
        "mean_by_class": {"M": -0.91, "F": 0.88},
        "converged": True,
        "global_step": 100,
    }
    return model


def encoder_report() -> EncoderReport:
    rows = pd.DataFrame(
        {
            "text": ["My uncle said that [MASK] was late.", "Her aunt said that [MASK] was early.", "It is [MASK]."],
            "type": ["training", "training", "neutral_dataset"],
            "factual": ["he", "she", "late"],
            "alternative": ["she", "he", "late"],
            "factual_class": ["M", "F", None],
            "alternative_class": ["F", "M", None],
            "expected": [-1, 1, 0],
            "encoding": [-0.9, 0.85, 0.05],
        }
    )
    metrics = {
        "correlation": 0.95,
        "accuracy": 0.9,
        "binary_accuracy": 1.0,
        "correlation_all": 0.8,
        "mean_by_class": {"M": -0.9, "F": 0.85},
        "encoding_by_class": {"M": {"mean": -0.9, "expected": -1}, "F": {"mean": 0.85, "expected": 1}},
        "neutral_mean": {"neutral_dataset": 0.05},
        "num_rows": {"neutral_dataset": 1, "training": 2},
    }
    return EncoderReport(metrics=metrics, rows=rows, feature_classes=["M", "F"], positive_class="M", split="test")


def decoder_report() -> DecoderReport:
    point = {"prob_M_on_M": 0.6, "prob_F_on_M": 0.2, "prob_M_on_F": 0.1, "prob_F_on_F": 0.7, "lms": 0.5}
    grid = pd.DataFrame(
        [
            {"feature_factor": -1.0, "learning_rate": 0.5, **point, "prob_F_on_M": 0.35, "lms": 0.49},
            {"feature_factor": -1.0, "learning_rate": 1.0, **point, "prob_F_on_M": 0.5, "lms": 0.3},
        ]
    )
    selection = DecoderSelection(
        feature_factor=-1.0, learning_rate=0.5, value=0.35, lms=0.49, base_value=0.2, base_lms=0.5, metric="x"
    )
    return DecoderReport(
        grid=grid,
        base={"feature_factor": 0.0, "learning_rate": 0.0, **point},
        selected=selection,
        target_class="F",
        strengthen=True,
        policy="lms_threshold",
        feature_classes=["M", "F"],
        num_rows={"M": 10, "F": 10},
        num_lms_texts=20,
    )


FULL_CARD = """---
library_name: gradiend-hf
base_model: google-bert/bert-base-cased
tags:
- gradiend
- gradient-encoder
- m
- f
---

# GRADIEND for M vs F on bert-base-cased

This is a [GRADIEND](https://arxiv.org/abs/2502.01406) for the feature `M` vs `F` of [google-bert/bert-base-cased](https://huggingface.co/google-bert/bert-base-cased), trained with gradiend-hf. A GRADIEND learns one feature of a language model from the model's own gradients: its **encoder** maps the gradient of the language-modelling loss for a word at a blank to a feature value (about +1 for class `M`, -1 for the other class), and its **decoder** maps a feature value `ff` to a weight update `u(ff)` that rewrites the base model, `θ' = θ + lr · u(ff)`, to strengthen or weaken a class.

## Feature

| Class | Words | Encoding of a gradient towards the class | Feature factor that strengthens it |
| --- | --- | --- | --- |
| `M` | he | +1 | +1 |
| `F` | she | -1 | -1 |

## Quick start

```python
from gradiend_hf import GradiendModel, load_base_model
from gradiend_hf.objectives import gradiend_objective
from gradiend_hf.gradients import encode_rows

gradiend = GradiendModel.from_pretrained("{PATH}")
base, tokenizer = load_base_model(gradiend)  # the base model (and revision) the GRADIEND was trained on

# The gradient of filling the blank with "he" (class `M`) encodes to about +1.
objective = gradiend_objective(gradiend.config, base, tokenizer)  # the objective it was trained with
batch = objective.prepare(["My uncle said that [MASK] was late."], factual=["she"], alternative=["he"])
print(encode_rows(gradiend, base, objective, batch))

# Rewrite the base model: the rewrite chosen by the decoder evaluation (strengthens class `F`).
rewritten = gradiend.rewrite(base, feature_factor=-1, learning_rate=0.5)
```

Try it in the browser with `gradiend-hf app {PATH}` (needs `pip install "gradiend-hf[app]"`).

## Model details

| | |
| --- | --- |
| Base model | [google-bert/bert-base-cased](https://huggingface.co/google-bert/bert-base-cased) |
| Base model revision | `cd5ef92a9fb2f889e972770a36d4ed042daf221e` |
| Base architecture | BertForMaskedLM |
| Objective | masked LM (the blank is the mask token) |
| Covered base parameters | 8,256 entries in 8 tensors |
| Latent dimension | 1 |
| Encoder | `tanh`, reads the `alternative` gradient |
| Decoder | `id`, with bias, reconstructs the `diff` gradient |
| GRADIEND parameters | 24,769 |
| dtype | `float32` |

Covered base parameters (`{0-3}` stands for layers 0 to 3):

- `bert.encoder.layer.{0-1}.attention.self.query.weight`
- `bert.encoder.layer.{0-1}.attention.self.query.bias`
- `bert.encoder.layer.{0-1}.attention.output.dense.weight`
- `bert.encoder.layer.{0-1}.output.dense.weight`

## Training

Data: the built-in gradiend-hf dataset `gender-en`: English he (class M, label +1) vs she (class F, label -1) in sentences of Jane Austen's novels; at least 10 words before [MASK]. License: Public domain.

Rows per split:

| Split | Rows |
| --- | --- |
| train | 80 |
| test | 20 |

### Hyper-parameters

| | |
| --- | --- |
| learning_rate | `0.0001` |
| max_steps | `100` |
| sentences_per_gradient | `16` |
| seed | `0` |

### Training run

| | |
| --- | --- |
| Training steps | 100 |
| Kept GRADIEND | step 100 (best validation correlation) |
| Validation correlation | 0.97 |
| Mean validation encoding, rows with a `M` factual word | -0.91 |
| Mean validation encoding, rows with a `F` factual word | +0.88 |
| Converged | yes |

Validation during training:

| Step | Correlation | Mean `M` | Mean `F` |
| --- | --- | --- | --- |
| 0 | 0.05 | +0.01 | +0.02 |
| 100 | 0.97 | -0.91 | +0.88 |

## Evaluation

### Encoder

On the `test` split: each row's expected encoding is ±1 by the class of the word whose gradient the encoder reads, and 0 for neutral rows.

| Metric | Value |
| --- | --- |
| Correlation (Pearson, expected vs. encoding) | 0.95 |
| Accuracy (ternary, boundaries ±0.5) | 0.9 |
| Sign accuracy (class rows) | 1 |
| Correlation with neutral rows (expected 0) | 0.8 |
| Mean encoding, rows with a `M` factual word | -0.9 (expected -1) |
| Mean encoding, rows with a `F` factual word | +0.85 (expected +1) |
| Mean encoding, neutral sentences (expected 0) | +0.05 |
| Encoded rows | 1 neutral sentences, 2 class rows |

### Chosen rewrite

| | |
| --- | --- |
| Feature factor | -1 |
| Learning rate | 0.5 |
| Intent | strengthen class `F` |
| Selection | best score among rewrites that keep ≥ 99 % of the base model's language-modelling score |

Mean probability of each class's words at the blank of held-out sentences (10 `M` rows, 10 `F` rows), and the language-modelling score (accuracy on randomly masked tokens) on 20 neutral texts.

| Measurement | Base model | Rewritten |
| --- | --- | --- |
| P(M) on `M` rows | 0.6 | 0.6 |
| P(F) on `M` rows | 0.2 | 0.35 |
| P(M) on `F` rows | 0.1 | 0.1 |
| P(F) on `F` rows | 0.7 | 0.7 |
| Language-modelling score | 0.5 | 0.49 |

## Figures

![Training convergence](training_convergence.png)

## Intended use and limitations

A GRADIEND is a research tool for analysing and editing how a language model uses one feature: measuring how strongly a gradient points towards a class, and rewriting the model to strengthen, weaken or balance the classes (for example to reduce a gender bias). It only works with the base model it was trained on (at the revision above).

- The feature is defined by the words of its two classes; the encoder has not seen other ways to express it, and a binary feature simplifies what it stands for.
- A rewrite changes every covered weight of the base model, not only its use of the feature's words: check the rewritten model on the tasks you care about before using it. A rewrite is not a guarantee that the model is fair or safe.
- Encodings of sentences unlike the training data, and feature factors or learning rates far from the evaluated ones, are not validated.

## Framework versions

- gradiend-hf: {VERSION}
- transformers: {VERSION}
- torch: {VERSION}
- huggingface_hub: {VERSION}
- datasets: {VERSION}

## Citation

```bibtex
@article{drechsel2025gradiend,
  title   = {{GRADIEND}: Feature Learning within Neural Networks Exemplified through Biases},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2502.01406},
  year    = {2025}
}

@article{drechsel2026gradiendpackage,
  title   = {The {GRADIEND} Python Package},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2602.23993},
  year    = {2026}
}
```"""


def full_card_inputs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = tmp_path / "figures" / "training_convergence.png"
    figure.parent.mkdir()
    plt.figure(figsize=(2, 2))
    plt.plot([0, 1])
    plt.savefig(figure)
    plt.close()
    return {
        "encoder_report": encoder_report(),
        "decoder_report": decoder_report(),
        "figures": [figure],
        "dataset_name": "gender-en",
        "dataset_sizes": {"train": 80, "test": 20},
        "training_args": {
            "learning_rate": 1e-4,
            "max_steps": 100,
            "num_train_epochs": 3.0,
            "sentences_per_gradient": 16,
            "seed": 0,
        },
    }


# --------------------------------------------------------------------------- the full card


def test_full_card_matches_the_whole_text(gradiend, tmp_path):
    model = GradiendModel(gradiend.config.__class__.from_dict(gradiend.config.to_dict()))
    folder = tmp_path / "gradiend"
    model.save_pretrained(folder)
    card = write_gradiend_card(model, folder, **full_card_inputs(tmp_path))
    text = (folder / "README.md").read_text()
    assert text == str(card)
    assert card_pattern(FULL_CARD).fullmatch(text), text
    assert f'from_pretrained("{folder}")' in text
    assert_no_empty_headings(text)


def test_full_card_metadata_and_files(gradiend, tmp_path):
    model = GradiendModel(gradiend.config.__class__.from_dict(gradiend.config.to_dict()))
    folder = tmp_path / "gradiend"
    model.save_pretrained(folder)
    write_gradiend_card(model, folder, **full_card_inputs(tmp_path))
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "gradiend-hf"
    assert card.data.base_model == "google-bert/bert-base-cased"
    assert card.data.get("base_model_relation") is None  # a GRADIEND is not a derivative language model
    assert card.data.tags == ["gradiend", "gradient-encoder", "m", "f"]
    assert card.data.get("datasets") is None  # a built-in dataset is not a Hub dataset
    assert (folder / "training_convergence.png").is_file()  # figures are copied next to the card
    # What the evaluation knows is recorded in config.json, for the app and for cards written later.
    saved = json.loads((folder / "config.json").read_text())
    assert saved["class_words"] == {"M": ["he"], "F": ["she"]}
    assert saved["examples"] == ["My uncle said that [MASK] was late.", "Her aunt said that [MASK] was early."]
    assert saved["selected_rewrite"] == {
        "feature_factor": -1.0,
        "learning_rate": 0.5,
        "target_class": "F",
        "strengthen": True,
        "policy": "lms_threshold",
    }
    reloaded = GradiendModel.from_pretrained(folder)
    torch.testing.assert_close(reloaded.state_dict(), model.state_dict(), rtol=0, atol=0)
    # A later plain save keeps the recorded facts in its basic card.
    reloaded.save_pretrained(tmp_path / "again")
    again = (tmp_path / "again" / "README.md").read_text()
    assert "rewritten = gradiend.rewrite(base, feature_factor=-1, learning_rate=0.5)" in again
    assert "| Feature factor | -1 |" in sections(again)["Chosen rewrite"]
    assert "Measured effect" not in again and "P(F) on" not in again  # the measurements came with the report only
    assert_no_empty_headings(again)


def test_hub_dataset_goes_into_the_metadata(gradiend, tmp_path):
    card = build_gradiend_card(gradiend.config, "me/g", dataset_name="me/gender-sentences")
    assert card.data.datasets == ["me/gender-sentences"]
    assert "Data: [me/gender-sentences](https://huggingface.co/datasets/me/gender-sentences)" in str(card)


# --------------------------------------------------------------------------- the basic card and missing facts


BASIC_CARD = """---
library_name: gradiend-hf
tags:
- gradiend
- gradient-encoder
---

# GRADIEND on base

This is a [GRADIEND](https://arxiv.org/abs/2502.01406) of `{PATH}`, trained with gradiend-hf. A GRADIEND learns one feature of a language model from the model's own gradients: its **encoder** maps the gradient of the language-modelling loss for a word at a blank to a feature value, and its **decoder** maps a feature value `ff` to a weight update `u(ff)` that rewrites the base model, `θ' = θ + lr · u(ff)`, to strengthen or weaken a class.

## Quick start

```python
from gradiend_hf import GradiendModel, load_base_model

gradiend = GradiendModel.from_pretrained("{PATH}")
base, tokenizer = load_base_model(gradiend)  # the base model (and revision) the GRADIEND was trained on
```

Try it in the browser with `gradiend-hf app {PATH}` (needs `pip install "gradiend-hf[app]"`).

## Model details

| | |
| --- | --- |
| Base model | `{PATH}` |
| Base architecture | GPT2LMHeadModel |
| Objective | causal LM (next token after the text before the blank) |
| Covered base parameters | 4,096 entries in 1 tensor |
| Latent dimension | 1 |
| Encoder | `tanh`, reads the `alternative` gradient |
| Decoder | `id`, with bias, reconstructs the `diff` gradient |
| GRADIEND parameters | 12,289 |
| dtype | `float32` |

Covered base parameters:

- `transformer.h.1.mlp.c_proj.weight`

## Intended use and limitations

A GRADIEND is a research tool for analysing and editing how a language model uses one feature: measuring how strongly a gradient points towards a class, and rewriting the model to strengthen, weaken or balance the classes (for example to reduce a gender bias). It only works with the base model it was trained on.

- The feature is defined by the words of its two classes; the encoder has not seen other ways to express it, and a binary feature simplifies what it stands for.
- A rewrite changes every covered weight of the base model, not only its use of the feature's words: check the rewritten model on the tasks you care about before using it. A rewrite is not a guarantee that the model is fair or safe.
- Encodings of sentences unlike the training data, and feature factors or learning rates far from the evaluated ones, are not validated.

## Framework versions

- gradiend-hf: {VERSION}
- transformers: {VERSION}
- torch: {VERSION}
- huggingface_hub: {VERSION}
- datasets: {VERSION}

## Citation

```bibtex
@article{drechsel2025gradiend,
  title   = {{GRADIEND}: Feature Learning within Neural Networks Exemplified through Biases},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2502.01406},
  year    = {2025}
}

@article{drechsel2026gradiendpackage,
  title   = {The {GRADIEND} Python Package},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2602.23993},
  year    = {2026}
}
```"""


def test_save_pretrained_writes_a_basic_card_without_unknown_facts(tmp_path):
    base, _ = tiny_model("gpt2")
    local_base = tmp_path / "base"
    base.save_pretrained(local_base)
    model = GradiendModel.from_base_model(
        base, params=["transformer.h.1.mlp.c_proj.weight"], base_model_name_or_path=str(local_base)
    )
    model.save_pretrained(tmp_path / "gradiend")
    text = (tmp_path / "gradiend" / "README.md").read_text()
    assert card_pattern(BASIC_CARD).fullmatch(text), text
    assert ModelCard.load(tmp_path / "gradiend" / "README.md").data.get("base_model") is None  # a local folder
    assert_no_empty_headings(text)
    for absent in ("## Feature", "## Training", "## Evaluation", "## Figures", "Revision", "rewrite("):
        assert absent not in text


@pytest.mark.parametrize(
    "facts",
    [
        {},
        {"classes": True},
        {"classes": True, "summary": True},
        {"encoder": True},
        {"decoder": True},
        {"classes": True, "sizes": True},
        {"classes": True, "args": True},
    ],
)
def test_any_subset_of_facts_renders_without_empty_headings(gradiend, facts):
    config = gradiend.config.__class__.from_dict(gradiend.config.to_dict())
    if not facts.get("summary"):
        del config.training_summary
    if not facts.get("classes"):
        config.feature_classes, config.positive_class = None, None
    card = build_gradiend_card(
        config,
        "me/g",
        encoder_report=encoder_report() if facts.get("encoder") else None,
        decoder_report=decoder_report() if facts.get("decoder") else None,
        dataset_sizes={"train": {"M": 3, "F": 4}} if facts.get("sizes") else None,
        training_args={"learning_rate": 1e-3} if facts.get("args") else None,
    )
    text = str(card)
    assert_no_empty_headings(text)
    found = sections(text)
    assert ("Training" in found) == bool(facts.get("summary") or facts.get("sizes") or facts.get("args"))
    assert ("Evaluation" in found) == bool(facts.get("encoder") or facts.get("decoder"))
    assert ("Feature" in found) == bool(facts.get("classes"))
    if facts.get("sizes"):
        assert "| Split | Rows | `M` | `F` |\n| --- | --- | --- | --- |\n| train | 7 | 3 | 4 |" in text


def test_empty_heading_check_can_fail():
    with pytest.raises(AssertionError, match="empty heading 'Training'"):
        assert_no_empty_headings("---\na: 1\n---\n\n## Training\n\n## Evaluation\n\ntext\n")


# --------------------------------------------------------------------------- helpers and errors


def test_compact_parameter_names_groups_layers_into_ranges():
    names = [f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1, 2, 3, 5, 7, 8)] + ["model.norm.weight"]
    assert compact_parameter_names(names) == ["model.layers.{0-3,5,7-8}.mlp.down_proj.weight", "model.norm.weight"]
    many = [f"block.{i}.part{j}.weight" for i in range(2) for j in range(20)]
    lines = compact_parameter_names(many, max_groups=4)
    assert lines == [
        "block.{0-1}.part0.weight",
        "block.{0-1}.part1.weight",
        "block.{0-1}.part2.weight",
        "… and 17 more groups",
    ]


def test_figures_must_be_existing_png_files(gradiend, tmp_path):
    model = GradiendModel(gradiend.config.__class__.from_dict(gradiend.config.to_dict()))
    with pytest.raises(ValueError, match="PNG"):
        write_gradiend_card(model, tmp_path, figures=["plot.svg"])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_gradiend_card(model, tmp_path, figures=["missing.png"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        write_gradiend_card(model, tmp_path / "file")


# --------------------------------------------------------------------------- the card of a rewritten model


REWRITE_CARD = """---
base_model: google-bert/bert-base-cased
library_name: transformers
pipeline_tag: fill-mask
tags:
- gradiend
- gradiend-hf
- rewritten
base_model_relation: finetune
---

# bert-base-cased rewritten with GRADIEND (+F)

This model is [google-bert/bert-base-cased](https://huggingface.co/google-bert/bert-base-cased) with its weights rewritten by a GRADIEND, a learned encoder–decoder for the feature `M` vs `F`.
It was rewritten to strengthen class `F`.

The rewrite adds `learning_rate · u(feature_factor)` to the base model's weights, where `u` is the GRADIEND's decoder: the weight update it associates with the feature value `feature_factor`. It was made with gradiend-hf, the Hugging Face port of GRADIEND ([Drechsel & Herbold](https://arxiv.org/abs/2502.01406)).

## Quick start

```python
from transformers import AutoModelForMaskedLM, AutoTokenizer

model = AutoModelForMaskedLM.from_pretrained("me/bert-she")
tokenizer = AutoTokenizer.from_pretrained("me/bert-she")
```

## Rewrite

| | |
| --- | --- |
| Base model | [google-bert/bert-base-cased](https://huggingface.co/google-bert/bert-base-cased) |
| Base model revision | `cd5ef92a9fb2f889e972770a36d4ed042daf221e` |
| Feature | `M` vs `F` |
| GRADIEND gradients | source `alternative`, target `diff` |
| Rewritten base parameters | 8,256 entries |
| Feature factor | -1 |
| Learning rate | 0.5 |
| Intent | strengthen class `F` |
| Selection | best score among rewrites that keep ≥ 99 % of the base model's language-modelling score |

## Measured effect

Mean probability of each class's words at the blank of held-out sentences (10 `M` rows, 10 `F` rows), and the language-modelling score (accuracy on randomly masked tokens) on 20 neutral texts.

| Measurement | Before | After |
| --- | --- | --- |
| P(M) on `M` rows | 0.6 | 0.6 |
| P(F) on `M` rows | 0.2 | 0.35 |
| P(M) on `F` rows | 0.1 | 0.1 |
| P(F) on `F` rows | 0.7 | 0.7 |
| Language-modelling score | 0.5 | 0.49 |

## Intended use and limitations

This model is meant for research on how a language model uses a feature and for applications that want the feature
strengthened, weakened or balanced (for example a reduced gender bias), after checking the model on their own tasks.

A GRADIEND rewrite changes every covered weight of the model, not only its use of the feature's words: check the
rewritten model on the tasks you care about. The feature is defined by the words of its classes; the rewrite does not
make the model fair or safe in general.

## Framework versions

- gradiend-hf: {VERSION}
- transformers: {VERSION}
- torch: {VERSION}
- huggingface_hub: {VERSION}

## Citation

```bibtex
@article{drechsel2025gradiend,
  title   = {{GRADIEND}: Feature Learning within Neural Networks Exemplified through Biases},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2502.01406},
  year    = {2025}
}

@article{drechsel2026gradiendpackage,
  title   = {The {GRADIEND} Python Package},
  author  = {Drechsel, Jonathan and Herbold, Steffen},
  journal = {arXiv preprint arXiv:2602.23993},
  year    = {2026}
}
```"""


def test_rewrite_card_matches_the_whole_text(gradiend, tmp_path):
    base, tokenizer = tiny_model("bert")
    save_rewritten(
        base, tokenizer, tmp_path, gradiend=gradiend, decoder_report=decoder_report(), model_id="me/bert-she"
    )
    text = (tmp_path / "README.md").read_text()
    assert card_pattern(REWRITE_CARD).fullmatch(text), text
    assert_no_empty_headings(text)


def test_a_pruned_gradiend_says_how_much_it_keeps(tmp_path):
    from gradiend_hf.pruning import post_prune

    base, _ = tiny_model("bert")
    pruned = post_prune(GradiendModel.from_base_model(base, feature_classes=["M", "F"]), 0.01)
    pruned.save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    n = pruned.config.num_base_parameters
    assert f"| Pruning | keeps {n:,} of 119,392 entries (method `post`, k `0.01`, part `decoder-weight`) |" in text
    assert f"| GRADIEND parameters | {pruned.num_parameters():,} |" in text


def test_without_a_recorded_base_model_the_quick_start_says_so(gradiend):
    config = gradiend.config.__class__.from_dict(gradiend.config.to_dict())
    config.base_model_name_or_path = None
    text = str(build_gradiend_card(config, "me/g"))
    assert "does not record its base model" in text
    assert "load_base_model(" not in text and "gradiend-hf app" not in text and "rewrite(" not in text
    assert_no_empty_headings(text)
