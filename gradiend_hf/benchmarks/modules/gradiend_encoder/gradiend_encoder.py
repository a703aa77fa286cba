"""GRADIEND encoder metrics as an `evaluate` metric (computed by `gradiend_hf.evaluation.metrics.encoder_metrics`)."""

import datasets
import evaluate
import pandas as pd

from gradiend_hf.evaluation.metrics import encoder_metrics


_CITATION = """\
@inproceedings{drechsel2026gradiend,
    title = "{GRADIEND}: Feature Learning within Neural Networks Exemplified through Biases",
    author = "Drechsel, Jonathan and Herbold, Steffen",
    booktitle = "International Conference on Learning Representations (ICLR)",
    year = "2026",
    url = "https://arxiv.org/abs/2502.01406",
}
"""

_DESCRIPTION = """\
How well a GRADIEND's encoder separates a feature's two classes: the Pearson correlation between each row's expected
encoding (+1 / -1 for the two classes, 0 for identity and neutral rows) and its encoding on the non-neutral rows,
ternary accuracy (boundaries at +-0.5), binary (sign) accuracy on the two classes, and the mean encoding per class.
"""

_KWARGS_DESCRIPTION = """
Args:
    encoding (`list` of `float`): Each row's (first) feature value.
    expected (`list` of `int`): The encoding a perfect GRADIEND gives the row: +1, -1 or 0.
    type (`list` of `str`): `training`, or a type containing `neutral` (neutral rows are left out of the correlation).
    factual_class (`list` of `str`): The class of the row's factual word (empty for neutral rows).
    factual (`list` of `str`): The row's factual word (empty for neutral rows).
Returns:
    correlation (`float`), accuracy (`float`), binary_accuracy (`float`), correlation_all, accuracy_all,
    correlation_target_classes, mean_by_class (`dict`), encoding_by_class, encoding_by_word, encoding_by_type,
    neutral_mean, num_rows: see `gradiend_hf.evaluation.metrics.encoder_metrics`.
Examples:
    >>> encoder = evaluate.load(gradiend_hf.benchmarks.module_path("gradiend_encoder"))
    >>> encoder.compute(encoding=[0.9, -0.8, 0.1], expected=[1, -1, 0], type=["training"] * 3,
    ...                 factual_class=["M", "F", "M"], factual=["he", "she", "he"])["binary_accuracy"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GradiendEncoder(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "encoding": datasets.Value("float64"),
                    "expected": datasets.Value("int64"),
                    "type": datasets.Value("string"),
                    "factual_class": datasets.Value("string"),
                    "factual": datasets.Value("string"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2502.01406"],
        )

    def _compute(self, encoding, expected, type, factual_class, factual):
        rows = pd.DataFrame(
            {
                "encoding": encoding,
                "expected": expected,
                "type": type,
                "factual_class": factual_class,
                "factual": factual,
            }
        )
        # Neutral rows have no class; an empty string stands for none in the evaluate table.
        rows.loc[rows["factual_class"] == "", "factual_class"] = None
        return encoder_metrics(rows)
