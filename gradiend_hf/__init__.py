"""gradiend-hf: GRADIEND for the Hugging Face ecosystem.

Learn one feature of a language model (gender, pronoun number, sentiment, …) from the model's own gradients, and
rewrite the model with it.
"""

from transformers import AutoConfig, AutoModel

from .base_models import load_base_model
from .comparison import cross_encoding_matrix, similarity_matrix
from .configuration_gradiend import GradiendConfig
from .hub import push_adapter, push_folder, push_gradiend, push_rewrite, push_space
from .model_card import GradiendModelCardData, write_gradiend_card
from .modeling_gradiend import GradiendModel, GradiendOutput
from .multi_seed import train_multi_seed
from .objectives import CausalLMObjective, MaskedLMObjective, ObjectiveError, detect_objective, get_objective
from .params import GradiendParameterError, select_parameters
from .pruning import post_prune, pre_prune
from .trainer import GradiendTrainer
from .trainer_callbacks import GradiendNotConvergedError
from .training_args import GradiendTrainingArguments


__version__ = "0.1.0"

AutoConfig.register("gradiend", GradiendConfig, exist_ok=True)
AutoModel.register(GradiendConfig, GradiendModel, exist_ok=True)

__all__ = [
    "CausalLMObjective",
    "GradiendConfig",
    "GradiendModel",
    "GradiendModelCardData",
    "GradiendNotConvergedError",
    "GradiendTrainer",
    "GradiendTrainingArguments",
    "GradiendOutput",
    "GradiendParameterError",
    "MaskedLMObjective",
    "ObjectiveError",
    "__version__",
    "detect_objective",
    "get_objective",
    "load_base_model",
    "cross_encoding_matrix",
    "post_prune",
    "pre_prune",
    "similarity_matrix",
    "train_multi_seed",
    "push_adapter",
    "push_folder",
    "push_gradiend",
    "push_rewrite",
    "push_space",
    "select_parameters",
    "write_gradiend_card",
]
