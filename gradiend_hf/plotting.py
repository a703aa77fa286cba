"""Figures of GRADIEND training and evaluation (matplotlib, optional: `pip install "gradiend-hf[plot]"`).

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend: PNGs are rendered with
Agg), returns it and, given `save_path`, also writes a PNG. In a notebook the returned figure displays itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import GradiendError
from .io import atomic_path


_CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
_NEUTRAL_COLOR = "#7f7f7f"
_LINE_STYLES = ("-", "--", ":", "-.")


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]):
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 (optional dependency)
    except ImportError as error:  # pragma: no cover - exercised by the optional-dependency test
        raise ImportError(
            'gradiend_hf.plotting needs matplotlib; install it with `pip install "gradiend-hf[plot]"`.'
        ) from error
    figure = Figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def _save(figure, save_path: str | os.PathLike | None) -> None:
    if save_path is not None:
        with atomic_path(save_path) as temporary:
            # The temporary name keeps the suffix, but say the format: matplotlib must not guess it.
            figure.savefig(temporary, dpi=150, format=os.path.splitext(os.fspath(save_path))[1][1:] or "png")


def _color(index: int) -> str:
    return _CLASS_COLORS[index % len(_CLASS_COLORS)]


# --------------------------------------------------------------------------- training


def _history_point(entry: Mapping) -> dict | None:
    correlation = entry.get("correlation", entry.get("eval_correlation"))
    if correlation is None:
        return None
    step = entry.get("step", entry.get("global_step"))
    means = entry.get("mean_by_class", entry.get("eval_mean_by_class"))
    if means is None:
        means = {}
        for key, value in entry.items():
            for prefix in ("eval_mean_", "mean_"):
                if key.startswith(prefix) and key != "mean_by_class" and isinstance(value, (int, float)):
                    means[key[len(prefix) :]] = value
    return {"step": step, "correlation": float(correlation), "mean_by_class": dict(means)}


def plot_training_convergence(
    history: Sequence[Mapping], save_path: str | os.PathLike | None = None, title: str | None = None
):
    """Correlation and mean encoding per class over training steps.

    Args:
        history (`Sequence[Mapping]`): One dict per evaluation, in order, with
            - `step` (`int`): the training step (`global_step` is accepted too);
            - `correlation` (`float`): Pearson correlation of labels and encodings (`eval_correlation` accepted);
            - `mean_by_class` (`dict[str, float]`, *optional*): class name → mean encoding. Flat keys
              `eval_mean_<class>` / `mean_<class>` (as logged by `GradiendTrainer`) are read as well.
            Entries without a correlation (e.g. training-loss logs of `trainer.state.log_history`) are skipped.
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title.

    Returns:
        `matplotlib.figure.Figure`: correlation (top) and class means (bottom) against the step; the step with the
        largest |correlation| is marked.
    """
    points = [p for p in (_history_point(e) for e in history) if p is not None]
    if not points:
        raise GradiendError(
            "The history has no evaluation with a correlation; pass dicts with `step` and `correlation` "
            "(or `trainer.state.log_history` after training with evaluation)."
        )
    steps = [p["step"] if p["step"] is not None else i for i, p in enumerate(points)]
    correlations = [p["correlation"] for p in points]
    figure, axes = _figure(2, 1, (7.0, 5.6))
    top, bottom = axes[0, 0], axes[1, 0]
    top.plot(steps, correlations, marker="o", color="black", linewidth=1.5, markersize=4)
    best = int(np.argmax(np.abs(correlations)))
    for ax in (top, bottom):
        ax.axvline(steps[best], color=_NEUTRAL_COLOR, linestyle="--", linewidth=1)
        ax.axhline(0, color="#cccccc", linewidth=0.8, zorder=0)
        ax.grid(alpha=0.25)
    # Inside the axes, on the side away from the curve's end, so the note never leaves the figure.
    top.text(
        0.02,
        0.93 if correlations[best] < 0 else 0.05,
        f"best |r| = {abs(correlations[best]):.3f} at step {steps[best]}",
        transform=top.transAxes,
        ha="left",
        va="top" if correlations[best] < 0 else "bottom",
        fontsize=8,
    )
    top.set_ylim(-1.05, 1.05)
    top.set_ylabel("correlation")
    classes = list(dict.fromkeys(name for p in points for name in p["mean_by_class"]))
    for i, name in enumerate(classes):
        xs = [s for s, p in zip(steps, points) if name in p["mean_by_class"]]
        ys = [p["mean_by_class"][name] for p in points if name in p["mean_by_class"]]
        bottom.plot(xs, ys, marker="o", markersize=4, color=_color(i), label=str(name))
    for level in (-1, 1):
        bottom.axhline(level, color="#cccccc", linewidth=0.8, linestyle=":", zorder=0)
    bottom.set_ylim(-1.1, 1.1)
    bottom.set_ylabel("mean encoding")
    bottom.set_xlabel("training step")
    if classes:
        bottom.legend(title="class", fontsize=8, title_fontsize=8, loc="center right")
    figure.suptitle(title or "GRADIEND training")
    _save(figure, save_path)
    return figure


# --------------------------------------------------------------------------- encoder


def plot_encoder_distributions(encoder_report, save_path: str | os.PathLike | None = None, title: str | None = None):
    """Distribution of the encodings per feature class and per neutral row type.

    Args:
        encoder_report ([`EncoderReport`]): From [`gradiend_hf.evaluation.evaluate_encoder`].
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title (defaults to the split and the correlation).

    Returns:
        `matplotlib.figure.Figure`: one violin per group with every row as a jittered dot and the mean as a black
        diamond; grey lines at -1, 0, +1 and dotted ternary boundaries at ±0.5.
    """
    rows = encoder_report.rows
    groups: list[tuple[str, np.ndarray, str]] = []
    training = rows[~rows["type"].astype(str).str.contains("neutral")]
    classes = list(encoder_report.feature_classes) or sorted(training["factual_class"].dropna().unique())
    targets = training[training["expected"] != 0]

    def expected_of(name) -> float:
        values = targets.loc[targets["factual_class"] == name, "expected"]
        return float(values.mean()) if len(values) else 0.0

    # The class that encodes to +1 first, so the panel reads top-left to bottom-right like the encoding.
    for name in sorted(classes, key=lambda c: -expected_of(c)):
        values = targets.loc[targets["factual_class"] == name, "encoding"].to_numpy(float)
        if values.size:
            groups.append((f"{name} rows\nexpected {expected_of(name):+.0f}", values, _color(classes.index(name))))
    identity = training.loc[training["expected"] == 0, "encoding"].to_numpy(float)
    if identity.size:
        groups.append(("identity rows\nexpected 0", identity, _NEUTRAL_COLOR))
    names = {"neutral_training_masked": "neutral\n(test sentences)", "neutral_dataset": "neutral\n(neutral text)"}
    for kind in ("neutral_training_masked", "neutral_dataset"):
        values = rows.loc[rows["type"] == kind, "encoding"].to_numpy(float)
        if values.size:
            groups.append((names[kind], values, _NEUTRAL_COLOR))
    if not groups:
        raise GradiendError("The encoder report has no encoded rows to plot.")

    figure, axes = _figure(1, 1, (2.2 * len(groups) + 2.0, 4.6))
    ax = axes[0, 0]
    rng = np.random.default_rng(0)
    for position, (_, values, color) in enumerate(groups):
        if values.size > 1 and np.ptp(values) > 1e-6:
            violin = ax.violinplot(values, positions=[position], widths=0.8, showextrema=False)
            for body in violin["bodies"]:
                body.set_facecolor(color)
                body.set_edgecolor(color)
                body.set_alpha(0.25)
        jitter = rng.uniform(-0.12, 0.12, values.size)
        ax.scatter(position + jitter, values, s=9, color=color, alpha=0.6, linewidths=0)
        mean = float(values.mean())
        ax.scatter([position], [mean], marker="D", s=36, color="black", zorder=3)
        ax.annotate(
            f"mean {mean:+.2f}",
            (position + 0.42, mean),
            ha="left",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
    for level in (-1, 0, 1):
        ax.axhline(level, color="#bbbbbb", linewidth=0.8, zorder=0)
    for level in (-0.5, 0.5):
        ax.axhline(level, color="#bbbbbb", linewidth=0.8, linestyle=":", zorder=0)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=9)
    ax.set_xlim(-0.6, len(groups) - 0.1)
    low = min(-1.1, min(float(g[1].min()) for g in groups) - 0.05)
    high = max(1.1, max(float(g[1].max()) for g in groups) + 0.05)
    ax.set_ylim(low, high)
    ax.set_ylabel("encoding")
    ax.grid(axis="y", alpha=0.2)
    metrics = encoder_report.metrics
    split = f" ({encoder_report.split})" if encoder_report.split else ""
    default = f"Encodings{split}: correlation {metrics['correlation']:.3f}, accuracy {metrics['accuracy']:.2f}"
    ax.set_title(title or default, fontsize=11)
    _save(figure, save_path)
    return figure


# --------------------------------------------------------------------------- decoder


def plot_decoder_grid(decoder_report, save_path: str | os.PathLike | None = None, title: str | None = None):
    """Class probabilities and language-modelling score of every rewrite against the learning rate.

    Args:
        decoder_report ([`DecoderReport`]): From [`gradiend_hf.evaluation.evaluate_decoder`].
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title (defaults to the policy and the selection).

    Returns:
        `matplotlib.figure.Figure`: one panel per dataset class with the mean probability of each class (log scale,
        one colour per class) and one panel with the LMS, against the learning rate (log scale; symmetric log when
        the grid has non-positive rates). One line style per feature factor; the unchanged model's values are thin
        dashed horizontal lines, the LMS threshold (0.99 · base) is dotted, and the selected rewrite is a star.
        Points the search did not score whole (see [`gradiend_hf.evaluation.grid_search`]) have no probabilities;
        an LMS stopped early is drawn as a down triangle at the bound it stays below.
    """
    from matplotlib.lines import Line2D  # noqa: PLC0415 (optional dependency)

    grid, base, selected = decoder_report.grid, decoder_report.base, decoder_report.selected
    classes = list(decoder_report.feature_classes)
    factors = sorted(grid["feature_factor"].unique())
    styles = {ff: _LINE_STYLES[k % len(_LINE_STYLES)] for k, ff in enumerate(factors)}
    figure, axes = _figure(1, len(classes) + 1, (4.3 * (len(classes) + 1), 4.3))
    positive_lrs = grid["learning_rate"][grid["learning_rate"] > 0]
    symlog = bool((grid["learning_rate"] <= 0).any())
    is_selected = (grid["feature_factor"] == selected.feature_factor) & (
        grid["learning_rate"] == selected.learning_rate
    )

    def style_x(ax):
        if symlog:
            ax.set_xscale("symlog", linthresh=float(positive_lrs.min()) if len(positive_lrs) else 1e-3)
        else:
            ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.grid(alpha=0.25, which="major")

    probability_columns = [f"prob_{name}_on_{on}" for on in classes for name in classes]
    # Huge rewrites drive probabilities to 1e-30 and below; keep the range around the unchanged model readable.
    base_values = [float(base[c]) for c in probability_columns]
    # A grid searched with early stops leaves the class probabilities of rewrites that lose the LMS unmeasured (NaN).
    measured = grid[probability_columns].to_numpy(dtype=float)
    top = min(1.5, max(max(base_values), float(np.nanmax(measured)) if np.isfinite(measured).any() else 0.0) * 4)
    bottom = max(1e-12, min(base_values) * 1e-3)
    for panel, on in enumerate(classes):
        ax = axes[0, panel]
        style_x(ax)  # before plotting, so the autoscale margins are computed on the final scale
        for i, name in enumerate(classes):
            column = f"prob_{name}_on_{on}"
            for ff in factors:
                part = grid[grid["feature_factor"] == ff].sort_values("learning_rate").dropna(subset=[column])
                values = part[column].clip(lower=bottom * 1e-3)
                ax.plot(part["learning_rate"], values, color=_color(i), linestyle=styles[ff], marker="o", markersize=3)
            ax.axhline(base[column], color=_color(i), linestyle=(0, (4, 3)), linewidth=0.9, alpha=0.8)
            ax.plot(
                grid.loc[is_selected, "learning_rate"],
                grid.loc[is_selected, column].clip(lower=bottom * 1e-3),
                marker="*",
                markersize=15,
                color=_color(i),
                markeredgecolor="black",
                linestyle="none",
                zorder=4,
            )
        ax.set_yscale("log")
        ax.set_ylim(bottom=bottom, top=top)
        ax.set_title(f"rows of class {on}", fontsize=10)
        ax.set_ylabel("mean probability")

    ax = axes[0, -1]
    style_x(ax)
    for ff in factors:
        part = grid[grid["feature_factor"] == ff].sort_values("learning_rate")
        whole = part.dropna(subset=["lms"])
        ax.plot(whole["learning_rate"], whole["lms"], color="black", linestyle=styles[ff], marker="o", markersize=3)
        if "scored" in part:  # LMS scoring stopped early: the bound it stays below, as a down triangle
            cut = part[part["scored"] == "lms_cut"]
            ax.plot(cut["learning_rate"], cut["lms_bound"], color="black", marker="v", markersize=4, linestyle="none")
    ax.axhline(base["lms"], color=_NEUTRAL_COLOR, linestyle=(0, (4, 3)), linewidth=0.9)
    ax.axhline(0.99 * base["lms"], color=_NEUTRAL_COLOR, linestyle=":", linewidth=1.2)
    ax.plot(
        [selected.learning_rate],
        [selected.lms],
        marker="*",
        markersize=15,
        color="gold",
        markeredgecolor="black",
        linestyle="none",
        zorder=4,
    )
    ax.set_title("language-modelling score", fontsize=10)
    ax.set_ylabel("LMS")

    handles = [
        Line2D([], [], color=_color(i), marker="o", markersize=3, label=f"P({name})") for i, name in enumerate(classes)
    ]
    handles.append(Line2D([], [], color="black", marker="o", markersize=3, label="LMS"))
    if len(factors) > 1:
        handles += [Line2D([], [], color="black", linestyle=styles[ff], label=f"ff = {ff:+g}") for ff in factors]
    handles += [
        Line2D([], [], color=_NEUTRAL_COLOR, linestyle=(0, (4, 3)), linewidth=0.9, label="unchanged model"),
        Line2D([], [], color=_NEUTRAL_COLOR, linestyle=":", linewidth=1.2, label="0.99 · base LMS"),
        Line2D(
            [],
            [],
            color="gold",
            marker="*",
            markersize=12,
            markeredgecolor="black",
            linestyle="none",
            label="selected",
        ),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)

    if title is None:
        target = ""
        if decoder_report.target_class is not None and decoder_report.policy != "balance":
            target = f"{'strengthen' if decoder_report.strengthen else 'weaken'} {decoder_report.target_class}, "
        title = (
            f"Decoder grid ({target}policy {decoder_report.policy}): selected ff = {selected.feature_factor:+g}, "
            f"lr = {selected.learning_rate:g}; {selected.metric} {selected.base_value:.3g} → {selected.value:.3g}"
        )
    figure.suptitle(title, fontsize=11)
    _save(figure, save_path)
    return figure
