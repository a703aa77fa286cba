"""[`MLMHeadModel`]: the auxiliary MLM head of a frozen decoder-only model (a linear classifier over label words on
mean-pooled hidden states), with atomic saving and strict loading like every artefact of gradiend-hf.

The head never holds the decoder: it maps pooled hidden states `(reads, hidden)` to label logits. The objective
`causal_lm_mlm_head` (see `gradiend_hf/objectives/causal_lm_mlm_head.py`) runs the decoder, pools and calls it, so
GRADIEND gradients of the decoder's parameters flow through the head.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from ..artefacts import KIND_MLM_HEAD
from ..errors import GradiendLoadError, NonFiniteError
from ..io import atomic_folder
from ..loading import check_saved_folder, hub_errors, resolve_location, safetensors_only
from .card import build_mlm_head_card
from .configuration import MODEL_TYPE, MLMHeadConfig
from .hub import push_mlm_head


WHAT = "MLM head"


def pool_hidden_states(
    hidden_states: torch.Tensor,
    read_sequences: torch.Tensor,
    read_positions: torch.Tensor,
    attention_mask: torch.Tensor,
    pooling_length: int,
) -> torch.Tensor:
    """Mean of the hidden states at each read's position and the `pooling_length - 1` positions after it, over the
    real tokens among them (the text may end sooner; padding never counts).

    Args:
        hidden_states (`torch.Tensor` of shape `(sequences, length, hidden)`): The decoder's last hidden states.
        read_sequences, read_positions (`torch.LongTensor` of shape `(reads,)`): Each read's sequence and the
            position of its mask token.
        attention_mask (`torch.LongTensor` of shape `(sequences, length)`): 1 for real tokens.
        pooling_length (`int`): Positions pooled from the mask token on.

    Returns:
        `torch.Tensor` of shape `(reads, hidden)`.
    """
    device = hidden_states.device
    length = hidden_states.shape[1]
    offsets = torch.arange(pooling_length, device=device)
    positions = read_positions.to(device)[:, None] + offsets[None, :]  # (reads, pooling_length)
    inside = positions < length
    positions = positions.clamp(max=length - 1)
    sequences = read_sequences.to(device)[:, None].expand_as(positions)
    weights = (attention_mask.to(device)[sequences, positions].bool() & inside).to(hidden_states.dtype)
    picked = hidden_states[sequences, positions]  # (reads, pooling_length, hidden)
    return (picked * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)


class MLMHeadPreTrainedModel(PreTrainedModel):
    config_class = MLMHeadConfig
    base_model_prefix = "mlm_head"
    main_input_name = "pooled"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """The reference's initialisation: weights N(0, 0.02), bias 0 (loaded tensors stay untouched)."""
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)


