"""A Gradio app to try a GRADIEND: type a sentence, see its feature values and how a rewrite changes the model.

```python
from gradiend_hf.app import build_demo

build_demo("user/my-gradiend").launch()
```

What the app shows for a sentence with a blank (`[MASK]`; for a causal LM the text before it, or a plain prefix):

- **Feature values.** The encoder reads the gradient of the language-modelling loss for filling the blank with a word
  (`config.source` says which gradient: the word's own loss, or for `"diff"` the loss difference to the other class's
  word). The app encodes that gradient for the first word of each class and for the base model's own top prediction,
  so you see whether the encoder separates the classes in this context (≈ ±1 for the class words, ≈ 0 for a neutral
  word).
- **Predictions** of the base model and of the rewritten model `θ + lr · u(ff)` at the blank (top-k tokens), and the
  probability of each class's words there.

The rewrite is applied to the one loaded base model in place and reverted exactly after each request
([`RewriteSession`]); requests are serialised with a lock, because they share that model. Gradio is an optional
dependency (`pip install "gradiend-hf[app]"`); the logic lives in [`GradiendDemo`], whose handlers are plain
functions.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence

import torch

from .base_models import load_base_model
from .benchmark_card import benchmark_markdown
from .card_utils import hub_id
from .data import builtin_info, list_builtin
from .errors import GradiendError
from .evaluation.metrics import EvaluationError
from .evaluation.prefix_cache import PrefixForLastInput
from .evaluation.probabilities import ClassProbabilityScorer
from .gradients import encode_rows
from .modeling_gradiend import GradiendModel
from .objectives import MASK, ObjectiveError, gradiend_objective
from .rewrite import RewriteSession


DEFAULT_MAX_CHARS = 500
DEFAULT_TOP_K = 5
# Without a recorded rewrite, the default learning rate makes the update at feature factor ±1 about this share of the
# covered weights' norm: large enough to move the class probabilities, small enough to keep the model fluent.
DEFAULT_RELATIVE_UPDATE = 0.05
FEATURE_FACTOR_RANGE = (-2.0, 2.0)
APP_INSTALL_HINT = 'The GRADIEND app needs Gradio: pip install "gradiend-hf[app]"'

FEATURE_HEADERS = ["Gradient of", "Class", "Expected", "Encoding"]
CLASS_HEADERS = ["Class", "Words", "Base model", "Rewritten", "Change"]
TOP_HEADERS = ["Token", "Probability"]
# The last sentence's hidden states below the first covered layer, kept between requests: at most this much.
APP_PREFIX_BYTES = 64 * 2**20


class DemoInputError(GradiendError):
    """Bad input to the app (no blank, empty or too long text, bad numbers); the message says how to fix it."""


def resolve_class_words(config, class_words: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """The words of each feature class: `class_words` if given, else `config.class_words` (recorded by
    [`gradiend_hf.model_card.write_gradiend_card`]), else those of the built-in dataset with the same classes.

    Raises:
        ValueError: when none of these names words for both classes.
    """
    classes, _ = config.classes_and_positive()
    for candidate in (class_words, config.class_words, _builtin_class_words(classes)):
        if candidate and all(candidate.get(name) for name in classes):
            return {name: [str(word) for word in candidate[name]] for name in classes}
    raise GradiendError(
        f"The GRADIEND does not record the words of its classes {classes}; pass them, e.g. "
        f'`class_words={{"{classes[0]}": ["he"], "{classes[1]}": ["she"]}}` '
        f'(`--classes \'{{"{classes[0]}": [...], "{classes[1]}": [...]}}\'` on the command line).'
    )


def _builtin_class_words(classes: list[str]) -> dict[str, list[str]] | None:
    for name in list_builtin():
        info = builtin_info(name)
        if info.get("kind") == "feature" and set(info.get("classes") or {}) == set(classes):
            return info["classes"]
    return None


def suggest_learning_rate(gradiend, base_model, feature_factor: float) -> float:
    """A learning rate whose update `lr · u(feature_factor)` has about `DEFAULT_RELATIVE_UPDATE` of the norm of the
    covered base weights, rounded down to 1, 2 or 5 times a power of ten."""
    update_sq, weight_sq = 0.0, 0.0
    for name, delta in gradiend.iter_update(feature_factor, 1.0):
        update_sq += float(delta.double().pow(2).sum())
        weight_sq += float(base_model.get_parameter(name).detach().double().pow(2).sum())
    if update_sq == 0 or weight_sq == 0 or not math.isfinite(update_sq):
        return 1.0
    target = DEFAULT_RELATIVE_UPDATE * math.sqrt(weight_sq / update_sq)
    exponent = math.floor(math.log10(target))
    mantissa = max(m for m in (1, 2, 5, 10) if m * 10**exponent <= target * (1 + 1e-9))
    return float(f"{mantissa * 10**exponent:.3g}")


class GradiendDemo:
    """The app's logic, without Gradio: parse a sentence, encode it, predict with the base and the rewritten model.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND.
        base_model (`PreTrainedModel`): Its base model (rewritten in place during a request, then restored exactly).
        tokenizer: The base model's fast tokenizer.
        class_words (`dict`, *optional*): Class → words; see [`resolve_class_words`].
        max_chars (`int`, *optional*, defaults to 500): Longest accepted input.
        top_k (`int`, *optional*, defaults to 5): Predictions shown per model.
    """

    def __init__(
        self,
        gradiend,
        base_model,
        tokenizer,
        class_words: Mapping[str, Sequence[str]] | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        top_k: int = DEFAULT_TOP_K,
    ):
        gradiend.check_base_model(base_model)
        self.gradiend = gradiend.eval()
        self.base_model = base_model.eval()
        self.tokenizer = tokenizer
        self.config = gradiend.config
        self.classes, self.positive_class = self.config.classes_and_positive()
        self.class_words = resolve_class_words(self.config, class_words)
        self.objective = gradiend_objective(self.config, base_model, tokenizer)
        self.is_causal = not self.objective.reads_right_context
        self.max_chars = int(max_chars)
        self.top_k = int(top_k)
        self.session = RewriteSession(base_model, gradiend)
        self._lock = threading.Lock()
        # The sentence's states below the first covered layer, kept from one request to the next: moving the sliders
        # runs only the covered layers again (same predictions). Another sentence starts a new record.
        self._frozen_prefix = PrefixForLastInput(base_model, gradiend.param_names, APP_PREFIX_BYTES)
        self.strengthen = {name: self.config.feature_factor_for(name) for name in self.classes}

        selected = self.config.selected_rewrite
        if selected is not None and selected.learning_rate is not None:
            self.learning_rate = float(selected.learning_rate)
            self.feature_factor = float(selected.feature_factor or 0.0)
            target = selected.target_class
            self.learning_rate_note = "the rewrite chosen by the decoder evaluation" + (
                f" ({'strengthens' if selected.strengthen else 'weakens'} `{target}`)" if target else ""
            )
        else:
            self.feature_factor = 0.0
            self.learning_rate = suggest_learning_rate(gradiend, base_model, self.strengthen[self.classes[0]])
            self.learning_rate_note = (
                f"no rewrite recorded with this GRADIEND; the default makes the update about "
                f"{DEFAULT_RELATIVE_UPDATE:.0%} of the covered weights"
            )

    # ------------------------------------------------------------------ input

    def parse(self, text: str | None) -> str:
        """The row text the objective reads: one `[MASK]` (masked LM) or text ending in `[MASK]` (causal LM).

        Raises:
            DemoInputError: for empty or too long text, a missing or repeated blank, or no text before it.
        """
        text = (text or "").strip()
        if not text:
            raise DemoInputError(f"Type a sentence with {MASK} where a word of {self._class_hint()} would go.")
        if len(text) > self.max_chars:
            raise DemoInputError(f"The text has {len(text)} characters; the limit is {self.max_chars}. Shorten it.")
        mask_token = getattr(self.tokenizer, "mask_token", None)
        if mask_token and mask_token != MASK:
            text = text.replace(mask_token, MASK)  # accept the model's own mask token too, e.g. <mask>
        count = text.count(MASK)
        if count > 1:
            raise DemoInputError(f"Use exactly one {MASK}; the text has {count}.")
        try:
            masked = self.objective.row_from_text(text)
        except ObjectiveError as error:
            raise DemoInputError(str(error)) from None
        try:
            self.objective.prepare([masked], [self._first_word(self.classes[0])])
        except ObjectiveError as error:
            raise DemoInputError(f"This text does not work with the base model's tokenizer: {error}") from None
        return masked

    @staticmethod
    def check_numbers(feature_factor, learning_rate) -> tuple[float, float]:
        """Validated `(feature_factor, learning_rate)`."""
        try:
            ff, lr = float(feature_factor), float(learning_rate)
        except (TypeError, ValueError):
            raise DemoInputError("The feature factor and the learning rate must be numbers.") from None
        if not (math.isfinite(ff) and math.isfinite(lr)):
            raise DemoInputError("The feature factor and the learning rate must be finite numbers.")
        if lr < 0:
            raise DemoInputError(
                "The learning rate must be 0 or more; the sign of the feature factor chooses the direction."
            )
        return ff, lr

    def _first_word(self, name: str) -> str:
        return self.class_words[name][0]

    def _class_hint(self) -> str:
        return " or ".join(f"{name} ({', '.join(self.class_words[name][:3])})" for name in self.classes)

    # ------------------------------------------------------------------ computations (the model must be in its base state)

    def _anchor(self, masked: str) -> str:
        """The class word whose blank shows the model's prediction: the first that is one token there (the
        distribution at the blank is then that of one token), else the first class's first word."""
        for words in self.class_words.values():
            for word in words:
                try:
                    if len(self.objective.word_tokens([masked], [word])[0]) == 1:
                        return word
                except ObjectiveError:
                    continue
        return self._first_word(self.classes[0])

    def _measure(self, masked: str, scorer: ClassProbabilityScorer) -> tuple[torch.Tensor, dict[str, float]]:
        """The distribution at the blank (its first token) and the class probabilities, for the model as it is now."""
        batch = self.objective.prepare([masked], [self._anchor(masked)])
        device = next(self.base_model.parameters()).device
        with torch.no_grad():
            log_probs = self.objective.target_log_probs(self.base_model, batch.to(device))[0].float().cpu()
        return log_probs, {name: float(values[0]) for name, values in scorer(self.base_model).items()}

    def _scorer(self, masked: str) -> ClassProbabilityScorer:
        # The decoder evaluation's class probabilities: surface variants (masked LMs), multi-token words exactly.
        device = next(self.base_model.parameters()).device
        return ClassProbabilityScorer(
            self.objective, [masked], [self._anchor(masked)], self.class_words, device=device
        )

    def _top_k(self, log_probs: torch.Tensor) -> list[list[str]]:
        """`[token, probability]` rows of the `top_k` likeliest tokens (special tokens skipped)."""
        probs = log_probs.exp()
        probs[list(set(self.tokenizer.all_special_ids))] = 0.0
        top: dict[str, float] = {}
        for index in torch.topk(probs, min(4 * self.top_k, probs.numel())).indices.tolist():
            label = self.tokenizer.decode([index]).strip() or repr(self.tokenizer.convert_ids_to_tokens(index))
            if label not in top:  # " he" and "he" read the same; keep the likelier
                top[label] = float(probs[index])
            if len(top) == self.top_k:
                break
        return [[label, f"{p:.3g}"] for label, p in top.items()]

    def _feature_rows(self, masked: str, top_word: str | None) -> list[list[str]]:
        first = {name: self._first_word(name) for name in self.classes}
        rows = []
        for name in self.classes:
            other = first[self.classes[1] if name == self.classes[0] else self.classes[0]]
            factual, alternative = self.config.reading_words(first[name], other)
            expected = "+1" if name == self.positive_class else "-1"
            rows.append((first[name], name, expected, factual, alternative))
        words = {w.lower() for ws in self.class_words.values() for w in ws}
        if top_word and top_word.lower() not in words and top_word.isalpha():
            rows.append((top_word, "none (top prediction)", "0", top_word, top_word))
        usable = []
        for row in rows:
            try:
                self.objective.prepare([masked], [row[3]], [row[4]])
                usable.append(row)
            except ObjectiveError:
                continue  # e.g. the top prediction is a word piece that does not fill the blank on its own
        if not usable:
            return []
        batch = self.objective.prepare([masked] * len(usable), [r[3] for r in usable], [r[4] for r in usable])
        encodings = encode_rows(self.gradiend, self.base_model, self.objective, batch)[:, 0].tolist()
        return [[r[0], r[1], r[2], f"{h:+.3f}"] for r, h in zip(usable, encodings)]

    def _class_table(self, base: dict[str, float], rewritten: dict[str, float]) -> list[list[str]]:
        rows = []
        for name in self.classes:
            before, after = base[name], rewritten[name]
            change = f"×{after / before:.3g}" if before > 0 else "–"
            words = ", ".join(self.class_words[name][:6]) + (" …" if len(self.class_words[name]) > 6 else "")
            rows.append([name, words, f"{before:.3g}", f"{after:.3g}", change])
        return rows

    def _rewritten(self, masked: str, scorer: ClassProbabilityScorer, base, ff: float, lr: float):
        if lr == 0:
            return base  # θ + 0 · u is the base model
        self.session.apply(ff, lr)
        try:
            return self._measure(masked, scorer)
        finally:
            self.session.restore()

    # ------------------------------------------------------------------ handlers (plain functions)

    def analyze(self, text: str, feature_factor: float, learning_rate: float):
        """Everything the app shows for a sentence.

        Returns:
            `tuple`: feature-value rows (`FEATURE_HEADERS`), base and rewritten top-k rows (`TOP_HEADERS`),
            class-probability rows (`CLASS_HEADERS`).
        """
        masked = self.parse(text)
        ff, lr = self.check_numbers(feature_factor, learning_rate)
        with self._lock, self._frozen_prefix(masked):
            scorer = self._scorer(masked)
            base = self._measure(masked, scorer)
            base_top = self._top_k(base[0])
            features = self._feature_rows(masked, base_top[0][0] if base_top else None)
            rewritten = self._rewritten(masked, scorer, base, ff, lr)
        return features, base_top, self._top_k(rewritten[0]), self._class_table(base[1], rewritten[1])

    def rewrite(self, text: str, feature_factor: float, learning_rate: float):
        """What changes with the feature factor and learning rate: rewritten top-k and class-probability rows."""
        masked = self.parse(text)
        ff, lr = self.check_numbers(feature_factor, learning_rate)
        with self._lock, self._frozen_prefix(masked):
            scorer = self._scorer(masked)
            base = self._measure(masked, scorer)
            rewritten = self._rewritten(masked, scorer, base, ff, lr)
        return self._top_k(rewritten[0]), self._class_table(base[1], rewritten[1])

    # ------------------------------------------------------------------ texts of the page

    def title(self) -> str:
        base = self.config.base_model_name_or_path or "a language model"
        return f"GRADIEND: {' vs '.join(self.classes)} in {base.rstrip('/').split('/')[-1]}"

    def description(self) -> str:
        blank = (
            f"Type a sentence with **{MASK}** where a word of a class would go."
            if not self.is_causal
            else f"Type the beginning of a sentence (or a sentence with **{MASK}**: the model reads the text before it)."
        )
        words = "; ".join(f"`{name}`: {', '.join(self.class_words[name][:6])}" for name in self.classes)
        direction = ", ".join(f"{self.strengthen[name]:+g} strengthens `{name}`" for name in self.classes)
        return (
            f"{blank} Classes: {words}.\n\n"
            f"**Feature values**: the encoder's reading of the gradient for filling the blank with a word (≈ +1 for "
            f"`{self.positive_class}`, ≈ -1 for the other class, ≈ 0 for a neutral word). "
            f"**Feature factor**: {direction}; the rewritten model is `θ + learning rate · u(feature factor)`."
        )


