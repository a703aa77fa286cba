"""`evaluate` modules shipped inside the package, loadable offline:

```python
import evaluate
from gradiend_hf.benchmarks import module_path

crows = evaluate.load(module_path("crows_pairs"))
```

Each module's `_compute` calls the library function the reports use ([`crows_pairs_metrics`], …,
[`gradiend_hf.evaluation.metrics.encoder_metrics`]), so a module and a report can never disagree.
"""

from __future__ import annotations

from importlib import resources

from ..errors import BenchmarkError


MODULES = ("crows_pairs", "stereoset", "winobias", "gradiend_encoder")


def module_path(name: str) -> str:
    """The folder of a shipped `evaluate` module, for `evaluate.load(module_path(name))`.

    Args:
        name (`str`): `"crows_pairs"`, `"stereoset"`, `"winobias"` or `"gradiend_encoder"`.

    Raises:
        BenchmarkError: for any other name.
    """
    normalized = str(name).replace("-", "_").lower()
    if normalized not in MODULES:
        raise BenchmarkError(f"No evaluate module named {name!r}; choose from {', '.join(MODULES)}.")
    return str(resources.files(__package__).joinpath(normalized))
