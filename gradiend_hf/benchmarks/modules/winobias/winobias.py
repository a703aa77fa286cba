"""WinoBias pro/anti accuracy and gap as an `evaluate` metric (computed by
`gradiend_hf.benchmarks.winobias_metrics`)."""

from gradiend_hf.benchmarks.metrics import winobias_metrics
from gradiend_hf.benchmarks.modules import base


class WinoBias(base.LibraryMetric):
    card_folder = "winobias"
    input_types = {"pro_score": "float64", "anti_score": "float64", "pro_gender": "string"}
    compute_function = staticmethod(winobias_metrics)
