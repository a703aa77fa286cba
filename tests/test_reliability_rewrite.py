"""Rewrites and exports refuse non-finite numbers and updates that break the model, leaving it unchanged; the app and
the data layer handle long or broken input with a clear message."""

import math
import os
import time

import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.app import GradiendDemo
from gradiend_hf.data import NotTextError, make_feature_dataset, split_sentences
from gradiend_hf.errors import GradiendError, NonFiniteError
from gradiend_hf.export import export_peft, export_steering
from gradiend_hf.export.report import ExportReport, ModuleReport, check_report_finite
from gradiend_hf.rewrite_io import save_rewritten

from .tiny_models import tiny_model


@pytest.fixture
def llama():
    model, tokenizer = tiny_model("llama")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["model.layers.1.mlp.*"], feature_classes=["M", "F"])
    return model, tokenizer, gradiend


def snapshot(model):
    return {name: value.clone() for name, value in model.state_dict().items()}


def assert_unchanged(model, before):
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize(
    "feature_factor, learning_rate, error, message",
    [
        (float("nan"), 0.1, NonFiniteError, "feature factor is nan"),
        (1.0, float("inf"), NonFiniteError, "learning rate is inf"),
        ([1.0, float("-inf")], 0.1, NonFiniteError, "feature factor is -inf"),
        ("one", 0.1, GradiendError, "feature factor must be a number, got 'one'"),
        (1.0, 1e30, NonFiniteError, "nan or infinite"),
    ],
)
@pytest.mark.parametrize("inplace", [True, False])
def test_bad_rewrites_are_refused_and_leave_the_model(feature_factor, learning_rate, error, message, inplace, llama):
    model, _, gradiend = llama
    if isinstance(feature_factor, list):
        gradiend = GradiendModel.from_base_model(model, params=["model.layers.1.mlp.*"], latent_dim=2)
    before = snapshot(model)
    with pytest.raises(error, match=message):
        gradiend.rewrite(model, feature_factor, learning_rate, inplace=inplace)
    assert_unchanged(model, before)


def test_save_rewritten_refuses_a_broken_model_and_keeps_the_previous_save(llama, tmp_path):
    model, tokenizer, gradiend = llama
    good = gradiend.rewrite(model, 1.0, 1e-3)
    save_rewritten(good, tokenizer, tmp_path / "r", gradiend=gradiend, feature_factor=1.0, learning_rate=1e-3)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    broken = gradiend.rewrite(model, 1.0, 1e-3)
    with torch.no_grad():
        broken.model.layers[1].mlp.down_proj.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="logits on a probe input"):
        save_rewritten(broken, tokenizer, tmp_path / "r", gradiend=gradiend)
    with pytest.raises(NonFiniteError, match="learning rate is nan"):
        save_rewritten(good, tokenizer, tmp_path / "r", feature_factor=1.0, learning_rate=float("nan"))
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("learning_rate", [1e30, float("inf")])
def test_exports_refuse_updates_that_break_the_model(learning_rate, llama, tmp_path):
    model, _, gradiend = llama
    before = snapshot(model)
    with pytest.raises(NonFiniteError):
        export_peft(gradiend, model, 1.0, learning_rate, tmp_path / "adapter")
    with pytest.raises(NonFiniteError):
        export_steering(gradiend, model, learning_rate, tmp_path / "steering")
    assert not (tmp_path / "adapter").exists() and not (tmp_path / "steering").exists()
    assert_unchanged(model, before)


def test_an_overflowing_delta_never_reports_zero_error():
    module = ModuleReport(module="m", kind="lora", parameters=["m.weight"], rank=1, delta_norm=math.nan)
    assert math.isnan(module.relative_error)
    report = ExportReport(save_directory="x", adapters={}, modules=[module], size_bytes=0, rank=1, learning_rate=1.0)
    assert math.isnan(report.relative_error)
    with pytest.raises(NonFiniteError, match="nan or infinite"):
        check_report_finite(report)


# --------------------------------------------------------------------------- the app and the data layer


def test_the_app_reads_the_longest_input_it_accepts_without_crashing(llama):
    model, tokenizer, gradiend = llama
    demo = GradiendDemo(gradiend, model, tokenizer, class_words={"M": ["he"], "F": ["she"]}, max_chars=4000)
    long_text = "The tall doctor said that " * 150 + "[MASK] would come."  # far beyond 128 positions
    assert len(long_text) <= demo.max_chars
    features, base_top, rewritten_top, classes = demo.analyze(long_text, 1.0, 0.01)
    assert len(classes) == 2 and base_top


def test_a_very_long_line_is_split_in_seconds():
    line = "He said that she would come home after the long day. " * 19000  # about 10^6 characters
    assert len(line) > 1_000_000
    start = time.perf_counter()
    sentences = split_sentences(line)
    assert len(sentences) == 19000
    assert time.perf_counter() - start < 60  # minutes before the chunking (pysbd is super-linear)
    run_on = "and then he said that she would come home " * 24000  # no sentence end at all
    start = time.perf_counter()
    assert split_sentences(run_on) == []
    assert time.perf_counter() - start < 10


def test_texts_that_are_not_strings_are_named():
    with pytest.raises(NotTextError, match="got int at position 1"):
        make_feature_dataset(["He came.", 7], {"M": ["he"], "F": ["she"]})
    assert isinstance(NotTextError("x"), TypeError)  # what callers caught before


def test_no_writer_uses_a_private_tmp_name(tmp_path):
    # Every writer goes through gradiend_hf.io: the old hand-written staging prefixes are gone from the package.
    package = os.path.join(os.path.dirname(__file__), "..", "gradiend_hf")
    for root, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py") and name != "io.py":
                text = open(os.path.join(root, name), encoding="utf-8").read()
                for pattern in (".gradiend-save-", ".gradiend-rewrite-", ".gradiend-export-", "mkstemp", '.tmp"'):
                    assert pattern not in text, f"{name} writes files itself ({pattern})"
