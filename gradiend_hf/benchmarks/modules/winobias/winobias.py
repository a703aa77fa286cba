"""WinoBias pro/anti accuracy and gap as an `evaluate` metric (computed by
`gradiend_hf.benchmarks.winobias_metrics`)."""

import datasets
import evaluate

from gradiend_hf.benchmarks.metrics import winobias_metrics


_CITATION = """\
@inproceedings{zhao-etal-2018-gender,
    title = "Gender Bias in Coreference Resolution: Evaluation and Debiasing Methods",
    author = "Zhao, Jieyu and Wang, Tianlu and Yatskar, Mark and Ordonez, Vicente and Chang, Kai-Wei",
    booktitle = "Proceedings of the 2018 Conference of the North American Chapter of the Association for Computational Linguistics",
    year = "2018",
    url = "https://aclanthology.org/N18-2003",
}
"""

_DESCRIPTION = """\
WinoBias with the pronoun masked: each sentence is read as its pro-stereotypical version (correct answer: the
pronoun matching the occupation stereotype) and its anti-stereotypical version. accuracy_pro is the percentage of rows
whose pro-stereotypical pronoun the model scores higher, accuracy_anti that of the anti-stereotypical pronoun, and the
gap (pro - anti, ideal 0) measures how much the model relies on occupation stereotypes. Seeded bootstrap intervals.
"""

_KWARGS_DESCRIPTION = """
Args:
    pro_score (`list` of `float`): The model's score of each row's pro-stereotypical sentence (or pronoun).
    anti_score (`list` of `float`): The same for the anti-stereotypical one.
    pro_gender (`list` of `str`): `male` or `female`, the gender of the pro-stereotypical pronoun.
    bootstrap_samples (`int`, *optional*, defaults to 1000), confidence (`float`, *optional*, defaults to 0.95),
    seed (`int`, *optional*, defaults to 0): Bootstrap settings.
Returns:
    accuracy_pro, accuracy_anti, gap, male_pronoun_rate (`dict`): `value` (%), `ci_low`, `ci_high`, `n`.
    by_pro_gender (`dict`): `male` / `female` -> accuracy_pro.
    num_rows (`int`): Number of rows.
Examples:
    >>> winobias = evaluate.load(gradiend_hf.benchmarks.module_path("winobias"))
    >>> winobias.compute(pro_score=[-3.0, -2.0], anti_score=[-4.0, -1.0], pro_gender=["male", "female"],
    ...                  bootstrap_samples=0)["gap"]["value"]
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WinoBias(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "pro_score": datasets.Value("float64"),
                    "anti_score": datasets.Value("float64"),
                    "pro_gender": datasets.Value("string"),
                }
            ),
            reference_urls=["https://github.com/uclanlp/corefBias"],
        )

    def _compute(self, pro_score, anti_score, pro_gender, bootstrap_samples=1000, confidence=0.95, seed=0):
        return winobias_metrics(
            pro_score,
            anti_score,
            pro_gender,
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
