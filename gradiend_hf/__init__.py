"""gradiend-hf: GRADIEND for the Hugging Face ecosystem.

Learn one feature of a language model (gender, pronoun number, sentiment, …) from the model's own gradients, and
rewrite the model with it. The top level holds the Hugging Face-style classes and the error root; everything else is
reached through its submodule (`gradiend_hf.data`, `gradiend_hf.evaluation`, `gradiend_hf.export`,
`gradiend_hf.hub`, `gradiend_hf.pruning`, `gradiend_hf.comparison`, …; see docs/ARCHITECTURE.md).
"""

from transformers import AutoConfig, AutoModel

from .base_models import load_base_model
from .configuration_gradiend import GradiendConfig, SelectedRewrite
from .errors import GradiendError
from .gradiend_modules import GradiendOutput
from .model_card import GradiendModelCardData
from .modeling_gradiend import GradiendModel
from .trainer import GradiendTrainer
from .trainer_callbacks import GradiendNotConvergedError
from .training_args import GradiendTrainingArguments, SuiteTrainingArguments


__version__ = "0.1.0"

AutoConfig.register("gradiend", GradiendConfig, exist_ok=True)
AutoModel.register(GradiendConfig, GradiendModel, exist_ok=True)

__all__ = [
    "GradiendConfig",
    "GradiendError",
    "GradiendModel",
    "GradiendModelCardData",
    "GradiendNotConvergedError",
    "GradiendOutput",
    "GradiendTrainer",
    "GradiendTrainingArguments",
    "SuiteTrainingArguments",
    "SelectedRewrite",
    "__version__",
    "load_base_model",
]
