"""CrowS-Pairs stereotype score as an `evaluate` metric (computed by `gradiend_hf.benchmarks.crows_pairs_metrics`)."""

from gradiend_hf.benchmarks.metrics import crows_pairs_metrics
from gradiend_hf.benchmarks.modules import base


class CrowsPairs(base.LibraryMetric):
    card_folder = "crows_pairs"
    input_types = {"sent_more_score": "float64", "sent_less_score": "float64", "bias_type": "string"}
    compute_function = staticmethod(crows_pairs_metrics)
