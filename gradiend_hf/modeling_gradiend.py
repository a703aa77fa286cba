"""The GRADIEND model: an encoder from base-model gradients to a feature value and a decoder back to a weight update.

The weights are held as one tensor per selected base parameter (`nn.ParameterDict`s keyed by the escaped parameter
name), never as one flat vector of all `n` entries: checkpoints shard naturally, keys read like the base model's
parameter names, and `decode` returns updates directly in the base parameters' shapes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_gradiend import GradiendConfig
from .errors import GradiendError, GradiendLoadError, NonFiniteError
from .io import KIND_GRADIEND, atomic_folder, atomic_write_json
from .locations import check_gradiend_folder, check_model_type, hub_errors, resolve_location
from .params import check_parameters_match, parameter_shapes, select_parameters


try:  # transformers>=5 skips tensors that were loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - transformers 4.x
    from torch.nn import init

TRAINING_ARGS_NAME = "training_args.json"
IMPORTANCE_PARTS = ("decoder-weight", "encoder-weight", "decoder-bias", "decoder-sum")
UPDATE_PARTS = ("decoder", "decoder-weight", "decoder-bias", "decoder-sum", "encoder-weight")

_ACTIVATIONS = {
    "tanh": torch.tanh,
    "id": lambda x: x,
    "relu": F.relu,
    "leakyrelu": F.leaky_relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "hardtanh": F.hardtanh,
}


def escape_parameter_name(name: str) -> str:
    """Turns a base parameter name into a `ParameterDict` key (keys may not contain dots)."""
    return name.replace(".", "__")


def _mismatched_shapes(model_class, folder: str) -> list[str]:
    """`"key: file (a, b), config (c, d)"` for every tensor of a local checkpoint whose shape the config does not give."""
    config = GradiendConfig.from_pretrained(folder)
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in model_class(config).state_dict().items()}
    found = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("model") and name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), framework="pt") as file:
                for key in file.keys():
                    shape = tuple(file.get_slice(key).get_shape())
                    if key in expected and expected[key] != shape:
                        found.append(f"{key}: file {shape}, config {expected[key]}")
    return found


@dataclass
class GradiendOutput(ModelOutput):
    """Output of [`GradiendModel.forward`].

    Args:
        loss (`torch.FloatTensor`, *optional*):
            Mean squared reconstruction error over all `n` entries (and the batch), when targets were given.
        encodings (`torch.FloatTensor` of shape `(batch, latent_dim)` or `(latent_dim,)`):
            The feature values of the source gradients.
    """

    loss: torch.FloatTensor | None = None
    encodings: torch.FloatTensor | None = None


class GradiendEncoder(nn.Module):
    """`h = act(Σ_p W_p · g_p + b)`: one `(latent_dim, numel_p)` weight per base parameter `p`."""

    def __init__(self, keys: Sequence[str], numels: Sequence[int], latent_dim: int):
        super().__init__()
        self.weight = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(latent_dim, numel)) for key, numel in zip(keys, numels)}
        )
        self.bias = nn.Parameter(torch.empty(latent_dim))


class GradiendDecoder(nn.Module):
    """`u_p(h) = act(W_p · h + b_p)`: one `(numel_p, latent_dim)` weight and `(numel_p,)` bias per parameter."""

    def __init__(self, keys: Sequence[str], numels: Sequence[int], latent_dim: int, bias: bool):
        super().__init__()
        self.weight = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(numel, latent_dim)) for key, numel in zip(keys, numels)}
        )
        self.bias = (
            nn.ParameterDict({key: nn.Parameter(torch.empty(numel)) for key, numel in zip(keys, numels)})
            if bias
            else None
        )


class GradiendKeptPositions(nn.Module):
    """The flat base-parameter positions a pruned GRADIEND keeps: one sorted int64 buffer per partially kept parameter.

    Only parameters that keep fewer than all of their entries get a buffer (state-dict key `kept.<key>`, saved in the
    safetensors file next to the weights); a parameter without one is covered in full.
    """

    def __init__(self, keys: Sequence[str], counts: Sequence[int], numels: Sequence[int]):
        super().__init__()
        for key, count, numel in zip(keys, counts, numels):
            if count < numel:
                self.register_buffer(key, torch.zeros(count, dtype=torch.long))

    def get(self, key: str) -> torch.Tensor | None:
        return self._buffers.get(key)


class _SquaredReconstructionError(torch.autograd.Function):
    """`Σ (h · Wᵀ + b − t)²` for one parameter chunk, with a hand-written backward.

    The residual `r = h · Wᵀ + b − t` is the only saved tensor; the backward pass turns it in place into `2r`, which
    is the bias gradient (summed over the batch) and gives `∂/∂W = 2rᵀh` and `∂/∂h = 2rW`.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, target):
        residual = torch.addmm(bias, h, weight.T).sub_(target)
        ctx.save_for_backward(h, weight, residual)
        return residual.pow(2).sum()

    @staticmethod
    def backward(ctx, grad_output):
        h, weight, residual = ctx.saved_tensors
        scaled = residual.mul_(2 * grad_output)
        grad_h = scaled @ weight if ctx.needs_input_grad[0] else None
        grad_weight = scaled.T @ h if ctx.needs_input_grad[1] else None
        grad_bias = (scaled[0] if scaled.shape[0] == 1 else scaled.sum(0)) if ctx.needs_input_grad[2] else None
        return grad_h, grad_weight, grad_bias, None


