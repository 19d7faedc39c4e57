"""The PNG beside an evaluation report: FROC curve, count agreement scatter and Bland-Altman plot.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display), so it works on a server.
"""

from pathlib import Path

import numpy as np

from ..conventions import CLASS_COLORS, CLASS_NAMES, CLASS_TITLES
from ..io.atomic import atomic_path

#: Axis labels of the FROC panel (also written into the PNG's metadata).
FROC_AXES = ("false positives per subject", "sensitivity")


def _colour(name: str) -> tuple:
    value = next(v for v, n in CLASS_NAMES.items() if n == name)
    return CLASS_COLORS[value][:3]


def _froc_panel(axes, report: dict) -> None:
    for value, name in CLASS_NAMES.items():
        part = report[name]
        colour, title = _colour(name), CLASS_TITLES[value]
        if part.get("froc"):
            froc = part["froc"]
            points = [(f, s) for f, s in zip(froc["fp_per_subject"], froc["sensitivity"]) if s is not None]
            if points:
                fp, sensitivity = zip(*sorted(points))
                axes.plot(fp, sensitivity, "-o", color=colour, markersize=3, label=f"{title} (probability sweep)")
        if part["sensitivity"] is not None and np.isfinite(part["sensitivity"]):
            axes.plot(
                part["fp_per_subject"],
                part["sensitivity"],
                "*",
                color=colour,
                markersize=12,
                label=f"{title} (label maps)",
            )
    axes.set_xlabel(FROC_AXES[0])
    axes.set_ylabel(FROC_AXES[1])
    axes.set_ylim(0, 1.05)
    axes.set_xlim(left=0)
    axes.set_title("FROC" if any(report[n].get("froc") for n in CLASS_NAMES.values()) else "FROC (no probabilities)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")


def _counts(report: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = report[name]["per_subject"]
    return np.array([r["n_truth"] for r in rows], float), np.array([r["n_pred"] for r in rows], float)


def _scatter_panel(axes, report: dict) -> None:
    top = 1.0
    for value, name in CLASS_NAMES.items():
        truth, pred = _counts(report, name)
        axes.scatter(truth, pred, color=_colour(name), s=18, alpha=0.8, label=CLASS_TITLES[value])
        top = max(top, *truth, *pred) if len(truth) else top
    axes.plot([0, top], [0, top], "k--", linewidth=0.8, label="identity")
    axes.set_xlabel("lesions per subject, truth")
    axes.set_ylabel("lesions per subject, predicted")
    axes.set_title("Count agreement")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


def _bland_altman_panel(axes, report: dict) -> None:
    for value, name in CLASS_NAMES.items():
        truth, pred = _counts(report, name)
        colour = _colour(name)
        axes.scatter((truth + pred) / 2, pred - truth, color=colour, s=18, alpha=0.8, label=CLASS_TITLES[value])
        agreement = report[name]["count_agreement"]
        bias, limits = agreement["bland_altman_mean_difference"], agreement["bland_altman_limits_of_agreement"]
        if bias is not None and np.isfinite(bias):
            axes.axhline(bias, color=colour, linewidth=1)
        for limit in limits:
            if limit is not None and np.isfinite(limit):
                axes.axhline(limit, color=colour, linewidth=0.8, linestyle=":")
    axes.axhline(0, color="k", linewidth=0.5)
    axes.set_xlabel("mean of truth and predicted count")
    axes.set_ylabel("predicted - truth count")
    axes.set_title("Bland-Altman (bias, 95% limits)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


def save_report_figure(report: dict, path: str | Path) -> Path:
    """Draw the three panels of an :func:`~napari_deepmir.lesions.evaluate.evaluate` report into a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13.5, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    froc, scatter, bland_altman = figure.subplots(1, 3)
    _froc_panel(froc, report)
    _scatter_panel(scatter, report)
    _bland_altman_panel(bland_altman, report)
    rule = report["rule"] + (f" {report['max_distance_mm']:g} mm" if report.get("max_distance_mm") else "")
    figure.suptitle(f"deepmir evaluate: {report['n_subjects']} subject(s), matching {rule}", fontsize=10)
    path = Path(path)
    metadata = {
        "Title": "deepmir evaluate report",
        "Description": f"FROC ({FROC_AXES[0]} vs {FROC_AXES[1]}); count agreement; Bland-Altman",
    }
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", metadata=metadata)
    return path
