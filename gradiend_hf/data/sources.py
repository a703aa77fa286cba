"""Feature rows and neutral text from where users keep them: built-in names, local files, Hub datasets."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from ..errors import GradiendFileNotFoundError
from ..loading import hub_errors
from .builtin_datasets import list_builtin, load_builtin
from .classes import FeatureClasses
from .errors import FeatureDataError, UnknownBuiltinError
from .evaluation_only import refuse_evaluation_only
from .feature_dataset import make_feature_dataset
from .neutral import make_neutral_dataset
from .schema import FEATURE_COLUMNS, MULTICLASS_COLUMNS


_FILE_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


def _load_any(source: str) -> Dataset | DatasetDict:
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
            return datasets.load_from_disk(str(path))
        files = sorted(p for p in (path.iterdir() if path.is_dir() else [path]) if p.suffix in _FILE_FORMATS)
        if not files:
            raise FeatureDataError(
                f"{source!r} holds no text, CSV, JSON(L) or parquet file (nor a dataset saved with "
                "`save_to_disk`); give one of those."
            )
        formats = {_FILE_FORMATS[p.suffix] for p in files}
        if len(formats) > 1:
            raise FeatureDataError(f"{source!r} mixes file formats {sorted(formats)}; keep one format per dataset.")
        for file in files:
            _check_readable(file)
        if formats == {"text"}:  # plain lines need no datasets cache
            lines = [line for p in files for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
            return Dataset.from_dict({"text": lines})
        try:
            return datasets.load_dataset(formats.pop(), data_files=[str(p) for p in files], split="train")
        except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
            raise FeatureDataError(f"Cannot read {source!r} as {_FILE_FORMATS[files[0].suffix]}: {error}") from None
    looks_local = source.startswith((".", "/", "~")) or source.count("/") > 1 or Path(source).suffix in _FILE_FORMATS
    if looks_local:
        raise GradiendFileNotFoundError(f"No such file or folder: {source!r}.")
    if "/" not in source:
        # A bare name is a built-in or a typo of one (Hub datasets have an owner: "owner/name").
        close = difflib.get_close_matches(source, list_builtin(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownBuiltinError(
            f"{source!r} is neither a built-in dataset ({', '.join(list_builtin())}) nor a file or folder; {hint}"
            "Hub datasets are named `owner/name`."
        )
    with hub_errors(source, "dataset"):
        try:
            return datasets.load_dataset(source)  # a Hub dataset id
        except datasets.exceptions.DatasetNotFoundError as error:
            raise FeatureDataError(f"There is no dataset {source!r} on the Hub (or it is private): {error}") from None


def _check_readable(file: Path) -> None:
    """Refuses a binary or non-UTF-8 file with its name, before `datasets` fails on it with a long traceback."""
    if file.suffix == ".parquet":
        return
    with open(file, "rb") as handle:
        head = handle.read(1 << 16)
    if b"\x00" in head:
        raise FeatureDataError(f"{str(file)!r} looks binary (it has NUL bytes); give a UTF-8 text, CSV or JSON file.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise FeatureDataError(
                f"{str(file)!r} is not UTF-8 text (byte {error.start}); convert it, e.g. `iconv -t utf-8`."
            ) from None


def _texts(data: Dataset | DatasetDict, text_column: str, source: str) -> list[str]:
    parts = list(data.values()) if isinstance(data, DatasetDict) else [data]
    texts = []
    for part in parts:
        if text_column not in part.column_names:
            raise FeatureDataError(
                f"{source!r} has no column {text_column!r} (columns: {part.column_names}); set `text_column`."
            )
        texts.extend(t for t in part[text_column] if isinstance(t, str))
    return texts


def load_feature_data(
    source: str,
    classes: Mapping[str, Sequence[str]] | None = None,
    text_column: str = "text",
    min_left_context_words: int = 0,
    max_rows_per_class: int | None = None,
    split_by: str = "row",
    seed: int = 0,
    paired: bool = False,
    pairs: Sequence[Sequence[str] | Mapping[str, str]] | None = None,
) -> DatasetDict:
    """Feature rows with train/validation/test splits from a built-in name, local files or a Hub dataset.

    Data that already has the feature columns (`masked`, `factual`, …, or `alternatives` for three or more classes)
    and the three splits is used as it is; raw text (a `text` column, or `.txt` lines) is turned into rows with
    [`make_feature_dataset`], `classes` and, for paired word forms, `paired` or `pairs` (see there).

    Raises:
        FeatureDataError: for unreadable sources (binary, not UTF-8, not a dataset), an unknown built-in name (with
            the closest one), a missing text column, raw text without `classes`, or `paired`/`pairs` for data that
            already has its rows (its alternatives are fixed).
        GradiendFileNotFoundError: for a local path that does not exist.
        EvaluationOnlyDataError: for CrowS-Pairs (an evaluation-only benchmark).
    """
    refuse_evaluation_only(source)
    pairing_given = paired or pairs is not None
    if source in list_builtin():
        data = load_builtin(source)
        if not isinstance(data, DatasetDict):
            raise FeatureDataError(f"The built-in {source!r} is neutral text, not feature rows.")
        _refuse_pairing(pairing_given, source)
        return data
    if classes:
        FeatureClasses.from_mapping(classes)  # bad class words fail before any text is read
    data = _load_any(source)
    columns = set((next(iter(data.values())) if isinstance(data, DatasetDict) else data).column_names)
    if set(FEATURE_COLUMNS) <= columns or set(MULTICLASS_COLUMNS) <= columns:
        if isinstance(data, DatasetDict) and {"train", "validation", "test"} <= set(data):
            _refuse_pairing(pairing_given, source)
            return data
        raise FeatureDataError(f"{source!r} has feature columns but not the splits train, validation and test.")
    if not classes:
        raise FeatureDataError(
            f"{source!r} is raw text; give `classes` (class name → words, e.g. {{'M': ['he'], 'F': ['she']}})."
        )
    return make_feature_dataset(
        _texts(data, text_column, source),
        classes,
        min_left_context_words=min_left_context_words,
        max_rows_per_class=max_rows_per_class,
        split_by=split_by,
        seed=seed,
        paired=paired,
        pairs=pairs,
    )


def _refuse_pairing(pairing_given: bool, source: str) -> None:
    # Rows that exist already carry their alternative words; silently ignoring a pairing would train on another
    # feature than the one asked for.
    if pairing_given:
        raise FeatureDataError(
            f"{source!r} already has feature rows with their alternatives; `paired`/`pairs` apply only to raw text "
            "turned into rows with `classes`. Drop them, or give raw text."
        )


def load_neutral_data(
    source: str, exclude_words: Sequence[str], text_column: str = "text", max_rows: int | None = None, seed: int = 0
) -> Dataset:
    """Neutral sentences (a `text` column) without any of `exclude_words`, from a built-in name, files or the Hub."""
    if source in list_builtin():
        data = load_builtin(source)
        if isinstance(data, DatasetDict):
            raise FeatureDataError(f"The built-in {source!r} is a feature dataset, not neutral text.")
        texts = list(data["text"])
    else:
        texts = _texts(_load_any(source), text_column, source)
    return make_neutral_dataset(texts, exclude_words, max_rows=max_rows, seed=seed)
