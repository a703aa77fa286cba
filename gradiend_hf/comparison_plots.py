"""Figures comparing GRADIENDs (matplotlib, optional: `pip install "gradiend-hf[plot]"`).

Like [`gradiend_hf.plotting`], every function builds a `matplotlib.figure.Figure` without pyplot (PNGs are rendered
with Agg), returns it and, given `save_path`, writes a PNG. The inputs are the tables of [`gradiend_hf.comparison`].
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from .errors import GradiendError
from .plotting import _color, _figure, _save


# --------------------------------------------------------------------------- heatmaps

_MEASURE_TITLES = {
    "cosine": "|cosine|",
    "cosine_signed": "cosine",
    "spearman": "|Spearman ρ|",
    "spearman_signed": "Spearman ρ",
    "topk_overlap": "top-k overlap |A∩B|/k",
    "mass_overlap": "top-k mass overlap",
}


def plot_similarity_heatmap(
    matrix: pd.DataFrame,
    save_path: str | os.PathLike | None = None,
    title: str | None = None,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
    fmt: str | None = None,
    colorbar_label: str | None = None,
):
    """An annotated heatmap of a comparison matrix (rows and columns labelled by the frame's index and columns).

    Args:
        matrix (`pd.DataFrame`): E.g. from [`similarity_matrix`] or [`cross_encoding_matrix`].
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title; defaults to the measure and part in `matrix.attrs`.
        cmap (`str`, *optional*): Colormap; a diverging one centred on 0 when the matrix has negative values.
        vmin, vmax (`float`, *optional*): Colour limits; default [0, 1] (or ±max|value|) for values within them.
        annotate (`bool`, *optional*, defaults to `True`): Write each value into its cell.
        fmt (`str`, *optional*): Format of the annotations; `"{:.0f}"` for integer matrices, else `"{:.2f}"`.
        colorbar_label (`str`, *optional*): Label of the colour bar.

    Returns:
        `matplotlib.figure.Figure`
    """
    values = matrix.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    attrs = matrix.attrs
    # A signed measure gets the diverging scale even when all its values happen to be positive.
    signed = str(attrs.get("measure", "")).endswith("_signed") or bool(finite.size and finite.min() < 0)
    if vmin is None and vmax is None:
        if signed:  # symmetric around 0, at least [-1, 1]
            bound = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
            vmin, vmax = -bound, bound
        elif finite.size:  # shares in [0, 1]; counts from 0 up
            vmin, vmax = 0.0, (1.0 if finite.max() <= 1 else None)
    cmap = cmap or ("RdBu_r" if signed else "viridis")
    if fmt is None:
        fmt = "{:.0f}" if finite.size and np.all(finite == np.round(finite)) and finite.max() > 1 else "{:.2f}"
    rows, cols = values.shape
    figure, axes = _figure(1, 1, (max(4.0, 1.0 + 0.95 * cols), max(3.0, 1.0 + 0.6 * rows)))
    ax = axes[0, 0]
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols), [str(c) for c in matrix.columns])
    ax.set_yticks(range(rows), [str(r) for r in matrix.index])
    longest = max((len(str(c)) for c in matrix.columns), default=0)
    if longest > 8 or longest * cols > 36:
        ax.tick_params(axis="x", labelrotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.tick_params(length=0)
    if annotate:
        normed = image.norm
        colormap = image.get_cmap()
        for i in range(rows):
            for j in range(cols):
                value = values[i, j]
                if not np.isfinite(value):
                    ax.text(j, i, "–", ha="center", va="center", color="0.4")
                    continue
                red, green, blue, _ = colormap(normed(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(j, i, fmt.format(value), ha="center", va="center", color="white" if dark else "black")
    colorbar = figure.colorbar(image, ax=ax, shrink=0.85)
    if colorbar_label:
        colorbar.set_label(colorbar_label)
    if title is None and attrs.get("measure"):
        k = f", k={attrs['k']}" if attrs.get("k") else ""
        name = _MEASURE_TITLES.get(attrs["measure"], attrs["measure"])
        if attrs["measure"] == "topk_overlap" and finite.size and finite.max() > 1:
            name = "top-k overlap |A∩B|"
        title = f"{name}\n{attrs.get('part')}{k}"
    if title:
        ax.set_title(title)
    _save(figure, save_path)
    return figure


def plot_cross_encoding_heatmap(
    matrix: pd.DataFrame, save_path: str | os.PathLike | None = None, title: str | None = "Cross-encoding"
):
    """Heatmap of [`cross_encoding_matrix`]: mean encodings in [-1, 1], one column group per feature.

    Returns:
        `matplotlib.figure.Figure`
    """
    return _encoding_heatmap(
        matrix, save_path, title, ":", "mean encoding", "feature:class (gradients towards a word of the class)"
    )


def plot_transition_heatmap(
    matrix: pd.DataFrame,
    save_path: str | os.PathLike | None = None,
    title: str | None = "Encoding of every transition",
):
    """Heatmap of [`transition_encoding_matrix`]: one row per GRADIEND, one column per transition `A→B`, grouped by
    the factual class `A`; +1 (red) is each GRADIEND's positive class.

    Returns:
        `matplotlib.figure.Figure`
    """
    return _encoding_heatmap(
        matrix, save_path, title, "→", "mean encoding (oriented)", "transition factual→alternative"
    )


def _encoding_heatmap(matrix, save_path, title, separator: str, colorbar_label: str, xlabel: str):
    """A heatmap of mean encodings in [-1, 1] with a line between the column groups (the text before `separator`)."""
    figure = plot_similarity_heatmap(
        matrix, title=title, cmap="RdBu_r", vmin=-1.0, vmax=1.0, colorbar_label=colorbar_label
    )
    ax = figure.axes[0]
    groups = [str(c).split(separator, 1)[0] for c in matrix.columns]
    for j in range(1, len(groups)):
        if groups[j] != groups[j - 1]:
            ax.axvline(j - 0.5, color="black", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GRADIEND")
    _save(figure, save_path)
    return figure


# --------------------------------------------------------------------------- Venn diagram

_VENN_LAYOUTS = {
    2: ([(-0.55, 0.0), (0.55, 0.0)], [(-1.0, 1.12), (1.0, 1.12)]),
    3: ([(-0.55, 0.32), (0.55, 0.32), (0.0, -0.62)], [(-1.25, 1.42), (1.25, 1.42), (0.0, -1.78)]),
}


def _index_set(value) -> torch.Tensor:
    if isinstance(value, tuple):  # (indices, importances) from `topk_sets`
        value = value[0]
    return torch.as_tensor(list(value) if isinstance(value, (set, frozenset)) else value, dtype=torch.long).unique()


def venn_regions(sets: Mapping[str, object]) -> dict[tuple[bool, ...], int]:
    """Size of every Venn region: membership tuple (in set 1?, in set 2?, …) → number of entries in exactly those sets."""
    indices = [_index_set(v) for v in sets.values()]
    everything = torch.unique(torch.cat(indices))
    membership = torch.stack([torch.isin(everything, s) for s in indices], dim=1)
    regions = {}
    for pattern, count in zip(*torch.unique(membership, dim=0, return_counts=True)):
        regions[tuple(bool(x) for x in pattern.tolist())] = int(count)
    return regions


def plot_topk_venn(
    sets: Mapping[str, object],
    save_path: str | os.PathLike | None = None,
    title: str | None = None,
):
    """Venn diagram of the top-k sets of two or three GRADIENDs, each region labelled with its count.

    The circles are drawn with equal size (they show which sets a region belongs to, not how large it is); the
    numbers carry the sizes.

    Args:
        sets (`Mapping[str, …]`): name → set of entries: the output of [`topk_sets`], or any integer indices.
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title.

    Returns:
        `matplotlib.figure.Figure`
    """
    from matplotlib.patches import Circle  # noqa: PLC0415 (optional dependency)

    names = list(sets)
    if len(names) not in _VENN_LAYOUTS:
        raise GradiendError(f"A Venn diagram needs two or three sets, got {len(names)}; compare fewer GRADIENDs.")
    centers, label_positions = _VENN_LAYOUTS[len(names)]
    regions = venn_regions(sets)
    sizes = [len(_index_set(sets[name])) for name in names]
    figure, axes = _figure(1, 1, (5.6, 5.2 if len(names) == 3 else 3.8))
    ax = axes[0, 0]
    radius = 1.0
    for index, (center, name) in enumerate(zip(centers, names)):
        color = _color(index)
        ax.add_patch(Circle(center, radius, facecolor=color, alpha=0.22, edgecolor=color, linewidth=2))
        ax.text(
            *label_positions[index],
            f"{name}\n(k={sizes[index]:,})",
            ha="center",
            va="center",
            color=color,
            fontsize=11,
            fontweight="bold",
        )
    # Each region's label goes to the centroid of the grid points inside exactly that region.
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 401), np.linspace(-2, 2, 401)), axis=-1).reshape(-1, 2)
    inside = np.stack([((grid - np.array(c)) ** 2).sum(1) <= radius**2 for c in centers], axis=1)
    for pattern in _patterns(len(names)):
        points = grid[(inside == np.array(pattern)).all(1)]
        if len(points) == 0:
            continue
        x, y = points.mean(0)
        ax.text(x, y, f"{regions.get(pattern, 0):,}", ha="center", va="center", fontsize=12)
    low = min(c[1] for c in centers) - radius - (0.45 if len(names) == 3 else 0.1)
    high = max(c[1] for c in centers) + radius + 0.45
    ax.set_xlim(-2.05, 2.05)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.axis("off")
    shared = regions.get(tuple([True] * len(names)), 0)
    where = "both sets" if len(names) == 2 else "all three sets"
    ax.set_title(title or f"Top-k overlap: {shared:,} entries in {where}")
    _save(figure, save_path)
    return figure


def _patterns(count: int) -> list[tuple[bool, ...]]:
    return [tuple(bool(i >> b & 1) for b in range(count)) for i in range(1, 2**count)]


# --------------------------------------------------------------------------- where the top weights sit


def plot_topk_locations(locations: pd.DataFrame, save_path: str | os.PathLike | None = None, title: str | None = None):
    """Bar charts of where the GRADIENDs' top-k entries sit: per layer (left) and per module type (right).

    One bar per GRADIEND in each group; the black marks are the counts a uniformly random top-k set would have
    (groups with more entries get more), so bars above them show where a feature concentrates.

    Args:
        locations (`pd.DataFrame`): The output of [`topk_locations`].
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title.

    Returns:
        `matplotlib.figure.Figure`
    """
    names = list(dict.fromkeys(locations["gradiend"]))
    layers = sorted(set(locations["layer"]), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    modules = list(dict.fromkeys(locations["module"]))
    widths = (max(4.5, 0.55 * len(layers) * max(1, len(names)) ** 0.5 + 1.5), max(4.5, 0.8 * len(modules) + 1.5))
    figure, axes = _figure(1, 2, (widths[0] + widths[1], 4.4))
    for ax, column, groups, label in (
        (axes[0, 0], "layer", layers, "layer"),
        (axes[0, 1], "module", modules, "module type"),
    ):
        table = locations.groupby(["gradiend", column], sort=False)[["count", "expected"]].sum()
        positions = np.arange(len(groups))
        width = 0.8 / len(names)
        for index, name in enumerate(names):
            counts = [table["count"].get((name, g), 0) for g in groups]
            ax.bar(positions - 0.4 + width * (index + 0.5), counts, width, color=_color(index), label=name)
        expected = [table["expected"].get((names[0], g), 0.0) for g in groups]
        ax.hlines(expected, positions - 0.42, positions + 0.42, colors="black", linewidth=2, label="uniform", zorder=3)
        ax.set_xticks(positions, groups)
        if column == "module" and max((len(g) for g in groups), default=0) > 8:
            ax.tick_params(axis="x", labelrotation=30)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
        ax.set_xlabel(label)
        ax.set_ylabel("top-k entries")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0, 1].legend(loc="best", fontsize=9)
    k_values = locations.groupby("gradiend")["count"].sum()
    figure.suptitle(title or f"Where the top-{int(k_values.max()):,} weights sit")
    _save(figure, save_path)
    return figure
