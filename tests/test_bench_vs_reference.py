"""The side-by-side benchmark's own logic (table, ratios, step timing, flags, stored results) on fabricated results.

Nothing here needs the reference venv or runs a model.
"""

import json
import sys
from pathlib import Path

import pytest


# The harness lives in benchmarks/, which is not a package (pysbd installs a top-level `benchmarks` of its own).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_vs_reference as bench  # noqa: E402
from refbench import measure, report, workloads  # noqa: E402


def fake_result(side, step, encoder, grid, workflow, rss_mb, correlation, ff, lr, rows_by_class, encoder_rows=900):
    return {
        "side": side,
        "steps": {"step_seconds_median": step},
        "phases": {"encoder_eval": {"seconds": encoder}, "decoder_eval": {"seconds": grid}},
        "workflow_seconds": workflow,
        "peak_rss_mb": rss_mb,
        "gradiend_inputs": 2053376,
        "encoder": {"correlation": correlation, "rows": encoder_rows},
        "decoder": {
            "feature_factor": ff,
            "learning_rate": lr,
            "rows_by_class": rows_by_class,
            "lms_texts": 400,
            "grid_points": 17,
        },
    }


@pytest.fixture
def tiny_entry():
    reference = fake_result("reference", 0.918, 61.6, 12.4, 230.0, 1857.0, 0.99999, -1.0, 50.0, {"M": 125})
    ours = fake_result("gradiend-hf", 0.0459, 4.4, 11.8, 31.0, 1113.0, 0.99998, -1.0, 50.0, {"M": 125, "F": 125})
    return {"workload": workloads.WORKLOADS["tiny"].to_dict(), "reference": reference, "gradiend-hf": ours}


def test_ratio_is_reference_over_ours_and_undefined_without_both():
    assert report.ratio(10.0, 2.0) == 5.0
    assert report.ratio(None, 2.0) is None
    assert report.ratio(1.0, 0.0) is None
    assert report.ratio(float("inf"), 1.0) is None


@pytest.mark.parametrize(
    ("value", "text"), [(20.0, "20×"), (1.0513, "1.05×"), (7.52, "7.52×"), (62.8, "62.8×"), (153.2, "153×")]
)
def test_format_ratio(value, text):
    assert report.format_ratio(value) == text
    assert report.format_ratio(None) == "–"


def test_formats_of_seconds_and_memory():
    assert report.format_seconds(0.04351) == "0.0435 s"
    assert report.format_seconds(61.63) == "61.6 s"
    assert report.format_seconds(1329.4) == "1329 s"
    assert report.format_mb(1113.0) == "1113 MB"
    assert report.format_mb(15155.2) == "14.8 GB"
    assert report.format_seconds(None) == report.format_mb(None) == "–"


def test_tiny_table_rows(tiny_entry):
    rows = report.workload_rows(tiny_entry["workload"], tiny_entry["reference"], tiny_entry["gradiend-hf"])
    by_metric = {row.metric.split(" (")[0]: row for row in rows}
    assert list(by_metric) == [
        "time per training step",
        "encoder evaluation",
        "decoder grid",
        "whole workflow",
        "peak RSS",
        "GRADIEND inputs",
        "test correlation",
        "selected rewrite",
    ]
    step = by_metric["time per training step"]
    assert (step.reference, step.ours, step.ratio) == ("0.918 s", "0.0459 s", "20×")
    assert step.ratio_value == pytest.approx(20.0)
    assert by_metric["peak RSS"].ratio_value == pytest.approx(1857 / 1113)
    # The counts both sides agree on are shown once, the ones they do not as reference / ours.
    assert "900 rows" in next(r.metric for r in rows if r.metric.startswith("encoder"))
    grid = next(r.metric for r in rows if r.metric.startswith("decoder grid"))
    assert "17 points" in grid and "125 / 250 rows" in grid and "400 LMS texts" in grid
    rewrite = by_metric["selected rewrite"]
    assert (rewrite.reference, rewrite.ours, rewrite.ratio) == ("ff -1, lr 50", "ff -1, lr 50", "")
    assert by_metric["test correlation"].ours == "1.0000"
    assert by_metric["GRADIEND inputs"].reference == "2,053,376"


def test_throughput_workload_has_no_evaluation_rows():
    entry = {"workload": workloads.WORKLOADS["bertbase"].to_dict()}
    reference = {"steps": {"step_seconds_median": 22.1}, "workflow_seconds": 250.0, "peak_rss_mb": 10341.0}
    ours = {"steps": {"step_seconds_median": 2.11}, "workflow_seconds": 30.0, "self_max_rss_mb": 6600.0}
    rows = report.workload_rows(entry["workload"], reference, ours)
    names = [r.metric.split(" (")[0] for r in rows]
    assert names == ["time per training step", "whole workflow", "peak RSS", "GRADIEND inputs"]
    assert rows[2].ours == "6.4 GB"  # falls back to the child's own ru_maxrss