class MLMHeadModel(MLMHeadPreTrainedModel):
    r"""
    A linear classifier over label words on the mean-pooled last hidden states of a frozen decoder-only model at a
    `[MASK]` and the positions after it.

    Train one with [`train_mlm_head`], load one with [`MLMHeadModel.from_pretrained`]; a GRADIEND trained through it
    (objective `causal_lm_mlm_head`) records where it was saved.

    Example:

    ```python
    >>> head = MLMHeadModel(MLMHeadConfig(labels=["he", "she"], hidden_size=576, mask_token="<|endoftext|>"))
    >>> head(pooled=torch.randn(4, 576)).logits.shape
    torch.Size([4, 2])
    ```
    """

    def __init__(self, config: MLMHeadConfig):
        super().__init__(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    def forward(
        self,
        pooled: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hidden_states: torch.Tensor | None = None,
        read_sequences: torch.Tensor | None = None,
        read_positions: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Label logits of pooled hidden states (given, or pooled here from the decoder's hidden states at the mask
        positions), and their mean cross-entropy when `labels` are given.

        Args:
            pooled (`torch.Tensor` of shape `(reads, hidden)`, *optional*): Pooled hidden states.
            labels (`torch.LongTensor` of shape `(reads,)`, *optional*): Label indices.
            hidden_states, read_sequences, read_positions, attention_mask: Instead of `pooled`: the decoder's last
                hidden states and where the mask tokens are (see [`pool_hidden_states`]).

        Returns:
            `SequenceClassifierOutput` with `logits` `(reads, num_labels)` and `loss` (with `labels`).
        """
        if pooled is None:
            pooled = pool_hidden_states(
                hidden_states, read_sequences, read_positions, attention_mask, self.config.pooling_length
            )
        logits = self.classifier(pooled.to(self.classifier.weight.dtype))
        loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device)) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def pool(self, hidden_states, read_sequences, read_positions, attention_mask) -> torch.Tensor:
        """[`pool_hidden_states`] with this head's pooling length."""
        return pool_hidden_states(
            hidden_states, read_sequences, read_positions, attention_mask, self.config.pooling_length
        )

    def record(self) -> dict[str, Any]:
        """What a GRADIEND's config keeps of this head: where it is saved and what it predicts.

        Raises:
            [`GradiendLoadError`]: when the head was never saved or loaded (there is nothing to record).
        """
        location = self.config._name_or_path
        if not location:
            raise GradiendLoadError(
                "This MLM head was never saved, so a GRADIEND trained through it could not find it again. Save it "
                "first (`head.save_pretrained(folder)`; `train_mlm_head` saves into its `output_dir`)."
            )
        return {
            "name_or_path": location,
            "revision": getattr(self.config, "_commit_hash", None),
            "labels": self.labels,
            "pooling_length": self.config.pooling_length,
            "mask_token": self.config.mask_token,
        }

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs) -> MLMHeadModel:
        """`PreTrainedModel.from_pretrained` for MLM heads, refusing anything that is not a whole head save: a folder
        without `config.json`, with another model's config, left by an interrupted save, holding only pickled weights
        or tensors that do not match the config raises a [`GradiendLoadError`]. Weights come from safetensors only.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A folder written by [`save_pretrained`] or a Hub
                id.
            args, kwargs: As for `PreTrainedModel.from_pretrained` (`revision`, `token`, …).

        Returns:
            [`MLMHeadModel`]
        """
        name = resolve_location(pretrained_model_name_or_path, WHAT)
        kwargs = safetensors_only(kwargs)
        kwargs.pop("output_loading_info", None)
        _check_source(name, kwargs)
        with hub_errors(name, WHAT):
            try:
                model, info = super().from_pretrained(name, *args, output_loading_info=True, **kwargs)
            except SafetensorError as error:
                raise GradiendLoadError(f"The weights file of the MLM head {name!r} is corrupt ({error}).") from None
            except RuntimeError as error:
                if "ignore_mismatched_sizes" not in str(error):
                    raise
                raise GradiendLoadError(
                    f"The weights of the MLM head {name!r} do not match its config.json (another hidden size or "
                    "other labels): its config and weights come from different saves. Save the head again."
                ) from None
        problems = [f"{kind} {sorted(map(str, keys))}" for kind, keys in info.items() if keys and kind != "error_msgs"]
        if problems:
            raise GradiendLoadError(
                f"The weights of the MLM head {name!r} do not match its config.json ({'; '.join(problems)}). Save "
                "the head again."
            )
        model.config._name_or_path = name
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, overwrite: bool = False, **kwargs) -> str:
        """Saves config.json, model.safetensors and a model card (README.md) atomically (see
        [`gradiend_hf.io.atomic_folder`]), and remembers the folder as where the head lives.

        Args:
            save_directory (`str` or `os.PathLike`): The folder.
            overwrite (`bool`, *optional*, defaults to `False`): Replace another kind of artefact in the folder.
            args, kwargs: As for `PreTrainedModel.save_pretrained`; `model_id` names the card's quick start.

        Raises:
            [`GradiendSaveError`]: the folder is a file, not writable, or holds another kind of artefact.
            [`NonFiniteError`]: a weight is `nan` or infinite.
        """
        model_id = kwargs.pop("model_id", None)
        for name, tensor in self.state_dict().items():
            if not bool(torch.isfinite(tensor).all()):
                raise NonFiniteError(f"The MLM head's {name} has nan or infinite entries; train it again.")
        target = os.path.realpath(os.fspath(save_directory))
        with atomic_folder(save_directory, KIND_MLM_HEAD, overwrite=overwrite) as staging:
            super().save_pretrained(staging, *args, **kwargs)
            build_mlm_head_card(self.config, model_id or os.fspath(save_directory), staging)
        self.config._name_or_path = target
        return target

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Uploads the head (config, weights, card) to the Hub; see [`gradiend_hf.mlm_head.push_mlm_head`]."""
        return push_mlm_head(self, repo_id, **kwargs)


def _check_source(name: str, kwargs: dict) -> None:
    """Refuses, before any weight is read, a folder that is no whole MLM head save or a repo of another model."""
    if os.path.isdir(name):
        check_saved_folder(name, _check_model_type, WHAT)
        return
    hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
    with hub_errors(name, WHAT):
        config_dict, _ = MLMHeadConfig.get_config_dict(name, **hub_kwargs)
    _check_model_type(config_dict.get("model_type"), name)


def _check_model_type(model_type: str | None, name: str) -> None:
    if model_type != MODEL_TYPE:
        raise GradiendLoadError(
            f"{name!r} holds {f'a {model_type!r} model' if model_type else 'no model type'}, not an MLM head "
            f"(model_type {MODEL_TYPE!r}). Give the folder `train_mlm_head` or `MLMHeadModel.save_pretrained` wrote."
        )
