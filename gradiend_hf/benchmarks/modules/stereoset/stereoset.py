"""StereoSet intrasentence SS, LMS and ICAT as an `evaluate` metric (computed by
`gradiend_hf.benchmarks.stereoset_metrics`)."""

import datasets
import evaluate

from gradiend_hf.benchmarks.metrics import stereoset_metrics


_CITATION = """\
@inproceedings{nadeem-etal-2021-stereoset,
    title = "{S}tereo{S}et: Measuring stereotypical bias in pretrained language models",
    author = "Nadeem, Moin and Bethke, Anna and Reddy, Siva",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics",
    year = "2021",
    url = "https://aclanthology.org/2021.acl-long.416",
}
"""

_DESCRIPTION = """\
StereoSet's intrasentence scores: SS, the percentage of examples whose stereotypical sentence a model scores higher
than the anti-stereotypical one (ideal 50); LMS, the percentage of comparisons in which the stereotypical or
anti-stereotypical sentence beats the unrelated one (ideal 100); ICAT = LMS * min(SS, 100 - SS) / 50 (ideal 100).
SS and LMS are averaged over target terms, as in the StereoSet evaluation. Seeded bootstrap intervals, overall and per
domain.
"""

_KWARGS_DESCRIPTION = """
Args:
    stereotype_score (`list` of `float`): The model's score of each example's stereotypical sentence.
    anti_stereotype_score (`list` of `float`): The same for the anti-stereotypical sentence.
    unrelated_score (`list` of `float`): The same for the unrelated sentence.
    target (`list` of `str`): Each example's target term.
    bias_type (`list` of `str`): Each example's domain (gender, profession, race, religion).
    bootstrap_samples (`int`, *optional*, defaults to 1000), confidence (`float`, *optional*, defaults to 0.95),
    seed (`int`, *optional*, defaults to 0): Bootstrap settings.
Returns:
    overall (`dict`): `ss`, `lms`, `icat`, each with `value`, `ci_low`, `ci_high`, `n`.
    by_bias_type (`dict`): domain -> the same.
    num_examples (`int`): Number of examples.
Examples:
    >>> stereoset = evaluate.load(gradiend_hf.benchmarks.module_path("stereoset"))
    >>> stereoset.compute(stereotype_score=[0.3], anti_stereotype_score=[0.2], unrelated_score=[0.1],
    ...                   target=["nurse"], bias_type=["profession"], bootstrap_samples=0)["overall"]["ss"]["value"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StereoSet(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "stereotype_score": datasets.Value("float64"),
                    "anti_stereotype_score": datasets.Value("float64"),
                    "unrelated_score": datasets.Value("float64"),
                    "target": datasets.Value("string"),
                    "bias_type": datasets.Value("string"),
                }
            ),
            reference_urls=["https://github.com/moinnadeem/StereoSet"],
        )

    def _compute(
        self,
        stereotype_score,
        anti_stereotype_score,
        unrelated_score,
        target,
        bias_type,
        bootstrap_samples=1000,
        confidence=0.95,
        seed=0,
    ):
        return stereoset_metrics(
            stereotype_score,
            anti_stereotype_score,
            unrelated_score,
            target,
            bias_type,
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
