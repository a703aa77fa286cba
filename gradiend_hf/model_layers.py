"""Where a transformer's layers are: its stack of identical layers, and the position-wise MLP of the last one."""

from __future__ import annotations

from torch import nn


def layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of transformer layers: the `nn.ModuleList` of two or more modules of one class that holds
    the most parameters (`None` when there is none)."""
    best, best_size = None, 0
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        if len({type(layer) for layer in module}) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = module, size
    return best


def last_layer_mlp(model: nn.Module) -> nn.Module | None:
    """The `mlp` module of the model's last layer (Llama, GPT-2, Mistral, Qwen, …), `None` when it has none.

    Whether it is applied position by position, with nothing after it that mixes positions, is not known from the
    structure: [`gradiend_hf.objectives.logits`] checks that once per model before it relies on it.
    """
    stack = layer_stack(model)
    mlp = getattr(stack[-1], "mlp", None) if stack is not None else None
    return mlp if isinstance(mlp, nn.Module) and next(mlp.parameters(), None) is not None else None
