"""Timing and memory helpers shared by both runners.

Standard library and psutil only: the reference runner imports this inside the reference's venv, where gradiend-hf
is not installed. The runners never write files themselves; they print their result as one JSON line after
[`RESULT_MARKER`], and the parent process stores it (through `gradiend_hf.io`).
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import sys
import threading
import time
from contextlib import contextmanager


RESULT_MARKER = "BENCH-RESULT-JSON: "


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def max_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples this process's RSS in a daemon thread, so each phase can report its own peak."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def reset(self) -> None:
        self.peak = rss_mb()

    def stop(self) -> None:
        self._stop.set()


class Recorder:
    """Collects a runner's result: per-phase wall time and sampled peak RSS, and whatever the runner adds."""

    def __init__(self, side: str, workload: str):
        self.started = time.perf_counter()
        self.sampler = RssSampler()
        self.out = {"side": side, "workload": workload, "phases": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    @contextmanager
    def phase(self, name: str):
        """Times the block as phase `name`; an exception is recorded and re-raised."""
        self.sampler.reset()
        start = time.perf_counter()
        record = {}
        try:
            yield record
        except BaseException as error:
            record["error"] = f"{type(error).__name__}: {error}"[:2000]
            raise
        finally:
            record.update(seconds=round(time.perf_counter() - start, 4), peak_rss_mb=round(self.sampler.peak, 1))
            self.out["phases"][name] = record
            print(f"[{self.out['side']}] {name}: {record['seconds']:.2f} s", file=sys.stderr, flush=True)

    def emit(self) -> None:
        """Prints the result line the parent reads."""
        self.sampler.stop()
        self.out["runner_seconds"] = round(time.perf_counter() - self.started, 4)
        self.out["self_max_rss_mb"] = round(max_rss_mb(), 1)
        print(RESULT_MARKER + json.dumps(jsonable(self.out)), flush=True)


class StepClock:
    """Start times of training steps, and the steps whose end ran an evaluation.

    The interval from the start of step `s` to the start of step `s + 1` is one whole training step (its gradient,
    its GRADIEND update and its callbacks). Intervals of steps that evaluated are not training steps; the first step
    is excluded too (optimizer state allocation, first-call warm-up).
    """

    def __init__(self):
        self.begins: dict[int, float] = {}
        self.eval_steps: set[int] = set()

    def begin(self, step: int) -> None:
        self.begins[step] = time.perf_counter()

    def evaluated(self, step: int) -> None:
        self.eval_steps.add(step)

    def summary(self) -> dict:
        steps = sorted(self.begins)
        first = steps[0] if steps else None
        clean = [
            self.begins[s + 1] - self.begins[s]
            for s in steps
            if s + 1 in self.begins and s != first and s not in self.eval_steps
        ]
        return {
            "steps_seen": len(steps),
            "clean_intervals": len(clean),
            "step_seconds_median": statistics.median(clean) if clean else None,
            "step_seconds_min": min(clean) if clean else None,
            "step_seconds_max": max(clean) if clean else None,
            "eval_steps": sorted(self.eval_steps),
        }


def jsonable(value):
    """`value` with numpy/torch scalars, tuples and non-string keys turned into plain JSON; NaN/inf become None."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return jsonable(value.item())
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)


def set_threads(threads: int) -> None:
    """Pins torch's intra-op threads (the environment was already set by the parent before torch was imported)."""
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the reference's train() would otherwise setdefault it to 1


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, or `None`."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
