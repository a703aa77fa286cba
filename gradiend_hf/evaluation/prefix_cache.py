"""The hidden states below the first layer a GRADIEND covers, computed once for every grid point.

A rewrite `θ + lr · u(ff)` changes only the parameters the GRADIEND covers. When those all lie in the upper layers
of the base model (the demo covers the last six of SmolLM2's thirty), every layer below the first covered one sees
the same input and computes the same output at every point of a decoder grid. [`FrozenPrefix`] records, on the
first forward pass over a batch, the hidden states entering the first covered layer, and on every later pass over
the same input skips the layers below it and feeds the recorded states in instead. The embeddings (a lookup) still
run, so everything a model derives from its inputs (attention masks, rotary positions) is computed as always.

A pass is recognised by what enters the lowest layer: the hidden states and every tensor (and plain value) the layer
is called with (attention mask, position ids, rotary embeddings), all equal to a recorded pass's. Those determine
what the unchanged layers compute, so a scorer that builds its batches anew for every model state (the bias
benchmarks do) is recognised as well as one that keeps them. The token ids only pick the recorded passes to
compare with. Passes inside `torch.func.jvp` (the batched encodings) are recognised and replayed too: what is kept is
the value a transform's wrapped tensor holds, since no tangent flows below the first covered layer. With
`keep_records`, the records outlive the context, for the trainer's evaluations of the same rows while the base model
stays as it is, and for the app's requests on one sentence.

It stays off (every pass is the model's own) unless all of this holds:

- the model is not an encoder-decoder model and has one stack of identical layers (the `nn.ModuleList` holding most parameters) whose layers return a
  tensor (transformers 5) and take the hidden states first;
- no covered parameter is used before the first covered layer (embeddings, tied weights, earlier layers), checked
  by the modules that actually ran before it;
- on the first pass that could reuse the states, recomputing them gives the recorded ones (a check of the whole
  assumption at a rewritten state, done once).

The results are the same as without it (bit for bit on the CPU): the layers from the first covered one on receive the
tensors they would have computed (tests compare whole decoder grids and bias benchmarks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch._C._functorch import get_unwrapped, is_functorch_wrapped_tensor

from ..model_layers import layer_stack
from ..objectives.logits import in_check_pass


logger = logging.getLogger(__name__)


def first_covered_layer(stack: nn.ModuleList, covered: list[nn.Parameter]) -> int | None:
    """Index of the lowest layer of `stack` holding a covered parameter (`None` when none does)."""
    covered_ids = {id(p) for p in covered}
    for index, layer in enumerate(stack):
        if any(id(p) in covered_ids for p in layer.parameters()):
            return index
    return None


@dataclass
class _Record:
    """One recorded pass: what entered the lowest layer, and the states that entered the first covered one."""

    entry: list
    states: torch.Tensor


class FrozenPrefix:
    """Reuses the hidden states below the first covered layer over repeated passes of the same inputs.

    Use as a context manager around the scoring of many rewrites of one model (see the module docstring); outside
    of it, or when a condition fails, the model runs as always.

    Args:
        model (`nn.Module`): The base model (not changed, apart from hooks removed on exit).
        covered_names (`list[str]`): The names of the parameters the GRADIEND covers.
        enabled (`bool`, *optional*, defaults to `True`): `False` makes the context do nothing.
        keep_records (`bool`, *optional*, defaults to `False`): Keep the recorded passes when the context is left,
            for the next time it is entered (the trainer's evaluations encode the same rows every time). They are
            dropped on entering when a parameter outside the covered ones has changed since (in place or replaced).
        max_record_bytes (`int`, *optional*): At most this many bytes of recorded states; passes beyond them run as
            always (default: no limit).
    """

    def __init__(
        self,
        model: nn.Module,
        covered_names: list[str],
        enabled: bool = True,
        keep_records: bool = False,
        max_record_bytes: int | None = None,
    ):
        self.model = model
        self.keep_records = keep_records
        self.max_record_bytes = max_record_bytes
        self._versions: list | None = None  # the uncovered parameters' state when the records were kept
        parameters = dict(model.named_parameters())
        self.covered = [parameters[name] for name in covered_names if name in parameters]
        self.stack = layer_stack(model)
        self.first = first_covered_layer(self.stack, self.covered) if self.stack is not None else None
        # An encoder-decoder model embeds twice per pass (encoder and decoder inputs): not handled, so off.
        two_stacks = getattr(getattr(model, "config", None), "is_encoder_decoder", False)
        self.enabled = enabled and not two_stacks and bool(self.first) and len(self.covered) == len(covered_names)
        self._open = True  # new passes are recorded until `stop_recording`
        self.reused_passes = 0
        self._records: dict[tuple, list[_Record]] = {}  # token ids (shape and bytes) -> passes recorded for them
        self._handles = []
        self._note_handles = []  # on every module, only until the first pass has shown what runs before
        self._saved_forwards: dict[int, object] = {}
        self._key: tuple | None = None  # the token ids of the pass now running (None: not one to reuse or record)
        self._replay: torch.Tensor | None = None  # the states to feed in during this pass
        self._pending: list | None = None  # what entered the lowest layer in a pass being recorded
        self._checked = False
        self._check_against: torch.Tensor | None = None
        self._ran_before: set[int] | None = set()

    def __enter__(self) -> FrozenPrefix:
        if not self.enabled:
            return self
        if self._versions is not None and self._versions != self._uncovered_versions():
            self._records.clear()  # the layers below may compute something else now: record afresh
            self._checked, self._open = False, True
        self._versions = None
        embeddings = self.model.get_input_embeddings()
        self._handles.append(embeddings.register_forward_pre_hook(self._on_embedding))
        self._handles.append(
            self.stack[self.first].register_forward_pre_hook(self._on_first_covered, with_kwargs=True)
        )
        for index, layer in enumerate(self.stack[: self.first]):
            self._saved_forwards[id(layer)] = layer.__dict__.get("forward")
            layer.forward = self._skipping(layer, layer.forward, lowest=index == 0)
        # Which modules run before the first covered layer: their parameters must not be covered (found once).
        if self._ran_before is not None:
            self._note_handles = [
                module.register_forward_pre_hook(self._note_module) for module in self.model.modules()
            ]
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles + self._note_handles:
            handle.remove()
        self._handles.clear()
        self._note_handles.clear()
        if self.stack is not None:
            for layer in self.stack[: self.first or 0]:
                if id(layer) in self._saved_forwards:
                    saved = self._saved_forwards.pop(id(layer))
                    if saved is None:
                        del layer.forward
                    else:
                        layer.forward = saved
        if self.keep_records and self.enabled:
            self._versions = self._uncovered_versions()
        else:
            self._records.clear()
        self._key = self._replay = self._pending = self._check_against = None
        return False

    def _uncovered_versions(self) -> list:
        """What identifies the uncovered parameters' values: each tensor, its memory and its in-place version."""
        covered = {id(p) for p in self.covered}
        return [(id(p), p.data_ptr(), p._version) for p in self.model.parameters() if id(p) not in covered]

    def stop_recording(self) -> None:
        """Records no new passes from now on (call it after the unchanged model's pass over every batch): an input
        seen for the first time later runs as always, so memory does not grow with inputs that never come back."""
        self._open = False

    @property
    def num_records(self) -> int:
        """How many passes are recorded."""
        return sum(len(records) for records in self._records.values())

    @property
    def record_bytes(self) -> int:
        """The bytes of the recorded states."""
        return sum(r.states.numel() * r.states.element_size() for rs in self._records.values() for r in rs)

    # -- hooks ------------------------------------------------------------------------------------------------

    def _note_module(self, module, args) -> None:
        if self._ran_before is not None and self._key is not None:
            self._ran_before.add(id(module))

    def _on_embedding(self, module, args) -> None:
        """Start of a pass: remember its token ids, which pick the recorded passes it may repeat."""
        self._key = self._replay = self._pending = self._check_against = None
        if not self.enabled or not args or not isinstance(args[0], torch.Tensor) or in_check_pass():
            return
        ids = args[0]
        # `tolist`, not the bytes: inside a `torch.func` transform a tensor's memory cannot be read.
        self._key = (tuple(ids.shape), str(ids.device), tuple(ids.reshape(-1).tolist()))

    def _on_lowest_layer(self, args, kwargs) -> bool:
        """Called with the lowest layer's inputs: decides whether this pass replays, checks or records, and returns
        whether the lower layers are skipped."""
        key, self._key = self._key, None
        if key is None:
            return False
        entry = _entry_of(args, kwargs)
        record = next((r for r in self._records.get(key, ()) if _same_entry(r.entry, entry)), None)
        if record is not None and self._checked:
            self._replay = record.states
            self.reused_passes += 1
            return True
        if record is not None:
            # The first chance to reuse: compute the states again and check they are the recorded ones.
            self._check_against = record.states
        elif self._open:
            self._pending = [
                key,
                [(n, j, _kept(v) if isinstance(v, torch.Tensor) else v) for n, j, v in entry],
            ]
        return False

    def _on_first_covered(self, module, args, kwargs):
        if self._replay is not None:
            states = self._replay
            self._replay = None
            return _with_hidden_states(args, kwargs, states)
        if self._pending is None and self._check_against is None:
            return None
        states = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(states, torch.Tensor):
            self._disable("the first covered layer does not take the hidden states first")
            return None
        states = _plain(states)
        if self._ran_before is not None:
            self._check_prefix_parameters()
        check, self._check_against = self._check_against, None
        pending, self._pending = self._pending, None
        if check is not None:
            # Equal up to rounding: a device whose kernels are not deterministic may differ in the last bits.
            if check.shape == states.shape and torch.allclose(check, states.detach(), rtol=1e-5, atol=1e-6):
                self._checked = True
            else:
                self._disable("recomputing the states below the first covered layer gave other values")
        elif pending is not None and self.enabled:
            key, entry = pending
            size = states.numel() * states.element_size()
            if self.max_record_bytes is not None and self.record_bytes + size > self.max_record_bytes:
                self._open = False  # full: later passes run as always
            else:
                self._records.setdefault(key, []).append(_Record(entry, _kept(states)))
        return None

    def _skipping(self, layer: nn.Module, forward, lowest: bool):
        def skip_or_run(*args, **kwargs):
            if lowest and self._on_lowest_layer(args, kwargs):
                return args[0] if args else kwargs["hidden_states"]
            if self._replay is not None:
                return args[0] if args else kwargs["hidden_states"]
            output = forward(*args, **kwargs)
            if not isinstance(output, torch.Tensor):
                self._disable(f"{type(layer).__name__} returns {type(output).__name__}, not a tensor")
            return output

        return skip_or_run

    # -- checks -----------------------------------------------------------------------------------------------

    def _check_prefix_parameters(self) -> None:
        """No covered parameter may belong to a module that ran before the first covered layer."""
        ran, self._ran_before = self._ran_before, None
        for handle in self._note_handles:  # a Python call per module and pass is not free
            handle.remove()
        self._note_handles.clear()
        covered = {id(p) for p in self.covered}
        for module in self.model.modules():
            if id(module) in ran and any(id(p) in covered for p in module.parameters(recurse=False)):
                self._disable(f"a covered parameter of {type(module).__name__} is used before the first covered layer")
                return

    def _disable(self, why: str) -> None:
        if self.enabled:
            logger.info("Not reusing the hidden states below the first covered layer: %s.", why)
        self.enabled = False
        self._records.clear()
        self._replay = self._pending = self._key = None


class PrefixForLastInput:
    """A [`FrozenPrefix`] that keeps its records for as long as it is asked for the same input, and a new one for
    another input: the trainer's evaluations (the same rows each time) and the app's requests (one sentence while
    the sliders move) reuse the lower layers' states from one call to the next, and memory holds one input's.

    Args:
        model (`nn.Module`): The base model.
        covered_names (`list[str]`): The names of the parameters the GRADIEND covers.
        max_record_bytes (`int`): At most this many bytes of recorded states.
    """

    def __init__(self, model: nn.Module, covered_names: list[str], max_record_bytes: int):
        self.model, self.covered_names, self.max_record_bytes = model, covered_names, max_record_bytes
        self.input = None
        self.prefix: FrozenPrefix | None = None

    def __call__(self, inputs) -> FrozenPrefix:
        """The context to score `inputs` in (compared by `==` with the last input)."""
        if self.prefix is None or self.input != inputs:
            self.input = inputs
            self.prefix = FrozenPrefix(
                self.model, self.covered_names, keep_records=True, max_record_bytes=self.max_record_bytes
            )
        return self.prefix


def _entry_of(args, kwargs) -> list:
    """What the lowest layer is called with: tensors (also inside tuples, as rotary embeddings come) and plain
    values; other objects (a key-value cache) do not change what the layer computes from its inputs."""
    entry = []
    for name, value in [(i, a) for i, a in enumerate(args)] + sorted(kwargs.items()):
        values = value if isinstance(value, (tuple, list)) else (value,)
        for j, item in enumerate(values):
            if isinstance(item, torch.Tensor):
                entry.append((name, j, item))
            elif item is None or isinstance(item, (bool, int, float, str)):
                entry.append((name, j, item))
    return entry


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself outside `torch.func` transforms; inside one (the encodings' `jvp`) the value it wraps, which
    outlives the transform. Below the first covered layer no tangent flows (no covered parameter is used there), so
    the value is all there is to keep."""
    while is_functorch_wrapped_tensor(tensor):
        tensor = get_unwrapped(tensor)
    return tensor


def _kept(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of `tensor` that outlives the pass (and any `torch.func` transform it runs in)."""
    return _plain(_plain(tensor).detach().clone())


def _same_entry(recorded: list, entry: list) -> bool:
    if len(recorded) != len(entry):
        return False
    for (name_a, j_a, a), (name_b, j_b, b) in zip(recorded, entry):
        if name_a != name_b or j_a != j_b:
            return False
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            b = _plain(b) if isinstance(b, torch.Tensor) else b
            same = (
                isinstance(a, torch.Tensor)
                and isinstance(b, torch.Tensor)
                and a.shape == b.shape
                and a.dtype == b.dtype
                and a.device == b.device
                and torch.equal(a, b)
            )
        else:
            same = a == b
        if not same:
            return False
    return True


def _with_hidden_states(args, kwargs, states):
    if args:
        return (states, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": states}
