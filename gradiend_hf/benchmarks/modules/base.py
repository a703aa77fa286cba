"""The one `evaluate.Metric` behind every shipped module: its `_compute` is the library function the reports use.

A module script (`<name>/<name>.py`) subclasses [`LibraryMetric`] and names its inputs and its function. Its texts
come from its folder, so they are written once: the description, inputs, outputs and examples from the module card
(`README.md`, the card evaluate shows on the Hub) and the BibTeX from `citation.bib`. evaluate takes the first
`EvaluationModule` class it finds in a module script, so a script imports this module
(`from gradiend_hf.benchmarks.modules import base`), never the class itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import datasets
import evaluate


def card_section(card: str, heading: str) -> str:
    """The text under a Markdown heading (e.g. `"## Metric Description"`) up to the next heading of its level or
    above; empty when the card has no such heading."""
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}\s*$(.*?)(?=^#{{1,{level}}} |\Z)", card, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


class LibraryMetric(evaluate.Metric):
    """An `evaluate` metric computed by a gradiend-hf function.

    Attributes:
        card_folder (`str`): The module's name: its folder holds `README.md` and `citation.bib`.
        input_types (`dict[str, str]`): Input name → `datasets.Value` dtype, in the order of the function's arguments.
        compute_function (`Callable`): Called with the inputs (positionally, in `input_types` order) and the compute
            keyword arguments (the bootstrap settings).

    (Not `features`, `description`, …: those are `evaluate.Metric`'s own properties, read from `_info`.)
    """

    card_folder: str = ""
    input_types: dict[str, str] = {}
    compute_function: Callable[..., dict]

    def _info(self) -> evaluate.MetricInfo:
        folder = resources.files(__package__).joinpath(self.card_folder)
        card = folder.joinpath("README.md").read_text(encoding="utf-8")
        inputs = "\n\n".join(card_section(card, f"### {part}") for part in ("Inputs", "Output Values", "Examples"))
        return evaluate.MetricInfo(
            description=card_section(card, "## Metric Description"),
            citation=folder.joinpath("citation.bib").read_text(encoding="utf-8"),
            inputs_description=inputs,
            features=datasets.Features({name: datasets.Value(dtype) for name, dtype in self.input_types.items()}),
            reference_urls=re.findall(r"^- (https?://\S+)$", card_section(card, "## Further References"), re.M),
        )

    def _compute(self, **kwargs) -> dict:
        inputs = [kwargs.pop(name) for name in self.input_types]
        return self.compute_function(*inputs, **kwargs)