def build_demo(
    gradiend_id_or_path_or_model,
    base_model=None,
    tokenizer=None,
    examples: Sequence[str] | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    class_words: Mapping[str, Sequence[str]] | None = None,
    top_k: int = DEFAULT_TOP_K,
    benchmarks=None,
):
    """Builds the Gradio app of a GRADIEND.

    Args:
        gradiend_id_or_path_or_model (`str` or [`GradiendModel`]): Hub id or folder of a GRADIEND, or the model.
        base_model (`PreTrainedModel`, *optional*): Its base model; loaded with [`load_base_model`] when not given.
        tokenizer (*optional*): The base model's tokenizer (required with `base_model`).
        examples (`Sequence[str]`, *optional*): Example inputs; defaults to the sentences recorded in the config.
        max_chars (`int`, *optional*, defaults to 500): Longest accepted input.
        class_words (`dict`, *optional*): Class → words, when the GRADIEND does not record them.
        top_k (`int`, *optional*, defaults to 5): Predictions shown per model.
        benchmarks (*optional*): Bias benchmarks of the selected rewrite (reports of `evaluate_bias`, ideally
            `{"base": …, "rewritten": …}`, or the `benchmarks.json` of `gradiend-hf benchmark`), shown as a table.

    Returns:
        `gradio.Blocks`: launch it with `.launch()`. Its events are `/analyze`, `/rewrite`, `/load_example` and
        `/analyze_example`; the [`GradiendDemo`] behind it is `blocks.gradiend_demo`.
    """
    try:
        import gradio as gr  # noqa: PLC0415 (optional dependency)
    except ImportError as error:
        raise ImportError(APP_INSTALL_HINT) from error

    gradiend = gradiend_id_or_path_or_model
    if isinstance(gradiend, (str, os.PathLike)):
        name = os.fspath(gradiend)
        if not os.path.isdir(name) and hub_id(name) is None:
            raise GradiendError(f"{name!r} is neither a GRADIEND folder nor a Hub repo id.")
        gradiend = GradiendModel.from_pretrained(name)
    if base_model is None:
        base_model, tokenizer = load_base_model(gradiend)
    elif tokenizer is None:
        raise GradiendError("Pass the base model's `tokenizer` together with `base_model`.")
    benchmark_text = None if benchmarks is None else benchmark_markdown(benchmarks)  # a bad report fails first
    demo = GradiendDemo(gradiend, base_model, tokenizer, class_words=class_words, max_chars=max_chars, top_k=top_k)
    examples = list(examples if examples is not None else gradiend.config.examples or [])

    def ui(handler):
        # Gradio shows a gr.Error as a message (in the page and to API clients) instead of a generic failure.
        def run(*args):
            try:
                return handler(*args)
            except (DemoInputError, EvaluationError) as error:
                raise gr.Error(str(error)) from None

        run.__name__ = handler.__name__
        return run

    low, high = FEATURE_FACTOR_RANGE
    with gr.Blocks(title=demo.title()) as blocks:
        gr.Markdown(f"# {demo.title()}\n\n{demo.description()}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                text = gr.Textbox(
                    value=examples[0] if examples else None,
                    label="Sentence" if not demo.is_causal else "Text (the model continues it)",
                    placeholder=f"My friend said that {MASK} would come.",
                    lines=2,
                    max_length=max_chars,
                )
                run = gr.Button("Analyze", variant="primary")
                example_block = (
                    gr.Examples([[e] for e in examples], inputs=[text], api_name="load_example") if examples else None
                )
            with gr.Column(scale=2):
                feature_factor = gr.Slider(
                    low,
                    high,
                    value=demo.feature_factor,
                    step=0.1,
                    label="Feature factor",
                    info=", ".join(f"{demo.strengthen[name]:+g} strengthens {name}" for name in demo.classes),
                )
                learning_rate = gr.Number(
                    value=demo.learning_rate, minimum=0, label="Learning rate", info=demo.learning_rate_note
                )
        with gr.Row():
            features = gr.Dataframe(
                headers=FEATURE_HEADERS, label="Feature values (encoder)", interactive=False, elem_id="features"
            )
            classes = gr.Dataframe(
                headers=CLASS_HEADERS, label="Class probabilities at the blank", interactive=False, elem_id="classes"
            )
        with gr.Row():
            base_top = gr.Dataframe(
                headers=TOP_HEADERS, label="Base model: top predictions", interactive=False, elem_id="base-top"
            )
            rewritten_top = gr.Dataframe(
                headers=TOP_HEADERS,
                label="Rewritten model: top predictions",
                interactive=False,
                elem_id="rewritten-top",
            )
        if benchmark_text is not None:
            with gr.Accordion("Bias benchmarks of the selected rewrite", open=True):
                gr.Markdown(benchmark_text, elem_id="benchmarks")

        inputs = [text, feature_factor, learning_rate]
        everything = [features, base_top, rewritten_top, classes]
        gr.on([run.click, text.submit], ui(demo.analyze), inputs, everything, api_name="analyze")
        gr.on(
            [feature_factor.release, learning_rate.submit],
            ui(demo.rewrite),
            inputs,
            [rewritten_top, classes],
            api_name="rewrite",
            trigger_mode="always_last",
        )
        if example_block is not None:
            example_block.load_input_event.then(
                ui(demo.analyze), inputs, everything, api_name="analyze_example", api_visibility="undocumented"
            )
    blocks.gradiend_demo = demo
    return blocks
