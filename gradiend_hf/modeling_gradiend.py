"""The GRADIEND model: an encoder from base-model gradients to a feature value and a decoder back to a weight update.

The weights are held as one tensor per selected base parameter (`nn.ParameterDict`s keyed by the escaped parameter
name), never as one flat vector of all `n` entries: checkpoints shard naturally, keys read like the base model's
parameter names, and `decode` returns updates directly in the base parameters' shapes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers.utils import logging

from .artefacts import KIND_GRADIEND
from .configuration_gradiend import GradiendConfig
from .errors import GradiendError, NonFiniteError
from .export import export_peft
from .gradiend_modules import (
    ACTIVATIONS,
    GradiendDecoder,
    GradiendEncoder,
    GradiendKeptPositions,
    GradiendOutput,
    GradiendPreTrainedModel,
    escape_parameter_name,
    squared_error,
)
from .hub import push_gradiend
from .importance import GradiendImportanceMixin
from .io import atomic_folder, atomic_write_json
from .loading import (
    check_gradiend_source,
    check_loading_info,
    gradiend_load_errors,
    resolve_location,
    safetensors_only,
)
from .model_card import build_gradiend_card
from .objectives import check_objective_fits, detect_objective
from .params import check_parameters_match, parameter_shapes, select_parameters
from .rewrite import rewrite
from .shard_groups import canonical_name, forward_by_group
from .sharding import all_finite


TRAINING_ARGS_NAME = "training_args.json"
UPDATE_PARTS = ("decoder", "decoder-weight", "decoder-bias", "decoder-sum", "encoder-weight")

logger = logging.get_logger(__name__)


def _expected_shapes(model_class, folder: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the config in `folder` asks for (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = model_class(GradiendConfig.from_pretrained(folder))
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


class GradiendModel(GradiendImportanceMixin, GradiendPreTrainedModel):
    r"""
    A GRADIEND for one feature of a base language model.

    Build an untrained one for a loaded base model with [`GradiendModel.from_base_model`], load a trained one with
    [`GradiendModel.from_pretrained`].

    Example:

    ```python
    >>> from transformers import AutoModelForMaskedLM
    >>> from gradiend_hf import GradiendModel
    >>> base = AutoModelForMaskedLM.from_pretrained("bert-base-cased")
    >>> gradiend = GradiendModel.from_base_model(base, params=["bert.encoder.layer.11.*"])
    >>> gradiend.num_parameters() == 3 * gradiend.config.num_base_parameters + 1
    True
    ```
    """

    def __init__(self, config: GradiendConfig):
        super().__init__(config)
        self.param_names = list(config.param_names)
        self.param_shapes = [tuple(shape) for shape in config.param_shapes]
        self.param_keys = [escape_parameter_name(name) for name in self.param_names]
        if len(set(self.param_keys)) != len(self.param_keys):
            raise GradiendError("Two selected parameter names escape to the same key; rename them or select fewer.")
        numels = [math.prod(shape) for shape in self.param_shapes]
        # A pruned GRADIEND has one input dimension per KEPT entry; updates are still scattered to full shapes.
        counts = list(config.kept_counts) if config.kept_counts is not None else numels
        self.encoder = GradiendEncoder(self.param_keys, counts, config.latent_dim)
        self.decoder = GradiendDecoder(self.param_keys, counts, config.latent_dim, config.bias_decoder)
        self.kept = GradiendKeptPositions(self.param_keys, counts, numels)
        self.post_init()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_base_model(
        cls,
        base_model: nn.Module,
        params: str | Sequence[str] | None = None,
        latent_dim: int = 1,
        dtype: torch.dtype | None = None,
        **config_kwargs: Any,
    ) -> GradiendModel:
        """Builds an untrained GRADIEND for a loaded base model.

        Args:
            base_model (`PreTrainedModel`):
                The masked or causal language model whose gradients the GRADIEND reads.
            params (`str` or `Sequence[str]`, *optional*):
                Parameter names or `*` patterns to cover (all matches of each); `None` covers the backbone.
            latent_dim (`int`, *optional*, defaults to 1):
                Number of feature values.
            dtype (`torch.dtype`, *optional*):
                dtype of the GRADIEND's weights; defaults to float32.
            config_kwargs:
                Further [`GradiendConfig`] fields (`source`, `target`, `feature_classes`, `activation_encoder`, …),
                among them `objective` (e.g. `"causal_lm_cloze"`; detected when not given) and `objective_options`
                (e.g. `{"right_window": 2}`), which training and every evaluation of the GRADIEND then use.

        Returns:
            [`GradiendModel`]: A freshly initialised GRADIEND on the CPU.
        """
        names = select_parameters(base_model, params)
        base_config = getattr(base_model, "config", None)
        config_kwargs.setdefault("base_model_name_or_path", getattr(base_config, "_name_or_path", None) or None)
        if config_kwargs.get("objective") is None:
            config_kwargs["objective"] = detect_objective(base_model)
        else:
            check_objective_fits(config_kwargs["objective"], base_model)  # e.g. causal_lm_cloze on a causal LM only
        if base_config is not None:
            config_kwargs.setdefault(
                "base_model_config",
                {"model_type": base_config.model_type, "architectures": [type(base_model).__name__]},
            )
        config = GradiendConfig(
            param_names=names,
            param_shapes=parameter_shapes(base_model, names),
            latent_dim=latent_dim,
            **config_kwargs,
        )
        model = cls(config)
        if dtype is not None:
            model = model.to(dtype)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.from_pretrained` for GRADIENDs, refusing anything that is not a whole GRADIEND.

        A folder (or Hub repo) without `config.json`, with another model's config (e.g. the base model's), left by an
        interrupted save, holding only pickled weights (`pytorch_model.bin`: unpickling can run code), or whose
        tensors do not match its config (missing, extra or mis-shaped) raises a [`GradiendLoadError`] naming the
        problem, instead of returning a partly random GRADIEND. Weights are read from safetensors only.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A folder written by [`save_pretrained`] or a Hub
                id.
            args, kwargs: As for `PreTrainedModel.from_pretrained` (`revision`, `token`, `dtype`, …).
                `output_loading_info=True` returns `(model, loading_info)` as there.

        Returns:
            [`GradiendModel`]
        """
        name = resolve_location(pretrained_model_name_or_path, "GRADIEND")
        kwargs = safetensors_only(kwargs)
        want_info = kwargs.pop("output_loading_info", False)
        check_gradiend_source(name, GradiendConfig, kwargs)
        with gradiend_load_errors(name, lambda: _expected_shapes(cls, name)):
            model, info = super().from_pretrained(name, *args, output_loading_info=True, **kwargs)
        check_loading_info(info, name)
        model.check_kept_positions()
        return (model, info) if want_info else model

    def check_base_model(self, base_model: nn.Module) -> None:
        """Raises a clear error if `base_model` lacks a covered parameter or has it with another shape."""
        check_parameters_match(base_model, self.param_names, self.param_shapes)

    # ------------------------------------------------------------------ encoder / decoder

    def _activation(self, which: str):
        return ACTIVATIONS[self.config.activation_encoder if which == "encoder" else self.config.activation_decoder]

    def flat_gradient(self, gradients: Mapping[str, torch.Tensor], name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The encoder's input from base parameter `name`: its gradient as `(batch, kept entries)`."""
        if name not in gradients:
            raise KeyError(f"The gradients lack base parameter {name!r}, which this GRADIEND covers.")
        grad = gradients[name]
        if tuple(grad.shape) == shape:
            return self.gather_kept(name, grad.reshape(1, -1))
        if tuple(grad.shape[1:]) == shape:
            return self.gather_kept(name, grad.reshape(grad.shape[0], -1))
        raise GradiendError(
            f"Gradient of {name!r} has shape {tuple(grad.shape)}; expected {shape} or (batch, *{shape})."
        )

    def encode(self, gradients: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Encodes gradients into feature values.

        Args:
            gradients (`Mapping[str, torch.Tensor]`):
                Base parameter name → gradient, in the parameter's shape or with a leading batch dimension.

        Returns:
            `torch.Tensor`: `(latent_dim,)` for one gradient, `(batch, latent_dim)` for a batch.
        """
        pre = None
        batched = False
        for name, key, shape in zip(self.param_names, self.param_keys, self.param_shapes):
            flat = self.flat_gradient(gradients, name, shape)
            batched = batched or gradients[name].dim() > len(shape)
            weight = self.encoder.weight[key]
            term = flat.to(device=weight.device, dtype=weight.dtype) @ weight.T
            pre = term if pre is None else pre + term
        h = self._activation("encoder")(pre + self.encoder.bias)
        return h if batched else h[0]

    def decode(self, encodings: torch.Tensor | float | Sequence[float]) -> dict[str, torch.Tensor]:
        """Decodes feature values into per-parameter weight updates.

        Args:
            encodings (`torch.Tensor`, `float` or sequence of floats):
                `(latent_dim,)` or `(batch, latent_dim)` feature values; a float is allowed when `latent_dim == 1`.

        Returns:
            `dict[str, torch.Tensor]`: base parameter name → update in the parameter's shape (with a leading batch
            dimension when `encodings` is batched).
        """
        h, batched = self._as_latent(encodings)
        out = {}
        for name, key, shape in zip(self.param_names, self.param_keys, self.param_shapes):
            value = self.scatter_kept(name, self._decode_one(key, h))
            out[name] = value.reshape(value.shape[0], *shape) if batched else value.reshape(shape)
        return out

    def _decode_one(self, key: str, h: torch.Tensor) -> torch.Tensor:
        """`act(h · W_pᵀ + b_p)` for one parameter, shape `(batch, numel_p)`."""
        weight = self.decoder.weight[key]
        h = h.to(device=weight.device, dtype=weight.dtype)
        bias = self.decoder.bias[key] if self.decoder.bias is not None else None
        if self.config.latent_dim == 1:
            # An elementwise multiply-add: a (1 × 1) · (1 × numel) matmul is several times slower on (numel, 1) weights.
            value = torch.addcmul(bias, h, weight[:, 0]) if bias is not None else h * weight[:, 0]
        else:
            value = torch.addmm(bias, h, weight.T) if bias is not None else h @ weight.T
        return self._activation("decoder")(value)

    def _as_latent(self, encodings) -> tuple[torch.Tensor, bool]:
        h = torch.as_tensor(encodings, dtype=self.dtype, device=self.encoder.bias.device)
        if h.dim() == 0:
            h = h.reshape(1)
        if h.shape[-1] != self.config.latent_dim:
            raise GradiendError(
                f"Expected {self.config.latent_dim} feature value(s) per example, got shape {tuple(h.shape)}."
            )
        batched = h.dim() == 2
        return (h if batched else h.reshape(1, -1)), batched

    def forward(
        self,
        source_gradients: Mapping[str, torch.Tensor],
        target_gradients: Mapping[str, torch.Tensor] | None = None,
        return_dict: bool | None = None,
        overwrite_targets: bool = False,
        **kwargs: Any,
    ) -> GradiendOutput | tuple:
        """Encodes the source gradients and, given targets, returns the mean squared reconstruction error.

        Args:
            source_gradients (`Mapping[str, torch.Tensor]`): Gradients the encoder reads (see [`encode`]).
            target_gradients (`Mapping[str, torch.Tensor]`, *optional*): Gradients the decoder should reconstruct.
            return_dict (`bool`, *optional*): Return a [`GradiendOutput`] (default) or a tuple.
            overwrite_targets (`bool`, *optional*, defaults to `False`): Let the loss write its residuals over the
                target tensors (see [`reconstruction_loss`]); only for targets nothing else reads or shares.

        Returns:
            [`GradiendOutput`] with `loss` (mean over all `n` entries and the batch) and `encodings`.
        """
        if getattr(self, "shard_groups", None) is not None:
            # Sharded in several FSDP2 groups: each group's forward gathers only its own weights.
            encodings, loss = forward_by_group(self, source_gradients, target_gradients)
        else:
            encodings = self.encode(source_gradients)
            loss = None
            if target_gradients is not None:
                loss = self.reconstruction_loss(encodings, target_gradients, overwrite_targets=overwrite_targets)
        if return_dict is False:
            return (loss, encodings) if loss is not None else (encodings,)
        return GradiendOutput(loss=loss, encodings=encodings)

    def reconstruction_loss(
        self, encodings: torch.Tensor, target_gradients: Mapping[str, torch.Tensor], overwrite_targets: bool = False
    ) -> torch.Tensor:
        """Mean squared error between `decode(encodings)` and the targets, over all `n` entries and the batch.

        With the identity decoder activation (the default) each parameter's error goes through
        [`SquaredReconstruction`], which keeps one residual per entry instead of the several n-sized
        temporaries autograd would save, and reuses it as the decoder-bias gradient. With `overwrite_targets=True`
        it writes the residuals over the targets (the same loss and gradients, bit for bit, and n entries less
        memory; the targets' values are lost), which [`GradiendTrainer`] does with the gradients it computed itself.
        """
        h, batched = (encodings, True) if encodings.dim() == 2 else (encodings.reshape(1, -1), False)
        total = self.config.num_base_parameters * h.shape[0]
        fused = self.config.activation_decoder == "id" and self.decoder.bias is not None
        activation = self._activation("decoder")
        squared = None
        for name, key in zip(self.param_names, self.param_keys):
            weight = self.decoder.weight[key]
            bias = self.decoder.bias[key] if self.decoder.bias is not None else None
            target = self.reconstruction_target(name, target_gradients, h.shape[0])
            target = target.to(device=weight.device, dtype=weight.dtype)
            term = squared_error(h.to(weight.dtype), weight, bias, target, activation, fused, overwrite_targets)
            squared = term if squared is None else squared + term
        return squared / total

    def reconstruction_target(
        self, name: str, target_gradients: Mapping[str, torch.Tensor], batch: int
    ) -> torch.Tensor:
        """The `(batch, kept entries)` target of base parameter `name` (its kept entries, flattened)."""
        return self.gather_kept(name, target_gradients[name].reshape(batch, -1))

    # ------------------------------------------------------------------ updates and importance

    @torch.no_grad()
    def update(
        self, feature_factor: float | Sequence[float], learning_rate: float, part: str = "decoder"
    ) -> dict[str, torch.Tensor]:
        """The weight update `learning_rate · u` for the base model, in the base parameters' shapes.

        Args:
            feature_factor (`float` or sequence of floats):
                The feature value fed to the decoder (`part="decoder"`); ignored by the static parts.
            learning_rate (`float`):
                Scale of the update.
            part (`str`, *optional*, defaults to `"decoder"`):
                `"decoder"`: `act_dec(W_d · ff + b_d)`; `"decoder-weight"`: `W_d` (summed over latent dims);
                `"decoder-bias"`: `b_d`; `"decoder-sum"`: `W_d · 1 + b_d`; `"encoder-weight"`: `W_e` (summed).

        Returns:
            `dict[str, torch.Tensor]`: base parameter name → update.
        """
        return dict(self.iter_update(feature_factor, learning_rate, part))

    @torch.no_grad()
    def iter_update(self, feature_factor: float | Sequence[float], learning_rate: float, part: str = "decoder"):
        """Yields `(name, update)` one base parameter at a time, so applying an update never holds all `n` entries.

        Same arguments as [`update`].
        """
        if part not in UPDATE_PARTS:
            raise GradiendError(f"Unknown update part {part!r}; choose one of {', '.join(UPDATE_PARTS)}.")
        h = self._as_latent(feature_factor)[0] if part == "decoder" else None
        for name, key, shape in zip(self.param_names, self.param_keys, self.param_shapes):
            value = self._decode_one(key, h)[0] if part == "decoder" else self._static_part(part, key)
            yield name, self.scatter_kept(name, value.mul_(learning_rate)).reshape(shape)

    def rewrite(self, base_model: nn.Module, feature_factor, learning_rate: float, inplace=False, part="decoder"):
        """Returns `base_model` rewritten with `learning_rate · u(feature_factor)`; see [`gradiend_hf.rewrite.rewrite`]."""
        return rewrite(self, base_model, feature_factor, learning_rate, inplace=inplace, part=part)

    def export_peft(
        self, base_model: nn.Module, feature_factor, learning_rate: float, save_directory, rank="full", **kwargs
    ):
        """Writes the rewrite `learning_rate · u(feature_factor)` as a PEFT LoRA adapter; see
        [`gradiend_hf.export.export_peft`]. Returns an [`ExportReport`]."""
        return export_peft(self, base_model, feature_factor, learning_rate, save_directory, rank=rank, **kwargs)

    @torch.no_grad()
    def invert_encoding(self, update_config: bool = True) -> None:
        """Flips the sign of the feature: negates the encoder (W and b) and the decoder weight.

        The decoder bias is kept, so the reconstruction of every gradient is unchanged (the reference package also
        flips the bias, which changes the reconstruction by `2 · b_d`).

        Args:
            update_config (`bool`, *optional*, defaults to `True`):
                Swap `config.positive_class` too, so the GRADIEND means the same as before with the opposite sign.
                Sign normalisation during training passes `False`: there the flip makes the configured positive
                class encode to +1.
        """
        for weight in self.encoder.weight.values():
            weight.neg_()
        self.encoder.bias.neg_()
        for weight in self.decoder.weight.values():
            weight.neg_()
        if update_config and self.config.feature_classes and self.config.positive_class is not None:
            classes = self.config.feature_classes
            self.config.positive_class = classes[1] if self.config.positive_class == classes[0] else classes[0]

    # ------------------------------------------------------------------ saving

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *args,
        max_shard_size: str | int = "5GB",
        overwrite: bool = False,
        json_files: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        """Saves config.json, sharded safetensors (see `PreTrainedModel.save_pretrained`) and a model card
        (README.md, from the config alone; see [`gradiend_hf.model_card.write_gradiend_card`] for the full card),
        atomically.

        The folder is written through [`gradiend_hf.io.atomic_folder`]: a crash at any moment leaves the previous
        save or this one, whole; files of an earlier save that this one does not write (a shard) are removed, and any
        other file in the folder is kept. `max_shard_size` defaults to 5GB (Hub-friendly; transformers 5 defaults to
        50GB).

        Args:
            save_directory (`str` or `os.PathLike`): The folder.
            max_shard_size (`str` or `int`, *optional*, defaults to `"5GB"`): Largest weight file.
            overwrite (`bool`, *optional*, defaults to `False`): Replace another kind of model saved in the folder
                (e.g. a base model or a rewritten model), which is refused otherwise.
            json_files (`Mapping[str, Any]`, *optional*): Further JSON files written in the same atomic save, file
                name → value (the [`GradiendTrainer`] writes its arguments as `training_args.json`, never a pickle).
            args, kwargs: As for `PreTrainedModel.save_pretrained`.

        Raises:
            [`GradiendSaveError`]: the folder is a file, not writable, or holds another kind of model.
            [`NonFiniteError`]: a weight is `nan` or infinite (a broken GRADIEND is never saved).
        """
        if kwargs.get("is_main_process") is False:
            return None
        if kwargs.get("push_to_hub"):
            return super().save_pretrained(save_directory, *args, max_shard_size=max_shard_size, **kwargs)
        self.check_finite()
        with atomic_folder(save_directory, KIND_GRADIEND, overwrite=overwrite) as staging:
            super().save_pretrained(staging, *args, max_shard_size=max_shard_size, **kwargs)
            target = os.path.realpath(os.fspath(save_directory))
            self.create_model_card(model_id=os.fspath(save_directory)).save(os.path.join(staging, "README.md"))
            for name, value in (json_files or {}).items():
                atomic_write_json(os.path.join(staging, name), value, sort_keys=True)
        return target

    @torch.no_grad()
    def check_finite(self, step: int | None = None) -> None:
        """Raises a [`NonFiniteError`] naming the first tensor with a `nan` or infinite entry (a collective for a
        GRADIEND sharded over processes: each checks its shard and all agree)."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not tensor.is_meta and not all_finite(tensor):
                when = f" after step {step}" if step is not None else ""
                raise NonFiniteError(
                    f"The GRADIEND's {canonical_name(name)} has nan or infinite entries{when}: training diverged (a "
                    "learning rate too large, or non-finite gradients). Lower the learning rate and train again."
                )

    def create_model_card(self, model_id: str | os.PathLike | None = None, **kwargs: Any):
        """Renders this GRADIEND's model card (see [`gradiend_hf.model_card.build_gradiend_card`]).

        Args:
            model_id (`str`, *optional*): Hub id or folder the card's quick start loads the GRADIEND from; defaults
                to where the GRADIEND was loaded from.
            kwargs: `encoder_report`, `decoder_report`, `figures`, `dataset_name`, `dataset_sizes`, `training_args`,
                `benchmark_reports`.

        Returns:
            `huggingface_hub.ModelCard`
        """
        model_id = os.fspath(model_id) if model_id is not None else (self.config._name_or_path or "path/to/gradiend")
        return build_gradiend_card(self.config, model_id, dtype=str(self.dtype).replace("torch.", ""), **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Uploads the GRADIEND (weights, config, model card, figures) to the Hub; see
        [`gradiend_hf.hub.push_gradiend`] for the arguments (`revision`, `private`, `token`, `commit_message`,
        `encoder_report`, `decoder_report`, `figures`, …). Returns the commit URL."""
        return push_gradiend(self, repo_id, **kwargs)
