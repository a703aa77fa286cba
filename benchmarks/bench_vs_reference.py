"""gradiend-hf against the reference package `gradiend==0.2.3`, side by side on the same workloads (issue 18).

For each workload the reference runs first (a child process in its own venv, using its `TextPredictionTrainer` /
`TrainingArguments` API), then gradiend-hf (a child process in this project's venv, public API only), on the same
model, data, steps, learning rate, evaluation cadence and evaluation sizes. Each child reports: time per training step
(median, first step and evaluating steps excluded), encoder evaluation time, decoder grid time (16 learning rates +
base), whole workflow time, peak RSS (the child's `ru_maxrss`), test correlation and the selected rewrite. The table
(`| workload | reference | gradiend-hf | ratio |`, ratio = reference / gradiend-hf) is printed and written with the raw
results under the results folder.

    # once: the reference venv (torch 2.13.0 + gradiend[recommended]==0.2.3), the models and the data (~3 min)
    python benchmarks/bench_vs_reference.py --setup
    # tiny BERT end to end (~6 min on an idle 2-core machine, the reference's run ~5 of them)
    python benchmarks/bench_vs_reference.py --workload tiny
    # SmolLM2-135M (~68 min idle: the reference's run alone is ~60 min), bert-base throughput (~5 min), or all
    python benchmarks/bench_vs_reference.py --workload smollm2
    # re-measure gradiend-hf only, against the stored reference result of the same workload settings
    python benchmarks/bench_vs_reference.py --workload tiny --sides gradiend-hf
    # the table again from the stored results
    python benchmarks/bench_vs_reference.py --workload tiny smollm2 --report-only

Folders: `--root` (default `~/.cache/gradiend-refbench` or `$GRADIEND_REFBENCH_ROOT`) holds `venv/` (`--venv`
overrides), `models/`, `data/`, `runs/` and `results/` (`--results` overrides). Timings on a shared machine are
noisy: every result records the load average before and after its run, and the notes under the table show them.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
# The checkout's gradiend_hf, and `refbench` beside this file. (Not `benchmarks.refbench`: pysbd, a dependency,
# installs a top-level `benchmarks` package that would shadow this folder.)
sys.path[:0] = [str(Path(__file__).resolve().parent), str(REPO)]

from refbench import report  # noqa: E402
from refbench.measure import RESULT_MARKER  # noqa: E402
from refbench.setup_env import BenchError, Layout, check_ready, setup  # noqa: E402
from refbench.workloads import OVERRIDABLE, WORKLOADS, Workload, resolve  # noqa: E402


SIDES = ("reference", "gradiend-hf")
RUNNERS = {"reference": "reference_runner.py", "gradiend-hf": "hf_runner.py"}
MODELS = ("tiny-bert", "bert-base-random", "smollm2-135m")


class OneLineParser(argparse.ArgumentParser):
    """Reports a bad flag as one line (`bench_vs_reference.py: error: …`) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def positive_or(word: str):
    """A positive int, or `word` (→ `None`: every row / no in-training evaluation)."""

    def parse(text: str):
        return None if text.lower() == word else positive(int)(text)

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="bench_vs_reference.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", action="store_true", help="create the reference venv, the models and the data")
    parser.add_argument(
        "--workload", nargs="+", choices=[*WORKLOADS, "all"], help="workload(s) to run: tiny, bertbase, smollm2, all"
    )
    parser.add_argument("--sides", choices=["both", *SIDES], default="both", help="which package(s) to run")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild the table from the stored results, run nothing"
    )
    parser.add_argument("--root", help="benchmark folder (default ~/.cache/gradiend-refbench)")
    parser.add_argument("--venv", help="the reference venv (default <root>/venv)")
    parser.add_argument("--results", help="results folder (default <root>/results)")
    parser.add_argument("--python", default=sys.executable, help="the project's Python (default: this one)")
    parser.add_argument(
        "--threads",
        type=positive(int),
        default=os.cpu_count(),
        help="torch threads of each run (default: all cores; 1 is steadier on a machine others are using)",
    )
    parser.add_argument("--timeout", type=positive(float), help="seconds after which a run is killed")
    sizes = parser.add_argument_group("workload overrides (applied to every selected workload)")
    sizes.add_argument("--steps", type=positive(int), default=argparse.SUPPRESS)
    sizes.add_argument("--learning-rate", type=positive(float), default=argparse.SUPPRESS)
    sizes.add_argument("--sentences-per-gradient", type=positive(int), default=argparse.SUPPRESS)
    sizes.add_argument("--eval-steps", type=positive_or("off"), default=argparse.SUPPRESS, help="int or 'off'")
    for flag, what in (
        ("train-eval-rows", "validation rows per class at each in-training evaluation"),
        ("encoder-rows", "test rows per class of the encoder evaluation"),
        ("decoder-rows", "test rows per class at each decoder grid point"),
        ("lms-texts", "neutral texts of the language-modelling score"),
    ):
        sizes.add_argument(f"--{flag}", type=positive_or("all"), default=argparse.SUPPRESS, help=f"{what} (or 'all')")
    args = parser.parse_args(argv)
    if not args.setup and not args.workload:
        parser.error("nothing to do: give --setup and/or --workload")
    if not Path(args.python).exists():
        parser.error(f"--python {args.python!r} does not exist")
    args.overrides = {name: getattr(args, name) for name in OVERRIDABLE if hasattr(args, name)}
    return args


