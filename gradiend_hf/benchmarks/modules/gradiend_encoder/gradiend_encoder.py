"""GRADIEND encoder metrics as an `evaluate` metric (computed by `gradiend_hf.evaluation.metrics.encoder_metrics`)."""

import pandas as pd

from gradiend_hf.benchmarks.modules import base
from gradiend_hf.evaluation.metrics import encoder_metrics


class GradiendEncoder(base.LibraryMetric):
    card_folder = "gradiend_encoder"
    input_types = {
        "encoding": "float64",
        "expected": "int64",
        **dict.fromkeys(("type", "factual_class", "factual"), "string"),
    }

    def _compute(self, **inputs) -> dict:
        rows = pd.DataFrame({name: inputs[name] for name in self.input_types})
        # Neutral rows have no class; an empty string stands for none in the evaluate table.
        rows.loc[rows["factual_class"] == "", "factual_class"] = None
        return encoder_metrics(rows)
