"""Comparing GRADIENDs of one base model: how similar are the weights, top-k sets and encodings of two features?

- [`similarity_matrix`]: pairwise cosine (|cos| or signed) and Spearman rank correlation of the weights of one part
  (`encoder-weight`, `decoder-weight`, `decoder-bias`, `decoder-sum`), top-k overlap and mass overlap (method.md §6),
  as a `pandas.DataFrame` indexed by GRADIEND name.
- [`cross_encoding_matrix`]: each GRADIEND's mean encoding on each feature's test classes.
- [`gradiend_hf.transition_encoding.transition_encoding_matrix`]: each GRADIEND's mean encoding of every transition
  of a feature with more classes (identity transitions too).
- [`topk_sets`], [`topk_locations`]: the sets behind the overlaps and where the top weights sit (layer, module), for
  the figures in [`gradiend_hf.comparison_plots`].

Everything is computed one base parameter at a time: the cosine accumulates per-parameter Gram matrices, top-k sets
are chosen with [`gradiend_hf.topk.select_topk`] (no concatenation). Only the full Spearman correlation
(`measure="spearman"` with `k=None`) needs every entry at once, because ranks are global: it holds one float32 vector of
all compared entries per GRADIEND (pass `k` to rank only the union of two GRADIENDs' top-k entries instead).

Coordinates: GRADIENDs are compared entry by entry over the parameters they were selected on (for a pruned GRADIEND
the selection it was pruned from; the entries it dropped count as 0, which is what it reads and writes there). When
the selections differ, `params="shared"` (the default) compares only the parameters all of them share, with a
warning; `params="strict"` raises instead.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from .errors import GradiendError
from .evaluation.rows import check_usable, resolve_split, sample_by_class
from .gradiend_modules import escape_parameter_name
from .gradients import encode_texts
from .importance import IMPORTANCE_PARTS
from .objectives import gradiend_objective
from .topk import resolve_k, select_topk
from .training_data import feature_classes_of


MEASURES = ("cosine", "cosine_signed", "spearman", "spearman_signed", "topk_overlap", "mass_overlap")
DEFAULT_PART = {"cosine": "encoder-weight", "spearman": "encoder-weight", "topk": "decoder-weight"}


class GradiendComparisonError(GradiendError):
    """Raised when GRADIENDs cannot be compared (different base models, no shared parameters, bad arguments)."""


# --------------------------------------------------------------------------- inputs


def named_gradiends(gradiends) -> dict:
    """`{name: gradiend}` from a mapping (a [`SuiteResult`] is one), or from a sequence (named by their feature
    classes, e.g. `"M/F"`)."""
    if isinstance(gradiends, Mapping):
        named = dict(gradiends)
    else:
        named = {}
        for i, gradiend in enumerate(gradiends):
            classes = gradiend.config.feature_classes
            name = "/".join(classes) if classes else f"gradiend_{i}"
            named[name if name not in named else f"{name} ({i})"] = gradiend
    if not named:
        raise GradiendComparisonError("No GRADIENDs to compare; pass at least one.")
    return named


def shared_parameters(gradiends, params: str = "shared", check_base: bool = True) -> list[tuple[str, list[int]]]:
    """The base parameters the GRADIENDs are compared on: `(name, shape)` in the first GRADIEND's order.

    Args:
        gradiends (`Mapping[str, GradiendModel]` or sequence): The GRADIENDs.
        params (`str`, *optional*, defaults to `"shared"`): With different parameter selections, `"shared"` compares
            the parameters in every selection (with a warning), `"strict"` raises.
        check_base (`bool`, *optional*, defaults to `True`): Raise when the recorded base models differ.

    Raises:
        GradiendComparisonError: for different base models, a parameter with different shapes, no shared parameter,
            or different selections with `params="strict"`.
    """
    if params not in ("shared", "strict"):
        raise GradiendComparisonError(f"Unknown `params` mode {params!r}; choose 'shared' or 'strict'.")
    named = named_gradiends(gradiends)
    if check_base:
        bases = {
            name: g.config.base_model_name_or_path for name, g in named.items() if g.config.base_model_name_or_path
        }
        if len(set(bases.values())) > 1:
            raise GradiendComparisonError(
                f"The GRADIENDs belong to different base models ({bases}); weights of different models cannot be "
                "compared. Compare GRADIENDs of one base model (or pass `check_base=False` if these names are the "
                "same model)."
            )
    selections = {name: dict(zip(g.config.selection_names, g.config.selection_shapes)) for name, g in named.items()}
    first = next(iter(named.values())).config.selection_names
    shared = [p for p in first if all(p in s for s in selections.values())]
    for param in shared:
        shapes = {name: list(s[param]) for name, s in selections.items()}
        if len({tuple(v) for v in shapes.values()}) > 1:
            raise GradiendComparisonError(
                f"Parameter {param!r} has different shapes in the GRADIENDs ({shapes}): they belong to different base "
                "models."
            )
    if not shared:
        raise GradiendComparisonError(
            "The GRADIENDs share no base parameter; select overlapping parameters (e.g. the same layers) to compare."
        )
    fingerprints = {g.config.selection_fingerprint for g in named.values()}
    if len(fingerprints) > 1:
        if params == "strict":
            raise GradiendComparisonError(
                "The GRADIENDs cover different parameter selections. Train them on the same `params`, or pass "
                "`params='shared'` to compare only the parameters they share."
            )
        warnings.warn(
            f"The GRADIENDs cover different parameter selections; comparing the {len(shared)} shared parameters only.",
            stacklevel=3,
        )
    return [(p, list(selections[next(iter(named))][p])) for p in shared]


def _signed_part(gradiend, name: str, shape, part: str) -> torch.Tensor:
    """Flat float64 values of one part of one parameter, in base coordinates (zeros where nothing is covered)."""
    numel = math.prod(shape)
    if name not in gradiend.param_names:  # dropped by pruning: the GRADIEND is 0 there
        return torch.zeros(numel, dtype=torch.float64)
    key = escape_parameter_name(name)
    with torch.no_grad():
        if part == "encoder-weight":
            value = gradiend.encoder.weight[key].sum(0)
        elif part == "decoder-weight":
            value = gradiend.decoder.weight[key].sum(1)
        else:
            bias = gradiend.decoder.bias[key] if gradiend.decoder.bias is not None else None
            if bias is None:
                value = torch.zeros(gradiend.decoder.weight[key].shape[0])
            else:
                value = bias if part == "decoder-bias" else gradiend.decoder.weight[key].sum(1) + bias
        return gradiend.scatter_kept(name, value.detach().double().cpu())


def _check_part(part: str) -> str:
    if part not in IMPORTANCE_PARTS:
        raise GradiendComparisonError(f"Unknown part {part!r}; choose one of {', '.join(IMPORTANCE_PARTS)}.")
    return part


# --------------------------------------------------------------------------- top-k sets


def topk_sets(
    gradiends, k: int | float = 1000, part: str = "decoder-weight", params: str = "shared", check_base: bool = True
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each GRADIEND's `k` most important entries over the compared parameters.

    Args:
        gradiends (`Mapping[str, GradiendModel]` or sequence): The GRADIENDs.
        k (`int` or `float`, *optional*, defaults to 1000): A count, or a share in (0, 1] of each GRADIEND's
            compared input dimensions.
        part (`str`, *optional*, defaults to `"decoder-weight"`): Importance, see
            [`GradiendModel.get_weight_importance`].
        params, check_base: See [`shared_parameters`].

    Returns:
        `dict[str, tuple[torch.LongTensor, torch.Tensor]]`: name → (sorted global indices in the concatenation of the
        compared parameters, their importances).
    """
    named = named_gradiends(gradiends)
    return _topk_sets(named, shared_parameters(named, params, check_base), k, _check_part(part))


