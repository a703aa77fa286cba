"""StereoSet intrasentence SS, LMS and ICAT as an `evaluate` metric (computed by
`gradiend_hf.benchmarks.stereoset_metrics`)."""

from gradiend_hf.benchmarks.metrics import stereoset_metrics
from gradiend_hf.benchmarks.modules import base


class StereoSet(base.LibraryMetric):
    card_folder = "stereoset"
    input_types = dict.fromkeys(("stereotype_score", "anti_stereotype_score", "unrelated_score"), "float64") | {
        "target": "string",
        "bias_type": "string",
    }
    compute_function = staticmethod(stereoset_metrics)
