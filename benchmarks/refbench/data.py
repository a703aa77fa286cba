"""The benchmark's he/she data and neutral sentences (deterministic, seed 0).

Feature rows: a first name, then later in the sentence `[MASK]` standing for the subject pronoun the name
determines, e.g. "Mary said that [MASK] would come to the meeting tomorrow." (factual "she", alternative "he").
Classes `M` (he, labelled +1) and `F` (she, -1). Names: the US-census 1990 first-name lists of the PyPI package
`names` 0.3.0; a name counts for a gender when it is at least 20 times as frequent there as in the other list, and
the 150 most frequent per gender are used. Names are split 120/15/15 into train/validation/test, so no name is in two
splits; 40 templates are shared by all splits. Rows per class: 1000 train, 125 validation, 125 test.

Neutral rows: 400 sentences from a small grammar with no pronoun and no first name.

This is the definition `shared/refbench/make_data.py` measured the reference with (same seed, same sequence of
random draws, hence the same rows), so the results stay comparable with its recorded runs.

Files (CSV, UTF-8, written atomically):
    gender_unified.csv       masked, factual, alternative, factual_class, alternative_class, label, split, name,
                             template_id  (gradiend-hf reads this one)
    gender_per_class_<C>.csv masked, split, <C>  (the reference's per-class format, one factual-token column)
    neutral.csv              text
    manifest.json            row counts
"""

from __future__ import annotations

import random
import re
from pathlib import Path


SEED = 0
NAMES_PER_GENDER = 150
NAMES_PER_SPLIT = {"train": 120, "validation": 15, "test": 15}
ROWS_PER_SPLIT = {"train": 1000, "validation": 125, "test": 125}  # per class
NUM_NEUTRAL = 400
FREQUENCY_RATIO = 20
CLASSES = {"M": ("he", 1), "F": ("she", -1)}  # class: (pronoun, label); M first, as the reference's target pair
CENSUS_FILES = {"M": "dist.male.first", "F": "dist.female.first"}
PRONOUNS = ("he", "she", "his", "her", "him", "hers", "himself", "herself")

TEMPLATES = (
    "{name} said that [MASK] would come to the meeting tomorrow.",
    "{name} called the office because [MASK] was running late.",
    "When {name} finished the report, [MASK] sent it to the whole team.",
    "{name} told us that [MASK] had already bought the tickets.",
    "After dinner, {name} announced that [MASK] was moving to Chicago.",
    "{name} was tired, so [MASK] went to bed early.",
    "I asked {name} whether [MASK] could help with the garden.",
    "{name} smiled because [MASK] had finally passed the exam.",
    "Yesterday {name} mentioned that [MASK] wanted a new bicycle.",
    "{name} opened the letter and [MASK] started to laugh.",
    "Although {name} was nervous, [MASK] gave a great speech.",
    "{name} missed the bus, so [MASK] walked to work.",
    "The teacher praised {name} because [MASK] had worked so hard.",
    "{name} promised that [MASK] would call back later.",
    "Before the game started, {name} said [MASK] felt confident.",
    "{name} looked at the map and [MASK] realized the road was closed.",
    "{name} loves music, and [MASK] plays the piano every evening.",
    "My neighbor {name} told me that [MASK] is training for a marathon.",
    "{name} could not find the keys, so [MASK] searched the whole house.",
    "When the phone rang, {name} hoped that [MASK] had got the job.",
    "{name} is a doctor, and [MASK] works at the city hospital.",
    "Everyone knows that {name} is honest, because [MASK] never lies.",
    "{name} wrote in the email that [MASK] would arrive on Monday.",
    "After the storm, {name} checked whether [MASK] still had power.",
    "{name} laughed so hard that [MASK] almost fell off the chair.",
    "Since {name} was hungry, [MASK] ordered a large pizza.",
    "{name} bought a new car last week, and [MASK] drives it everywhere.",
    "During the trip, {name} said that [MASK] missed home.",
    "{name} studied all night because [MASK] had an exam in the morning.",
    "Our manager {name} explained that [MASK] needed the numbers by Friday.",
    "{name} knocked on the door, but [MASK] got no answer.",
    "Once {name} saw the results, [MASK] called the lab again.",
    "{name} wanted to help, so [MASK] offered to cook dinner.",
    "In the interview, {name} explained why [MASK] had left the old company.",
    "{name} was born in Ohio, but [MASK] grew up in Texas.",
    "When {name} heard the news, [MASK] could not believe it.",
    "{name} likes to run, and [MASK] goes to the park every morning.",
    "My cousin {name} thinks that [MASK] will win the lottery one day.",
    "{name} forgot the umbrella, so [MASK] got wet in the rain.",
    "At the party, {name} said that [MASK] was happy to be there.",
)