def _topk_sets(named, shared, k, part) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    offsets, total = {}, 0
    for param, shape in shared:
        offsets[param] = total
        total += math.prod(shape)
    result = {}
    for name, gradiend in named.items():
        scores = {p: v for p, v in gradiend.iter_kept_importance(part) if p in offsets}
        keep = resolve_k(k, sum(v.numel() for v in scores.values()))
        chosen = select_topk(scores, keep)
        indices, values = [], []
        for param, local in chosen.items():
            kept = gradiend.kept_positions(param)
            base = local if kept is None else kept.cpu()[local]
            indices.append(base + offsets[param])
            values.append(scores[param].reshape(-1)[local.to(scores[param].device)].double().cpu())
        indices, values = torch.cat(indices), torch.cat(values)
        order = torch.argsort(indices)
        result[name] = (indices[order], values[order])
    return result


def _overlap_matrix(sets: Mapping[str, tuple[torch.Tensor, torch.Tensor]], measure: str, value: str) -> np.ndarray:
    names = list(sets)
    out = np.zeros((len(names), len(names)))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            index_a, weight_a = sets[a]
            index_b, weight_b = sets[b]
            in_b = torch.isin(index_a, index_b)
            if measure == "topk_overlap":
                shared = int(in_b.sum())
                out[i, j] = shared if value == "count" else shared / max(1, min(len(index_a), len(index_b)))
            else:  # mass_overlap: ½ (share of A's importance on A∩B + share of B's importance on A∩B)
                in_a = torch.isin(index_b, index_a)
                share_a = float(weight_a[in_b].sum() / weight_a.sum()) if weight_a.sum() > 0 else 0.0
                share_b = float(weight_b[in_a].sum() / weight_b.sum()) if weight_b.sum() > 0 else 0.0
                out[i, j] = 0.5 * (share_a + share_b)
    return out


