"""The MLM head example runs in its fast mode, offline, and compares both GRADIENDs."""

import importlib.util
from pathlib import Path


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlm_head_gender.py"


def test_mlm_head_example_fast(tmp_path):
    spec = importlib.util.spec_from_file_location("mlm_head_gender", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--fast", "--output-dir", str(tmp_path)])
    assert 0 <= report["mlm_head"]["accuracy"] <= 1 and report["mlm_head"]["eval_rows"] == 64
    for name in ("causal_lm_mlm_head", "causal_lm"):
        assert report[name]["correlation"] > 0.8, report
        assert set(report[name]["mean_by_class"]) == {"M", "F"}
        assert (tmp_path / name / "config.json").exists()
    assert (tmp_path / "mlm-head" / "model.safetensors").exists()
