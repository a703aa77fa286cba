"""AdamW stepped inside the backward pass: each GRADIEND parameter takes its step as soon as its gradient is complete
and the gradient is freed at once, so the 3n gradients of a GRADIEND are never all held together.

A GRADIEND over n base parameters holds 3n + 1 weights; with AdamW's two moments that is 12 bytes per weight that
training must keep, and the gradients add 4 more for the length of a step. Stepping in the backward pass (a
`register_post_accumulate_grad_hook` per parameter, registered for one backward pass only) keeps at most a few
parameters' gradients alive. The update is the one `torch.optim.AdamW` computes: the same kernel on the same
numbers, one parameter at a time instead of all at once, so the weights and the AdamW state are the same as after the
plain step (the tests compare them bit for bit) and checkpoints (`optimizer.pt`) are interchangeable.

The AdamW state of parameters that have none is created before the first backward pass, as torch's first step
would create it (zero moments, step 0), with each moment a view of one buffer per moment name shared by all
parameters. Created one by one in the first backward pass, between its gradients and temporaries, the 2 × (3n + 1)
moments would pin those allocations' heap pages for the whole run: the peak RSS of full-model SmolLM2 training was
0.27 GiB higher.

It is exact only when nothing needs all gradients between the backward pass and the step: no gradient clipping
(`max_grad_norm`, off by default, as in the reference), no loss scaling (`fp16`), no gradients averaged over processes
after the backward pass (DDP, `shard_gradiend`, DeepSpeed) and a torch AdamW optimizer (`adamw_torch`,
`adamw_torch_fused`, the default). `optimizer_in_backward=None` (the default) uses it exactly then;
`optimizer_in_backward=True` refuses any other setting with a [`GradiendError`]; `False` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .errors import GradiendError


class AdamWInBackward(torch.optim.AdamW):
    """`torch.optim.AdamW` that can step each parameter inside the backward pass.

    Inside [`stepping_in_backward`] every parameter takes its AdamW step (with its group's current hyper-parameters,
    so learning-rate schedules apply as before) the moment its gradient has been accumulated, and its `.grad` is set
    to `None`. [`step`] then steps whatever still has a gradient (nothing, after such a backward pass), so the
    optimizer is a correct AdamW whether or not the backward pass ran inside the context.

    Args:
        params: As for `torch.optim.AdamW` (tensors or parameter groups).
        kwargs: `torch.optim.AdamW`'s keyword arguments (`lr`, `betas`, `eps`, `weight_decay`, `fused`, ...).
    """

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self._norms: list[torch.Tensor] = []

    def _group_index(self) -> dict[nn.Parameter, int]:
        # Looked up per backward pass: `load_state_dict` replaces the group dicts (same order, same parameters).
        return {param: i for i, group in enumerate(self.param_groups) for param in group["params"]}

    @contextmanager
    def stepping_in_backward(self) -> Iterator[None]:
        """Within the block, a backward pass steps each parameter as soon as its gradient is complete.

        The hooks exist only inside the block, so a GRADIEND used after training (or by another trainer) keeps no
        reference to this optimizer.
        """
        index = self._group_index()
        self._norms = []
        self._create_state([param for param in index if param.requires_grad and not self.state.get(param)], index)
        handles = [
            param.register_post_accumulate_grad_hook(lambda p, i=index[param]: self._step_one(p, i))
            for param in index
            if param.requires_grad
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @torch.no_grad()
    def _create_state(self, params: list[nn.Parameter], index: dict[nn.Parameter, int]) -> None:
        """Gives `params` the state torch's first AdamW step would create, each moment a view of a shared buffer.

        What that state holds (the moments, `step` and its dtype and device) is read off a throwaway AdamW with the
        same group settings stepped once on a two-entry parameter, so amsgrad, fused or capturable groups get theirs.
        """
        kinds: dict[tuple[int, torch.dtype, torch.device], list[nn.Parameter]] = {}
        for param in params:
            if not param.is_contiguous():  # keeps torch's own state, created at its first step
                continue
            kinds.setdefault((index[param], param.dtype, param.device), []).append(param)
        for (group_index, dtype, device), members in kinds.items():
            probe = nn.Parameter(torch.zeros(2, dtype=dtype, device=device))
            throwaway = torch.optim.AdamW([probe])
            throwaway.param_groups[0].update(
                {k: v for k, v in self.param_groups[group_index].items() if k != "params"}
            )
            probe.grad = torch.zeros_like(probe)
            throwaway.step()
            template = throwaway.state[probe]
            if not all(torch.is_tensor(value) for value in template.values()):
                continue  # a state this cannot reproduce: torch creates it at the first step
            total = sum(param.numel() for param in members)
            buffers = {
                name: torch.zeros(total, dtype=value.dtype, device=device)
                for name, value in template.items()
                if value.shape == (2,)
            }
            start = 0
            for param in members:
                state = {name: torch.zeros_like(value) for name, value in template.items() if name not in buffers}
                for name, buffer in buffers.items():
                    state[name] = buffer[start : start + param.numel()].view_as(param)
                self.state[param] = state
                start += param.numel()

    @torch.no_grad()
    def _step_one(self, param: nn.Parameter, group_index: int) -> None:
        self._norms.append(torch.linalg.vector_norm(param.grad, 2.0))
        groups = self.param_groups
        # AdamW's own step over a copy of the group that holds only this parameter: the same kernel and state.
        self.param_groups = [{**groups[group_index], "params": [param]}]
        try:
            torch.optim.AdamW.step(self)
        finally:
            self.param_groups = groups
        param.grad = None  # the point of it all: this gradient is gone before the next one is computed

    def pop_grad_norm(self) -> torch.Tensor | None:
        """The 2-norm over all gradients stepped in the last backward pass (`None` if none was), then forgets it.

        The trainer logs it as `grad_norm`, which it would otherwise compute from the (now freed) gradients.
        """
        if not self._norms:
            return None
        norm = torch.linalg.vector_norm(torch.stack(self._norms), 2.0)
        self._norms = []
        return norm


def in_backward_blockers(args, optimizer_cls, sharded: bool, optimizer_given: bool) -> list[str]:
    """Why stepping in the backward pass would not equal the plain step for these arguments (empty: it would).

    Args:
        args ([`GradiendTrainingArguments`]): The training arguments.
        optimizer_cls (`type`): The optimizer class the trainer would build.
        sharded (`bool`): Whether the GRADIEND is sharded over processes.
        optimizer_given (`bool`): Whether the caller passed an optimizer of its own.

    Returns:
        `list[str]`: one reason per setting that needs all gradients at once, each naming what to change.
    """
    reasons = []
    if optimizer_given:
        reasons.append("an optimizer was passed to the trainer (drop `optimizers=`)")
    elif optimizer_cls is not torch.optim.AdamW:
        reasons.append(
            f"optim={getattr(args.optim, 'value', args.optim)!r} is not torch's AdamW (use adamw_torch_fused or adamw_torch)"
        )
    if args.max_grad_norm:
        reasons.append(f"max_grad_norm={args.max_grad_norm:g} clips by the norm of all gradients (set it to 0)")
    if args.fp16:
        reasons.append("fp16 scales the loss and unscales all gradients before the step (drop fp16)")
    if sharded or args.world_size > 1:
        reasons.append("gradients are averaged over processes after the backward pass (run one process)")
    if getattr(args, "deepspeed", None):
        reasons.append("DeepSpeed owns the optimizer step (drop deepspeed)")
    return reasons


def use_optimizer_in_backward(args, optimizer_cls, sharded: bool, optimizer_given: bool) -> bool:
    """Whether to step AdamW inside the backward pass: `args.optimizer_in_backward`, where `None` means "whenever
    it equals the plain step".

    Raises:
        [`GradiendError`]: `optimizer_in_backward=True` with a setting that needs all gradients at once.
    """
    wanted = args.optimizer_in_backward
    if wanted is False:
        return False
    reasons = in_backward_blockers(args, optimizer_cls, sharded, optimizer_given)
    if reasons and wanted:
        raise GradiendError(
            "`optimizer_in_backward=True` steps each parameter as soon as its gradient is complete, which cannot "
            f"equal the plain step here: {'; '.join(reasons)}. Change that, or leave `optimizer_in_backward` unset "
            "(it is then used only where it is exact)."
        )
    return not reasons


class OptimizerInBackwardMixin:
    """Mixed into [`GradiendTrainer`] before `transformers.Trainer`: builds an [`AdamWInBackward`] when
    [`use_optimizer_in_backward`] says so and runs each synchronising backward pass inside its stepping context.

    The trainer's own loop stays as it is: its `optimizer.step()` finds no gradient left, the learning-rate scheduler
    updates the groups the next backward pass reads, `zero_grad` clears nothing, and the logged `grad_norm` is the
    norm of the gradients stepped in the backward pass. With gradient accumulation only the last micro-batch's
    backward pass steps (the gradients of the earlier ones accumulate as usual), which is again the plain update.
    """

    def create_optimizer(self, model=None):
        given = self.optimizer is not None
        if given or self.optimizer_cls_and_kwargs is None:
            optimizer_cls, kwargs = (
                (type(self.optimizer), None)
                if given
                else self.get_optimizer_cls_and_kwargs(self.args, model if model is not None else self.model)
            )
        else:
            optimizer_cls, kwargs = self.optimizer_cls_and_kwargs
        if use_optimizer_in_backward(self.args, optimizer_cls, getattr(self, "sharded", False), given):
            self.optimizer_cls_and_kwargs = (AdamWInBackward, kwargs)
        return super().create_optimizer(model)

    def stepping_optimizer(self) -> AdamWInBackward | None:
        """The [`AdamWInBackward`] this trainer steps in the backward pass, or `None`."""
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps the torch optimizer
        return optimizer if isinstance(optimizer, AdamWInBackward) else None

    def training_step(self, model, inputs, num_items_in_batch=None):
        optimizer = self.stepping_optimizer()
        if optimizer is None or not self.accelerator.sync_gradients:
            return super().training_step(model, inputs, num_items_in_batch)
        with optimizer.stepping_in_backward():
            return super().training_step(model, inputs, num_items_in_batch)

    def _get_grad_norm(self, model, grad_norm=None):
        optimizer = self.stepping_optimizer()
        stepped = optimizer.pop_grad_norm() if optimizer is not None else None
        if grad_norm is None and stepped is not None:
            return stepped
        return super()._get_grad_norm(model, grad_norm=grad_norm)