# --------------------------------------------------------------------------- similarity matrices


def similarity_matrix(
    gradiends,
    measure: str = "cosine",
    part: str | None = None,
    k: int | float | None = None,
    value: str = "fraction",
    params: str = "shared",
    check_base: bool = True,
) -> pd.DataFrame:
    """Pairwise similarity of GRADIENDs of one base model.

    Args:
        gradiends (`Mapping[str, GradiendModel]` or sequence): The GRADIENDs, by name.
        measure (`str`, *optional*, defaults to `"cosine"`):
            - `"cosine"` / `"cosine_signed"`: |cos| / cos of the part's weight vectors over all compared entries;
            - `"spearman"` / `"spearman_signed"`: |ρ| / ρ, Spearman rank correlation of the weights (average ranks for
              ties) over all compared entries, or with `k` over the union of the pair's top-k entries;
            - `"topk_overlap"`: |A ∩ B| / min(|A|, |B|) of the top-`k` sets by importance (`value="count"`: |A ∩ B|);
            - `"mass_overlap"`: ½ (Σ_{A∩B} imp_A / Σ_A imp_A + Σ_{A∩B} imp_B / Σ_B imp_B) on the top-`k` sets, i.e. the
              share of each GRADIEND's top-k importance (L1 mass) that lies in the shared entries.
        part (`str`, *optional*): Which weights: `"encoder-weight"` (default for cosine and Spearman),
            `"decoder-weight"` (default for the top-k measures), `"decoder-bias"` or `"decoder-sum"`; weights are
            summed over latent dimensions, importances are their absolute values (method.md §5).
        k (`int` or `float`, *optional*): Top-k size (a count or a share); defaults to 1000 for the top-k measures and
            to all entries for Spearman; ignored by the cosine.
        value (`str`, *optional*, defaults to `"fraction"`): `"fraction"` or `"count"` for `"topk_overlap"`.
        params, check_base: See [`shared_parameters`].

    Returns:
        `pd.DataFrame`: square, indexed and labelled by GRADIEND name; `attrs` records the measure, part and k.

    Example:

    ```python
    >>> similarity_matrix({"gender": g1, "number": g2}, measure="topk_overlap", k=1000)
    ```
    """
    if measure not in MEASURES:
        raise GradiendComparisonError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    if value not in ("fraction", "count"):
        raise GradiendComparisonError(f"Unknown value {value!r}; choose 'fraction' or 'count'.")
    named = named_gradiends(gradiends)
    family = measure.split("_")[0] if measure.startswith(("cosine", "spearman")) else "topk"
    part = _check_part(part or DEFAULT_PART[family])
    if family == "topk":
        k = 1000 if k is None else k
        shared = shared_parameters(named, params, check_base)
        matrix = _overlap_matrix(_topk_sets(named, shared, k, part), measure, value)
    else:
        shared = shared_parameters(named, params, check_base)
        if family == "cosine":
            matrix = _cosine(named, shared, part)
        else:
            matrix = _spearman(named, shared, part, k)
        if not measure.endswith("_signed"):
            matrix = np.abs(matrix)
    frame = pd.DataFrame(matrix, index=list(named), columns=list(named))
    frame.attrs.update(measure=measure, part=part, k=k if family != "cosine" else None)
    return frame


