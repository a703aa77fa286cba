"""Decoder-only models with an auxiliary MLM head (the reference's `clm_mlm_head`), as a self-contained feature:

- [`MLMHeadConfig`], [`MLMHeadModel`]: a linear classifier over label words on the mean-pooled last hidden states of a
  frozen decoder at a mask token and the positions after it; saved, loaded and pushed like every artefact.
- [`train_mlm_head`]: trains the head with a `transformers.Trainer` of its own (the reference's recipe).
- [`mlm_head_objective`], [`objective_for_gradiend`]: the objective `causal_lm_mlm_head` that reads a decoder
  through the head, for training and encoding GRADIENDs (see `gradiend_hf/objectives/causal_lm_mlm_head.py`).

```python
result = train_mlm_head(base, tokenizer, load_builtin("gender-en"), MLMHeadTrainingArguments("out/head"))
trainer = GradiendTrainer(model=gradiend, base_model=base, processing_class=tokenizer, train_dataset=data,
                          objective=mlm_head_objective(result.head, tokenizer, base))
```
"""

from .configuration import MLMHeadConfig
from .hub import push_mlm_head
from .modeling import MLMHeadModel, pool_hidden_states
from .objective import mlm_head_objective, objective_for_gradiend
from .training import MLMHeadTrainingArguments, MLMHeadTrainingResult, pooled_features, train_mlm_head


__all__ = [
    "MLMHeadConfig",
    "MLMHeadModel",
    "MLMHeadTrainingArguments",
    "MLMHeadTrainingResult",
    "mlm_head_objective",
    "objective_for_gradiend",
    "pool_hidden_states",
    "pooled_features",
    "push_mlm_head",
    "train_mlm_head",
]