def child_env(side: str, threads: int, layout: Layout) -> dict:
    """The environment of a run: offline, the same thread counts for both; each side sees only its own package."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(layout.root / "hf_home"),  # keeps what either package caches out of the user's Hub cache
        TOKENIZERS_PARALLELISM="false",
        TQDM_DISABLE="1",
        MPLBACKEND="Agg",
        PYTHONNOUSERSITE="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    if side == "gradiend-hf":
        # The checkout's gradiend_hf, not whichever one the venv has installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    else:
        env.pop("PYTHONPATH", None)
    return env


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the harness dies, so a killed benchmark leaves no
    run behind (a long reference run would otherwise go on for minutes before it next writes to the closed pipe)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the child ends at its next write instead


def run_child(command: list[str], env: dict, timeout: float | None) -> tuple[dict | None, int, float]:
    """Runs a runner; returns `(its result, exit code, its peak RSS in MB)`.

    The runner's output goes to stderr as it comes; the result line is taken out. `os.wait4` gives the resource usage
    of exactly this child, so its peak RSS is its own even when several runs happened in this process.
    """
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, text=True, bufsize=1, preexec_fn=die_with_parent
    )
    timer = threading.Timer(timeout, process.kill) if timeout else None
    if timer:
        timer.start()
    result = None
    try:
        for line in process.stdout:
            if line.startswith(RESULT_MARKER):
                result = json.loads(line[len(RESULT_MARKER) :])
            else:
                sys.stderr.write(line)
    finally:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if timer:
            timer.cancel()
    return result, process.returncode, usage.ru_maxrss / 1024


def run_side(side: str, workload: Workload, layout: Layout, models: dict, args) -> dict:
    """One package on one workload; the result (or the error) with the machine's load around it."""
    spec = {
        "workload": workload.to_dict(),
        "model_dir": models[workload.model],
        "data_dir": str(layout.data),
        "run_dir": str(layout.runs / f"{side}-{workload.name}"),
        "threads": args.threads,
    }
    python = str(layout.python) if side == "reference" else args.python
    command = [python, str(Path(__file__).resolve().parent / "refbench" / RUNNERS[side]), json.dumps(spec)]
    print(f"\n=== {workload.name}: {side} ===", flush=True)
    load_before, start = os.getloadavg(), time.perf_counter()
    result, code, peak = run_child(command, child_env(side, args.threads, layout), args.timeout)
    if code != 0 or result is None:
        why = " (killed by --timeout)" if args.timeout and code == -signal.SIGKILL else ""
        result = {"error": f"the {side} run of {workload.name} exited with code {code}{why}; its output is above"}
        print(f"[bench] {result['error']}", file=sys.stderr)
    result.update(
        workload_spec=workload.to_dict(),
        peak_rss_mb=round(peak, 1) if code == 0 else None,
        child_seconds=round(time.perf_counter() - start, 2),
        finished=time.strftime("%Y-%m-%d %H:%M"),
        machine={
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
    return result


def stored(results: Path, workload: Workload, side: str) -> dict | None:
    """An earlier result of `side` on exactly these workload settings, or `None`."""
    try:
        result = json.loads((results / f"{workload.name}.{side}.json").read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("workload_spec") == workload.to_dict() and "error" not in result else None


def run_workloads(
    workloads: list[Workload], sides: tuple[str, ...], layout: Layout, results: Path, args
) -> list[dict]:
    """Runs `sides` on every workload, reference first, storing each result as it comes; the side not run comes
    from the stored results (same workload settings only)."""
    from gradiend_hf.io import atomic_write_json

    models = check_ready(layout, sorted({w.model for w in workloads})) if sides else {}
    entries = []
    for workload in workloads:
        entry = {"workload": workload.to_dict()}
        for side in SIDES:
            if side in sides:
                entry[side] = run_side(side, workload, layout, models, args)
                atomic_write_json(results / f"{workload.name}.{side}.json", entry[side])
            else:
                entry[side] = stored(results, workload, side)
        entries.append(entry)
    return entries


def write_report(entries: list[dict], results: Path) -> Path:
    """Prints the table and writes it (markdown, and JSON with the raw results) as `comparison-<workloads>.*`."""
    from gradiend_hf.io import atomic_write_json, atomic_write_text

    table = report.comparison(entries)
    text = report.markdown(table["table"], report.notes(entries))
    stem = results / ("comparison-" + "+".join(entry["workload"]["name"] for entry in entries))
    atomic_write_json(stem.with_name(stem.name + ".json"), {"rows": table["rows"], "runs": entries})
    atomic_write_text(stem.with_name(stem.name + ".md"), text)
    print("\n" + text + f"\nwritten to {stem}.md and .json")
    return stem


def run(args) -> int:
    """`--setup`, then the workloads and the report; returns the exit code (1 when a run failed)."""
    layout = Layout.at(args.root, args.venv)
    if args.setup:
        setup(layout, list(MODELS))
    if not args.workload:
        return 0
    workloads = resolve(args.workload, args.overrides)
    results = Path(args.results).expanduser() if args.results else layout.results
    sides = () if args.report_only else SIDES if args.sides == "both" else (args.sides,)
    entries = run_workloads(workloads, sides, layout, results, args)
    write_report(entries, results)
    failed = any("error" in (entry.get(side) or {}) for entry in entries for side in sides)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        code = run(args)
    except BenchError as error:
        print(f"bench_vs_reference.py: error: {error}", file=sys.stderr)
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