NEUTRAL_SUBJECTS = (
    "The old bridge", "The city council", "The new library", "The small bakery on the corner",
    "The morning train", "The local museum", "The football club", "The village market",
    "The research team", "The weather station", "The public garden", "The school choir",
    "The harbor", "The mountain road", "The science fair", "The orchestra",
    "The hospital", "The farmers", "The new airport", "The students",
)  # fmt: skip
NEUTRAL_PREDICATES = (
    "attracted many visitors", "was mentioned in the local newspaper", "changed a lot",
    "became a popular topic of conversation", "received a generous donation",
    "was busier than usual", "opened a little later than planned", "made a surprising announcement",
    "was photographed by tourists", "stayed quiet", "got a fresh coat of paint",
    "was the reason for a long debate", "needed more volunteers", "looked better than ever",
    "won a regional award", "was covered in snow", "drew a large crowd",
    "published a short report", "was praised by the mayor", "surprised everyone",
)  # fmt: skip
NEUTRAL_TIMES = (
    "last week", "in the spring", "this morning", "after the storm", "during the summer",
    "on Sunday", "two years ago", "before the holidays", "at the end of the month", "yesterday",
)  # fmt: skip


def data_files(folder: Path) -> dict[str, Path]:
    """The files [`build_data`] writes into `folder`, by role."""
    files = {"unified": folder / "gender_unified.csv", "neutral": folder / "neutral.csv"}
    files.update({f"per_class_{c}": folder / f"gender_per_class_{c}.csv" for c in CLASSES})
    return files


def read_census(path: Path) -> dict[str, float]:
    """`{NAME: frequency}` of one census list, in rank order (lines: name, frequency, cumulative, rank)."""
    frequencies = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, frequency, *_ = line.split()
            frequencies[name] = float(frequency)
    return frequencies


def gendered_names(names_dir: Path) -> dict[str, list[str]]:
    """The most frequent names that are clearly of one gender (>= 20x as frequent as in the other list)."""
    lists = {c: read_census(names_dir / f) for c, f in CENSUS_FILES.items()}
    picked = {}
    for cls, own in lists.items():
        other = lists["F" if cls == "M" else "M"]
        clear = [name.title() for name, freq in own.items() if freq >= FREQUENCY_RATIO * other.get(name, 0.0)]
        picked[cls] = clear[:NAMES_PER_GENDER]
    if any(len(v) < NAMES_PER_GENDER for v in picked.values()) or set(picked["M"]) & set(picked["F"]):
        raise ValueError(f"the census lists in {names_dir} do not give {NAMES_PER_GENDER} clear names per gender")
    return picked


def feature_rows(names: dict[str, list[str]], rng: random.Random) -> list[dict]:
    """Rows of both classes; per class the names are shuffled into splits, then (name, template) pairs sampled."""
    rows = []
    for cls, (word, label) in CLASSES.items():
        other_cls = next(c for c in CLASSES if c != cls)
        pool = list(names[cls])
        rng.shuffle(pool)
        start = 0
        for split, count in NAMES_PER_SPLIT.items():
            split_names, start = pool[start : start + count], start + count
            pairs = [(name, t) for name in split_names for t in range(len(TEMPLATES))]
            for name, t in sorted(rng.sample(pairs, ROWS_PER_SPLIT[split]), key=lambda pair: (pair[1], pair[0])):
                rows.append(
                    {
                        "masked": TEMPLATES[t].format(name=name),
                        "factual": word,
                        "alternative": CLASSES[other_cls][0],
                        "factual_class": cls,
                        "alternative_class": other_cls,
                        "label": label,
                        "split": split,
                        "name": name,
                        "template_id": t,
                    }
                )
    return rows


def neutral_sentences(rng: random.Random) -> list[str]:
    """Sentences of subject + predicate + time, none with a pronoun."""
    combos = [(s, p, t) for s in NEUTRAL_SUBJECTS for p in NEUTRAL_PREDICATES for t in NEUTRAL_TIMES]
    texts = [f"{s} {p} {t}." for s, p, t in rng.sample(combos, NUM_NEUTRAL)]
    if any(set(re.findall(r"[a-z']+", text.lower())) & set(PRONOUNS) for text in texts):
        raise ValueError("a neutral sentence contains a pronoun")
    return texts


def build_data(folder: Path, names_dir: Path) -> dict[str, Path]:
    """Writes the data files (see the module docstring) into `folder`; returns them by role."""
    import pandas as pd

    from gradiend_hf.io import atomic_write_json, atomic_write_text

    rng = random.Random(SEED)  # one stream, feature rows first: the order of draws defines the data
    frame = pd.DataFrame(feature_rows(gendered_names(names_dir), rng))
    neutral = pd.DataFrame({"text": neutral_sentences(rng)})
    files = data_files(folder)
    atomic_write_text(files["unified"], frame.to_csv(index=False))
    for cls in CLASSES:
        own = frame[frame["factual_class"] == cls][["masked", "split", "factual"]].rename(columns={"factual": cls})
        atomic_write_text(files[f"per_class_{cls}"], own.to_csv(index=False))
    atomic_write_text(files["neutral"], neutral.to_csv(index=False))
    counts = frame.groupby(["factual_class", "split"]).size()
    atomic_write_json(
        folder / "manifest.json",
        {"seed": SEED, "rows": {f"{c}/{s}": int(n) for (c, s), n in counts.items()}, "neutral": len(neutral)},
    )
    print(f"[setup] data: {len(frame)} feature rows, {len(neutral)} neutral sentences in {folder}")
    return files