def test_missing_side_gives_dashes_not_errors(tiny_entry):
    rows = report.workload_rows(tiny_entry["workload"], tiny_entry["reference"], None)
    step = rows[0]
    assert (step.ours, step.ratio, step.ratio_value) == ("–", "–", None)
    assert rows[-1].ours == "–"


def test_markdown_and_json_shapes(tiny_entry):
    table = report.comparison([tiny_entry])
    text = report.markdown(table["table"], ["- a note"])
    lines = text.splitlines()
    assert lines[0] == "| workload | reference | gradiend-hf | ratio |"
    assert lines[2].startswith("| tiny: time per training step")
    assert lines[-1] == "- a note"
    assert len(table["rows"]) == 8 and json.dumps(table["rows"])  # plain JSON


def test_step_clock_excludes_first_and_evaluating_steps():
    clock = measure.StepClock()
    starts = {1: 0.0, 2: 5.0, 3: 6.0, 4: 7.0, 5: 17.0, 6: 18.0}  # step 1 slow (warm-up), step 4 evaluated
    clock.begins.update(starts)
    clock.evaluated(0)
    clock.evaluated(4)
    summary = clock.summary()
    assert summary["clean_intervals"] == 3  # steps 2, 3 and 5; step 6 has no end
    assert summary["step_seconds_median"] == pytest.approx(1.0)
    assert summary["step_seconds_max"] == pytest.approx(1.0)


def test_jsonable_turns_non_finite_into_null():
    assert measure.jsonable({1.0: float("nan"), "x": (1, float("inf"))}) == {"1.0": None, "x": [1, None]}


def test_resolve_applies_overrides_to_every_workload():
    picked = workloads.resolve(["all"], {"steps": 3, "encoder_rows": None})
    assert [w.name for w in picked] == list(workloads.WORKLOADS)
    assert {w.steps for w in picked} == {3}
    assert all(w.encoder_rows is None for w in picked)
    with pytest.raises(ValueError):
        workloads.resolve(["tiny"], {"model": "x"})


def test_flags(capsys):
    args = bench.parse_args(["--workload", "tiny", "--steps", "5", "--decoder-rows", "all", "--eval-steps", "off"])
    assert args.overrides == {"steps": 5, "eval_steps": None, "decoder_rows": None}
    for bad in (["--workload", "huge"], ["--workload", "tiny", "--steps", "0"], []):
        with pytest.raises(SystemExit) as raised:
            bench.parse_args(bad)
        assert raised.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err


def test_stored_result_only_for_the_same_settings(tmp_path):
    tiny = workloads.WORKLOADS["tiny"]
    path = tmp_path / "tiny.reference.json"
    path.write_text(json.dumps({"workload_spec": tiny.to_dict(), "steps": {}}))
    assert bench.stored(tmp_path, tiny, "reference") is not None
    other = workloads.resolve(["tiny"], {"steps": 7})[0]
    assert bench.stored(tmp_path, other, "reference") is None
    assert bench.stored(tmp_path, tiny, "gradiend-hf") is None


def test_child_env_isolates_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    layout = bench.Layout.at(tmp_path)
    reference = bench.child_env("reference", 2, layout)
    ours = bench.child_env("gradiend-hf", 2, layout)
    assert "PYTHONPATH" not in reference  # the reference must never see gradiend-hf
    assert ours["PYTHONPATH"].split(":")[0] == str(bench.REPO)
    assert reference["OMP_NUM_THREADS"] == ours["OMP_NUM_THREADS"] == "2"
    assert reference["HF_HUB_OFFLINE"] == "1"


def test_report_only_rebuilds_the_table_from_stored_results(tmp_path, tiny_entry, capsys):
    for side in ("reference", "gradiend-hf"):
        result = dict(tiny_entry[side], workload_spec=tiny_entry["workload"], machine={"threads": 1, "cpu_count": 2})
        (tmp_path / f"tiny.{side}.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit) as raised:
        bench.main(["--workload", "tiny", "--report-only", "--root", str(tmp_path), "--results", str(tmp_path)])
    assert raised.value.code == 0
    text = (tmp_path / "comparison-tiny.md").read_text()
    assert "| tiny: time per training step (8 sentences, median of 100 steps) | 0.918 s | 0.0459 s | 20× |" in text
    assert "tiny / reference: 2 CPUs, 1 thread" in text
    assert json.loads((tmp_path / "comparison-tiny.json").read_text())["rows"][0]["ratio"] == "20×"
    assert text in capsys.readouterr().out


def test_missing_setup_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(["--workload", "tiny", "--root", str(tmp_path)])
    assert raised.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run with --setup first" in err
