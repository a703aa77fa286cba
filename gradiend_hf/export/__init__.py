"""Exporting GRADIEND rewrites as PEFT adapters, and steering a base model with them at run time.

- [`export_peft`]: `Δθ = lr · u(ff)` as a LoRA adapter (SVD per Linear/Conv1D, exact biases, norms and embeddings),
  loadable with plain `peft.PeftModel.from_pretrained`; [`load_exported`] loads (and optionally merges) it.
- [`export_steering`] / [`load_steerable`]: adapters whose strength (the feature factor) can be changed per call and
  switched off to get the base model back exactly.

Tied input/output embeddings. The GRADIEND's gradient of a tied embedding includes the LM head's use of it, and the
dense rewrite changes the one shared tensor, so the delta must reach the head too. PEFT offers no compact form that
does this both merged and unmerged (checked with peft 0.21.2): an embedding LoRA changes the head only once merged;
with `ensure_weight_tying=True` the unmerged model is right but merging adds the delta twice (and it only recognises
`embed_tokens`-style names); `lora_bias` cannot share an adapter with an embedding LoRA at all. [`export_peft`]
therefore stores a tied embedding exactly, as a `modules_to_save` copy for the input embedding **and** for each tied
head (twice the embedding's size on disk), which is right unmerged and merged; [`load_exported`] re-ties the two
after merging. Steering applies tied deltas through parametrizations on every module that holds the tensor.
"""

from .lora import LoraFactors, RankSpec, lora_from_delta, resolve_rank
from .peft_export import export_peft, load_exported, retie_embeddings, unload_exported
from .plan import ExportError, ExportPlan, plan_export
from .report import ExportReport, ModuleReport
from .steerable import SteerableModel, load_steerable
from .steering import export_steering


__all__ = [
    "ExportError",
    "ExportPlan",
    "ExportReport",
    "LoraFactors",
    "ModuleReport",
    "RankSpec",
    "SteerableModel",
    "export_peft",
    "export_steering",
    "load_exported",
    "load_steerable",
    "lora_from_delta",
    "plan_export",
    "resolve_rank",
    "retie_embeddings",
    "unload_exported",
]
