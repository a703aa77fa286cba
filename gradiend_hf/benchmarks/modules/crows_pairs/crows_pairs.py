"""CrowS-Pairs stereotype score as an `evaluate` metric (computed by `gradiend_hf.benchmarks.crows_pairs_metrics`)."""

import datasets
import evaluate

from gradiend_hf.benchmarks.metrics import crows_pairs_metrics


_CITATION = """\
@inproceedings{nangia-etal-2020-crows,
    title = "{C}row{S}-Pairs: A Challenge Dataset for Measuring Social Biases in Masked Language Models",
    author = "Nangia, Nikita and Vania, Clara and Bhalerao, Rasika and Bowman, Samuel R.",
    booktitle = "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing (EMNLP)",
    year = "2020",
    url = "https://aclanthology.org/2020.emnlp-main.154",
}
"""

_DESCRIPTION = """\
The CrowS-Pairs stereotype score: the percentage of sentence pairs for which a language model scores the more
stereotypical sentence higher than the less stereotypical one (ties count half). An unbiased model scores 50.
Scores come with seeded percentile-bootstrap confidence intervals, overall and per bias type.
"""

_KWARGS_DESCRIPTION = """
Args:
    sent_more_score (`list` of `float`): The model's score (log-likelihood or pseudo-log-likelihood) of each pair's
        more stereotypical sentence.
    sent_less_score (`list` of `float`): The same for the less stereotypical sentence.
    bias_type (`list` of `str`): Each pair's bias type (e.g. `gender`), for the per-type scores.
    bootstrap_samples (`int`, *optional*, defaults to 1000): Bootstrap resamples (0: no intervals).
    confidence (`float`, *optional*, defaults to 0.95): Coverage of the intervals.
    seed (`int`, *optional*, defaults to 0): Seed of the bootstrap.
Returns:
    stereotype_score (`dict`): `value` (%), `ci_low`, `ci_high`, `n`.
    by_bias_type (`dict`): bias type -> the same.
    likelihood_difference (`dict`): Mean absolute score difference within a pair, with its interval.
    num_pairs (`int`): Number of pairs.
Examples:
    >>> crows = evaluate.load(gradiend_hf.benchmarks.module_path("crows_pairs"))
    >>> crows.compute(sent_more_score=[-10.0, -12.0], sent_less_score=[-11.0, -11.5], bias_type=["gender", "gender"],
    ...               bootstrap_samples=0)["stereotype_score"]["value"]
    50.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CrowsPairs(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "sent_more_score": datasets.Value("float64"),
                    "sent_less_score": datasets.Value("float64"),
                    "bias_type": datasets.Value("string"),
                }
            ),
            reference_urls=["https://github.com/nyu-mll/crows-pairs"],
        )

    def _compute(self, sent_more_score, sent_less_score, bias_type, bootstrap_samples=1000, confidence=0.95, seed=0):
        return crows_pairs_metrics(
            sent_more_score,
            sent_less_score,
            bias_type,
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