def _cosine(named, shared, part) -> np.ndarray:
    # Σ_p V_p V_pᵀ over parameters: dot products and squared norms without one n-sized vector per GRADIEND.
    gram = torch.zeros(len(named), len(named), dtype=torch.float64)
    for param, shape in shared:
        stacked = torch.stack([_signed_part(g, param, shape, part) for g in named.values()])
        gram += stacked @ stacked.T
    norms = gram.diagonal().sqrt()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (gram / torch.outer(norms, norms)).numpy()


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n with ties sharing their average rank (as `scipy.stats.rankdata`)."""
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / denominator if denominator > 0 else float("nan")


def _spearman(named, shared, part, k) -> np.ndarray:
    names = list(named)
    out = np.eye(len(names))
    if k is None:
        # Ranks are global, so every compared entry is needed at once: one float32 vector per GRADIEND.
        vectors = [torch.cat([_signed_part(g, p, s, part).float() for p, s in shared]) for g in named.values()]
        ranks = [_average_ranks(v) for v in vectors]
        del vectors
        for i, j in zip(*np.triu_indices(len(names), 1)):
            out[i, j] = out[j, i] = _pearson(ranks[i], ranks[j])
        return out
    sets = _topk_sets(named, shared, k, part)
    offsets, total = [], 0
    for _, shape in shared:
        offsets.append(total)
        total += math.prod(shape)
    for i, j in zip(*np.triu_indices(len(names), 1)):
        union = torch.unique(torch.cat([sets[names[i]][0], sets[names[j]][0]]))
        pair = []
        for name in (names[i], names[j]):
            values = torch.empty(len(union), dtype=torch.float64)
            for index, (param, shape) in enumerate(shared):
                start, end = offsets[index], offsets[index] + math.prod(shape)
                inside = (union >= start) & (union < end)
                if inside.any():
                    values[inside] = _signed_part(named[name], param, shape, part)[union[inside] - start]
            pair.append(_average_ranks(values))
        out[i, j] = out[j, i] = _pearson(*pair)
    return out


# --------------------------------------------------------------------------- where the top weights sit

_LAYER = re.compile(r"\.(\d+)\.")


def parameter_location(name: str) -> tuple[str, str]:
    """`(layer, module)` of a base parameter name: `"model.layers.3.mlp.up_proj.weight"` → `("3", "mlp.up_proj")`.

    Parameters outside numbered layers get the layer `"other"` and their name without the backbone prefix as module.
    """
    stem = re.sub(r"\.(weight|bias)$", "", name)
    match = _LAYER.search(stem)
    if match is None:
        return "other", stem.split(".", 1)[-1] if "." in stem else stem
    return match.group(1), stem[match.end() :]


def topk_locations(gradiends, k: int | float = 1000, part: str = "decoder-weight", params: str = "shared"):
    """How many of each GRADIEND's top-k entries lie in each layer and module type, and how many a uniform spread
    would put there.

    Returns:
        `pd.DataFrame` with one row per (GRADIEND, parameter): `gradiend`, `parameter`, `layer`, `module`, `count`
        (top-k entries in the parameter), `numel` and `expected` (`k · numel / n`, the count of a random top-k set).
    """
    named = named_gradiends(gradiends)
    shared = shared_parameters(named, params)
    sets = _topk_sets(named, shared, k, _check_part(part))
    total = sum(math.prod(s) for _, s in shared)
    rows = []
    for name, (indices, _) in sets.items():
        start = 0
        for param, shape in shared:
            numel = math.prod(shape)
            count = int(((indices >= start) & (indices < start + numel)).sum())
            layer, module = parameter_location(param)
            rows.append(
                {
                    "gradiend": name,
                    "parameter": param,
                    "layer": layer,
                    "module": module,
                    "count": count,
                    "numel": numel,
                    "expected": len(indices) * numel / total,
                }
            )
            start += numel
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- cross-encoding


def cross_encoding_matrix(
    gradiends,
    base_model,
    tokenizer,
    datasets: Mapping,
    split: str = "test",
    max_rows: int | None = 64,
    batch_size: int = 32,
    seed: int = 0,
) -> pd.DataFrame:
    """Each GRADIEND's mean encoding on each feature's classes.

    A column `"<feature>:<class>"` holds the mean encoding of the feature's `split` rows whose source gradient points
    towards a word of `<class>`: the rows with that `alternative_class` for a GRADIEND with `source="alternative"`
    (the encoder reads the alternative word's gradient), with that `factual_class` otherwise. So a GRADIEND's own
    feature shows +1 on its positive class and -1 on the other, and a column of another feature shows whether that
    feature moves it. Rows of one class on both sides (identity rows) are skipped. Encodings come from batched
    forward-mode AD ([`gradiend_hf.gradients.encode_rows`]) as in [`evaluate_encoder`].

    Args:
        gradiends (`Mapping[str, GradiendModel]` or sequence): The GRADIENDs (rows of the matrix).
        base_model (`PreTrainedModel`): Their base model.
        tokenizer: Its tokenizer.
        datasets (`Mapping[str, DatasetDict | Dataset]`): feature name → feature rows (a `DatasetDict` gives `split`).
        split (`str`, *optional*, defaults to `"test"`): Split to encode.
        max_rows (`int`, *optional*, defaults to 64): At most this many rows per factual class (seeded sample).
        batch_size (`int`, *optional*, defaults to 32): Rows per forward-mode pass.
        seed (`int`, *optional*, defaults to 0): Seed of the sampling.

    Returns:
        `pd.DataFrame`: rows = GRADIEND names, columns = `"<feature>:<class>"`; `attrs["counts"]` holds the number
        of rows behind each cell.
    """
    named = named_gradiends(gradiends)
    for gradiend in named.values():
        gradiend.check_base_model(base_model)
    # Each GRADIEND is encoded with the objective its config records (e.g. causal_lm_cloze).
    objectives = {name: gradiend_objective(g.config, base_model, tokenizer) for name, g in named.items()}
    means, counts = {}, {}
    for feature, dataset in datasets.items():
        rows = resolve_split(dataset, split)
        classes = feature_classes_of(rows)
        picked = [
            r for r in sample_by_class(rows, classes, max_rows, seed) if r["factual_class"] != r["alternative_class"]
        ]
        for objective in {type(o): o for o in objectives.values()}.values():
            check_usable(objective, picked)
        texts = ([r["masked"] for r in picked], [r["factual"] for r in picked], [r["alternative"] for r in picked])
        for name, gradiend in named.items():
            values = encode_texts(gradiend, base_model, objectives[name], *texts, batch_size)[:, 0]
            column = "alternative_class" if gradiend.config.source == "alternative" else "factual_class"
            towards = np.array([r[column] for r in picked])
            for cls in classes:
                mask = torch.from_numpy(towards == cls)
                means.setdefault(f"{feature}:{cls}", {})[name] = float(values[mask].mean()) if mask.any() else np.nan
                counts.setdefault(f"{feature}:{cls}", {})[name] = int(mask.sum())
    frame = pd.DataFrame(means, index=list(named))
    frame.attrs["counts"] = pd.DataFrame(counts, index=list(named)).to_dict()
    frame.attrs["split"] = split
    return frame