class GradiendPreTrainedModel(PreTrainedModel):
    config_class = GradiendConfig
    base_model_prefix = "gradiend"
    main_input_name = "source_gradients"
    _no_split_modules = []
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialises like the reference: the encoder as `nn.Linear(n, latent_dim)` over the TOTAL n, the decoder
        uniformly in ±(largest encoder weight).

        Works on the `ParameterDict`s themselves: transformers skips a custom module whose direct parameters are all
        loaded, and the encoder/decoder modules hold theirs one level down. Uses `transformers.initialization`, which
        leaves tensors loaded from a checkpoint untouched. Children are initialised before parents and the encoder
        before the decoder, so the decoder's bound is read from an initialised encoder.
        """
        if isinstance(module, GradiendKeptPositions):
            # Kept positions come from pruning or from the checkpoint; -1 marks any that came from neither, so
            # `check_kept_positions` can reject a checkpoint that lacks them instead of reading garbage.
            for buffer in module.buffers(recurse=False):
                init.constant_(buffer, -1)
            return
        encoder, decoder = getattr(self, "encoder", None), getattr(self, "decoder", None)
        if encoder is None or decoder is None:
            return
        # nn.Linear's default (kaiming_uniform with a=sqrt(5)) gives a bound of 1/sqrt(fan_in) for W and b.
        bound = 1.0 / math.sqrt(max(self.config.num_base_parameters, 1))
        if module is encoder.weight:
            for weight in module.values():
                init.uniform_(weight, -bound, bound)
        elif module is encoder:
            init.uniform_(module.bias, -bound, bound)
        elif module is decoder.weight or (decoder.bias is not None and module is decoder.bias):
            encoder_weights = list(encoder.weight.values())
            if not encoder_weights or any(w.is_meta for w in encoder_weights):
                return
            limit = max(float(w.max()) for w in encoder_weights)
            for value in module.values():
                init.uniform_(value, -limit, limit)


class GradiendModel(GradiendPreTrainedModel):
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
                Further [`GradiendConfig`] fields (`source`, `target`, `feature_classes`, `activation_encoder`, …).

        Returns:
            [`GradiendModel`]: A freshly initialised GRADIEND on the CPU.
        """
        from .objectives import detect_objective

        names = select_parameters(base_model, params)
        base_config = getattr(base_model, "config", None)
        config_kwargs.setdefault("base_model_name_or_path", getattr(base_config, "_name_or_path", None) or None)
        config_kwargs.setdefault("objective", detect_objective(base_model))
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
        if kwargs.get("use_safetensors") is False:
            raise GradiendLoadError("GRADIENDs load from safetensors only; `use_safetensors=False` is not supported.")
        kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        if os.path.isdir(name):
            check_gradiend_folder(name)
        else:
            with hub_errors(name, "GRADIEND"):
                config_dict, _ = GradiendConfig.get_config_dict(name, **hub_kwargs)
            check_model_type(config_dict.get("model_type"), name)
        with hub_errors(name, "GRADIEND"):
            try:
                model, info = super().from_pretrained(name, *args, output_loading_info=True, **kwargs)
            except SafetensorError as error:
                raise GradiendLoadError(
                    f"A weights file of the GRADIEND {name!r} is corrupt or truncated ({error}); an interrupted copy "
                    "or download? Save or download it again."
                ) from None
            except RuntimeError as error:
                if "ignore_mismatched_sizes" not in str(error):
                    raise
                shapes = _mismatched_shapes(cls, name) if os.path.isdir(name) else []
                raise GradiendLoadError(
                    f"The weights of the GRADIEND {name!r} do not match its config.json (tensors of other shapes"
                    f"{': ' + '; '.join(shapes[:3]) if shapes else ''}): the checkpoint was edited, or its config and "
                    "weights come from different saves. Re-save the GRADIEND from a model that loads."
                ) from None
            except OSError as error:
                if "safetensors" in str(error) and not os.path.isdir(name):
                    raise GradiendLoadError(
                        f"The GRADIEND {name!r} has no safetensors weights (only pickled ones, which gradiend-hf "
                        "does not load because unpickling can run code). Re-save it with `save_pretrained`."
                    ) from error
                raise
        missing_kept = sorted(k for k in info.get("missing_keys") or () if str(k).startswith("kept."))
        if missing_kept:
            raise GradiendLoadError(
                f"The kept positions of the pruned GRADIEND {name!r} are missing or corrupt (the checkpoint lacks "
                f"{missing_kept[0]!r}). Re-save the pruned GRADIEND, or prune the full GRADIEND again."
            )
        problems = []
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            keys = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get(kind) or ())
            if keys:
                problems.append(f"{kind.replace('_keys', '')} tensors {keys[:3]}{' …' if len(keys) > 3 else ''}")
        if problems:
            raise GradiendLoadError(
                f"The weights of the GRADIEND {name!r} do not match its config.json ({'; '.join(problems)}): the "
                "checkpoint is incomplete, edited, or its config and weights come from different saves. Re-save "
                "the GRADIEND from a model that loads."
            )
        model.check_kept_positions()
        return (model, info) if want_info else model

    @torch.no_grad()
    def check_kept_positions(self) -> None:
        """Raises a clear error unless every kept-position buffer is strictly increasing and inside its parameter."""
        for name, shape in zip(self.param_names, self.param_shapes):
            kept = self.kept_positions(name)
            if kept is None or kept.is_meta:
                continue
            numel = math.prod(shape)
            if kept.numel() and (kept[0] < 0 or kept[-1] >= numel or (kept.numel() > 1 and (kept.diff() <= 0).any())):
                raise GradiendError(
                    f"The kept positions of {name!r} are missing or corrupt (they must be increasing flat positions "
                    f"below {numel}); the checkpoint lacks `kept.{escape_parameter_name(name)}` or was edited. "
                    "Re-save the pruned GRADIEND, or prune the full GRADIEND again."
                )

    def check_base_model(self, base_model: nn.Module) -> None:
        """Raises a clear error if `base_model` lacks a covered parameter or has it with another shape."""
        check_parameters_match(base_model, self.param_names, self.param_shapes)

    # ------------------------------------------------------------------ encoder / decoder

    def _activation(self, which: str):
        return _ACTIVATIONS[getattr(self.config, f"activation_{which}")]

    def _flat_gradient(self, gradients: Mapping[str, torch.Tensor], name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in gradients:
            raise KeyError(f"The gradients lack base parameter {name!r}, which this GRADIEND covers.")
        grad = gradients[name]
        if tuple(grad.shape) == shape:
            return grad.reshape(1, -1)
        if tuple(grad.shape[1:]) == shape:
            return grad.reshape(grad.shape[0], -1)
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
            flat = self.gather_kept(name, self._flat_gradient(gradients, name, shape))
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

    # ------------------------------------------------------------------ pruned positions

    def kept_positions(self, name: str) -> torch.Tensor | None:
        """The sorted flat positions of base parameter `name` that this (pruned) GRADIEND reads and writes.

        Returns:
            `torch.LongTensor` or `None`: `None` when every entry of the parameter is covered (always for an unpruned
            GRADIEND).
        """
        return self.kept.get(escape_parameter_name(name))

    def gather_kept(self, name: str, flat: torch.Tensor) -> torch.Tensor:
        """Restricts `(batch, numel)` values of base parameter `name` to the GRADIEND's kept entries."""
        kept = self.kept_positions(name)
        return flat if kept is None else flat.index_select(-1, kept.to(flat.device))

    def scatter_kept(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """Places `(..., kept)` values of base parameter `name` into zeros of `(..., numel)` (the identity unpruned).

        Entries the GRADIEND does not cover get 0: a pruned GRADIEND never moves them.
        """
        kept = self.kept_positions(name)
        if kept is None:
            return values
        numel = math.prod(self.param_shapes[self.param_names.index(name)])
        full = values.new_zeros(*values.shape[:-1], numel)
        return full.index_copy_(-1, kept.to(values.device), values)

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
        **kwargs: Any,
    ) -> GradiendOutput | tuple:
        """Encodes the source gradients and, given targets, returns the mean squared reconstruction error.

        Args:
            source_gradients (`Mapping[str, torch.Tensor]`): Gradients the encoder reads (see [`encode`]).
            target_gradients (`Mapping[str, torch.Tensor]`, *optional*): Gradients the decoder should reconstruct.
            return_dict (`bool`, *optional*): Return a [`GradiendOutput`] (default) or a tuple.

        Returns:
            [`GradiendOutput`] with `loss` (mean over all `n` entries and the batch) and `encodings`.
        """
        encodings = self.encode(source_gradients)
        loss = None
        if target_gradients is not None:
            loss = self.reconstruction_loss(encodings, target_gradients)
        if return_dict is False:
            return (loss, encodings) if loss is not None else (encodings,)
        return GradiendOutput(loss=loss, encodings=encodings)

    def reconstruction_loss(
        self, encodings: torch.Tensor, target_gradients: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Mean squared error between `decode(encodings)` and the targets, over all `n` entries and the batch.

        With the identity decoder activation (the default) each parameter's error goes through
        [`_SquaredReconstructionError`], which keeps one residual per entry instead of the several n-sized
        temporaries autograd would save, and reuses it as the decoder-bias gradient.
        """
        h, batched = (encodings, True) if encodings.dim() == 2 else (encodings.reshape(1, -1), False)
        total = self.config.num_base_parameters * h.shape[0]
        fused = self.config.activation_decoder == "id" and self.decoder.bias is not None
        squared = None
        for name, key in zip(self.param_names, self.param_keys):
            weight = self.decoder.weight[key]
            target = target_gradients[name].to(device=weight.device, dtype=weight.dtype).reshape(h.shape[0], -1)
            target = self.gather_kept(name, target)
            if fused:
                term = _SquaredReconstructionError.apply(h.to(weight.dtype), weight, self.decoder.bias[key], target)
            else:
                decoded = self._activation("decoder")(
                    h.to(weight.dtype) @ weight.T + (self.decoder.bias[key] if self.decoder.bias is not None else 0)
                )
                term = (decoded - target).pow(2).sum()
            squared = term if squared is None else squared + term
        return squared / total

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

    def _static_part(self, part: str, key: str) -> torch.Tensor:
        if part == "encoder-weight":
            return self.encoder.weight[key].sum(0)
        weight = self.decoder.weight[key].sum(1)
        bias = self.decoder.bias[key] if self.decoder.bias is not None else torch.zeros_like(weight)
        if part == "decoder-weight":
            return weight
        if part == "decoder-bias":
            return bias.clone()
        return weight + bias  # decoder-sum

    @torch.no_grad()
    def get_weight_importance(self, part: str = "decoder-weight") -> dict[str, torch.Tensor]:
        """Importance of every covered base-parameter entry.

        Args:
            part (`str`, *optional*, defaults to `"decoder-weight"`):
                `"decoder-weight"`: Σ_j |W_d[i, j]|; `"encoder-weight"`: Σ_j |W_e[j, i]|; `"decoder-bias"`: |b_i|;
                `"decoder-sum"`: |Σ_j W_d[i, j] + b_i|.

        Returns:
            `dict[str, torch.Tensor]`: base parameter name → non-negative importance in the parameter's shape (0 at
            entries a pruned GRADIEND does not cover).
        """
        return {
            name: self.scatter_kept(name, value).reshape(shape)
            for (name, value), shape in zip(self.iter_kept_importance(part), self.param_shapes)
        }

    @torch.no_grad()
    def iter_kept_importance(self, part: str = "decoder-weight"):
        """Yields `(name, importance)` per covered parameter, one value per GRADIEND input dimension (the kept
        entries, in the order of [`kept_positions`]; all entries, flat, when unpruned). See [`get_weight_importance`].
        """
        if part not in IMPORTANCE_PARTS:
            raise GradiendError(f"Unknown importance part {part!r}; choose one of {', '.join(IMPORTANCE_PARTS)}.")
        for name, key in zip(self.param_names, self.param_keys):
            if part == "decoder-weight":
                value = self.decoder.weight[key].abs().sum(1)
            elif part == "encoder-weight":
                value = self.encoder.weight[key].abs().sum(0)
            else:
                value = self._static_part(part, key).abs()
            yield name, value

    @torch.no_grad()
    def topk(self, k: int, part: str = "decoder-weight") -> list[dict[str, Any]]:
        """The `k` most important base-parameter entries, without building one flat vector of all `n` entries.

        Args:
            k (`int`): How many entries to return.
            part (`str`, *optional*, defaults to `"decoder-weight"`): Importance definition, see
                [`get_weight_importance`].

        Returns:
            `list[dict]`: most important first; each with `parameter` (base name), `position` (index tuple in the
            parameter), `global_index` (position in the concatenation of all covered parameters in GRADIEND order,
            comparable across GRADIENDs with the same `config.selection_fingerprint`; a pruned GRADIEND counts in
            the selection it was pruned from) and `importance`.
        """
        if k < 1:
            raise GradiendError(f"`k` must be at least 1, got {k}.")
        # Per-parameter candidates, then one merge: never a flat vector of all n entries. A pruned GRADIEND ranks
        # only its kept entries, mapped back to base-parameter positions, so indices match the unpruned GRADIEND's.
        candidates_values, candidates_param, candidates_local = [], [], []
        for param_pos, (name, value) in enumerate(self.iter_kept_importance(part)):
            flat = value.reshape(-1).float().cpu()
            top = torch.topk(flat, min(k, flat.numel()))
            kept = self.kept_positions(name)
            candidates_values.append(top.values)
            candidates_param.append(torch.full_like(top.indices, param_pos))
            candidates_local.append(top.indices if kept is None else kept.cpu()[top.indices])
        values = torch.cat(candidates_values)
        best = torch.topk(values, min(k, values.numel()))
        params = torch.cat(candidates_param)[best.indices].tolist()
        locals_ = torch.cat(candidates_local)[best.indices].tolist()
        offsets = self.config.global_offsets
        results = []
        for value, param_pos, local in zip(best.values.tolist(), params, locals_):
            global_index = offsets[param_pos] + local
            shape = self.param_shapes[param_pos]
            position = tuple(int(i) for i in torch.unravel_index(torch.tensor(local), shape)) if shape else ()
            results.append(
                {
                    "parameter": self.param_names[param_pos],
                    "position": position,
                    "global_index": int(global_index),
                    "importance": float(value),
                }
            )
        return results

    def prune(self, k: int | float, part: str = "decoder-weight") -> GradiendModel:
        """Returns a smaller GRADIEND that keeps only the `k` most important entries; see
        [`gradiend_hf.pruning.post_prune`]."""
        from .pruning import post_prune

        return post_prune(self, k, part=part)

    def rewrite(
        self,
        base_model: nn.Module,
        feature_factor: float | Sequence[float],
        learning_rate: float,
        inplace: bool = False,
        part: str = "decoder",
    ) -> nn.Module:
        """Returns `base_model` rewritten with `learning_rate · u(feature_factor)`; see [`gradiend_hf.rewrite.rewrite`]."""
        from .rewrite import rewrite

        return rewrite(self, base_model, feature_factor, learning_rate, inplace=inplace, part=part)

    def export_peft(
        self,
        base_model: nn.Module,
        feature_factor: float | Sequence[float],
        learning_rate: float,
        save_directory: str | os.PathLike,
        rank: int | float | str = "full",
        **kwargs: Any,
    ):
        """Writes the rewrite `learning_rate · u(feature_factor)` as a PEFT LoRA adapter; see
        [`gradiend_hf.export.export_peft`]. Returns an [`ExportReport`]."""
        from .export import export_peft

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
        """Raises a [`NonFiniteError`] naming the first tensor with a `nan` or infinite entry."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not tensor.is_meta and not bool(torch.isfinite(tensor).all()):
                when = f" after step {step}" if step is not None else ""
                raise NonFiniteError(
                    f"The GRADIEND's {name} has nan or infinite entries{when}: training diverged (a learning rate "
                    "too large, or non-finite gradients). Lower the learning rate and train again."
                )

    def create_model_card(self, model_id: str | os.PathLike | None = None, **kwargs: Any):
        """Renders this GRADIEND's model card (see [`gradiend_hf.model_card.build_gradiend_card`]).

        Args:
            model_id (`str`, *optional*): Hub id or folder the card's quick start loads the GRADIEND from; defaults
                to where the GRADIEND was loaded from.
            kwargs: `encoder_report`, `decoder_report`, `figures`, `dataset_name`, `dataset_sizes`, `training_args`.

        Returns:
            `huggingface_hub.ModelCard`
        """
        from .model_card import build_gradiend_card

        model_id = os.fspath(model_id) if model_id is not None else (self.config._name_or_path or "path/to/gradiend")
        return build_gradiend_card(self.config, model_id, dtype=str(self.dtype).replace("torch.", ""), **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Uploads the GRADIEND (weights, config, model card, figures) to the Hub; see
        [`gradiend_hf.hub.push_gradiend`] for the arguments (`revision`, `private`, `token`, `commit_message`,
        `encoder_report`, `decoder_report`, `figures`, …). Returns the commit URL."""
        from .hub import push_gradiend

        return push_gradiend(self, repo_id, **kwargs)
