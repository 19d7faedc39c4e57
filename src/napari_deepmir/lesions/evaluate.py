"""Lesion-wise evaluation of a predicted label map against a truth label map.

Rule (docs/lesion-tables.md): lesions are 26-connected components of one class. A truth lesion is
*found* when a predicted component of the same class shares at least one voxel with it; a predicted
component is a *true positive* when it shares at least one voxel with a truth lesion of its class.
Zero denominators: sensitivity is NaN without truth lesions, precision is NaN without predicted
lesions, F1 is NaN only when both are NaN (if just one is NaN the other is 0 and so is F1).
"""

import math
from pathlib import Path

import numpy as np

from ..conventions import CLASS_NAMES
from ..io import InputError
from ..io.bids import in_derivatives, subject_id
from ..io.nifti import is_nifti_path
from ..progress import progress_bar
from .components import check_same_grid, class_components, load_label_map


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def lesion_metrics(n_truth: int, n_truth_found: int, n_pred: int, n_pred_true: int) -> dict:
    """Sensitivity, precision, F1 and false positives from lesion counts (NaN rules in the module doc)."""
    sensitivity = _ratio(n_truth_found, n_truth)
    precision = _ratio(n_pred_true, n_pred)
    if math.isnan(sensitivity) and math.isnan(precision):
        f1 = math.nan
    elif math.isnan(sensitivity) or math.isnan(precision) or sensitivity + precision == 0:
        f1 = 0.0
    else:
        f1 = 2 * sensitivity * precision / (sensitivity + precision)
    return {
        "n_truth": n_truth,
        "n_truth_found": n_truth_found,
        "n_pred": n_pred,
        "n_pred_true": n_pred_true,
        "sensitivity": sensitivity,
        "precision": precision,
        "f1": f1,
        "false_positives": n_pred - n_pred_true,
    }


def score_lesions(truth: np.ndarray, pred: np.ndarray) -> dict[str, dict]:
    """Lesion-wise counts and scores per class name (``"cmb"``, ``"iron"``) for two label maps on one grid."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} are not on the same grid")
    scores = {}
    for value, name in CLASS_NAMES.items():
        truth_ids, n_truth = class_components(truth, value)
        pred_ids, n_pred = class_components(pred, value)
        overlap = (truth_ids > 0) & (pred_ids > 0)
        n_found = len(np.unique(truth_ids[overlap]))
        n_true = len(np.unique(pred_ids[overlap]))
        scores[name] = lesion_metrics(n_truth, n_found, n_pred, n_true)
    return scores


#: File-name endings that are images or region maps, never a lesion label map.
_NOT_LABEL_MAPS = tuple(f"_{s}" for s in ("swi", "Chimap", "T2w", "desc-locations_dseg", "probabilities"))


def _label_files(folder: Path) -> dict[str, Path]:
    """Label map per subject under ``folder``: NIfTI files grouped by the ``sub-XXX`` in their path.

    Image files (``_swi``, ``_Chimap``, ``_T2w``), location maps and anything in a ``derivatives``
    folder below ``folder`` (annotations kept beside the raw data) are skipped; when a subject has
    several files, the ones ending in ``_dseg`` win; two candidates left is an error.
    """
    folder = folder.resolve()  # so that a folder given as "." still contributes its own sub-XXX name
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*.nii*")):
        stem = path.name.split(".nii")[0]
        name = subject_id(path.relative_to(folder.parent))
        if not is_nifti_path(path) or stem.endswith(_NOT_LABEL_MAPS) or name is None or in_derivatives(path, folder):
            continue
        found.setdefault(name, []).append(path)
    chosen = {}
    for name, paths in found.items():
        preferred = [p for p in paths if p.name.split(".nii")[0].endswith("_dseg")] or paths
        if len(preferred) > 1:
            listed = ", ".join(str(p.relative_to(folder)) for p in preferred)
            raise InputError(folder, f"several label maps for {name}: {listed}")
        chosen[name] = preferred[0]
    return chosen


def _pairs(truth: Path, pred: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(subject, truth file, prediction file) pairs, and the subjects found only in truth / only in pred."""
    if truth.is_dir() != pred.is_dir():
        kind = "a folder" if truth.is_dir() else "a file"
        raise InputError(pred, f"give two files or two folders (truth {truth} is {kind})")
    for path in (truth, pred):
        if not path.exists():
            raise InputError(path, "not found")
    if not truth.is_dir():
        return [(subject_id(truth) or subject_id(pred) or truth.name.split(".")[0], truth, pred)], [], []
    truth_files, pred_files = _label_files(truth), _label_files(pred)
    if not truth_files:
        raise InputError(truth, "no label maps with a sub-XXX name found")
    pairs = [(name, truth_files[name], pred_files[name]) for name in sorted(truth_files) if name in pred_files]
    if not pairs:
        raise InputError(pred, f"no prediction shares a subject with {truth} (subjects are paired by sub-XXX names)")
    return pairs, sorted(set(truth_files) - set(pred_files)), sorted(set(pred_files) - set(truth_files))


def count_agreement(truth_counts: list[int], pred_counts: list[int]) -> dict:
    """Agreement of per-subject lesion counts: Pearson r, Bland-Altman bias and 95% limits (pred - truth)."""
    truth_counts, pred_counts = np.asarray(truth_counts, float), np.asarray(pred_counts, float)
    difference = pred_counts - truth_counts
    enough = len(difference) >= 2
    varies = enough and truth_counts.std() > 0 and pred_counts.std() > 0
    pearson = float(np.corrcoef(truth_counts, pred_counts)[0, 1]) if varies else math.nan
    bias = float(difference.mean()) if len(difference) else math.nan
    spread = float(difference.std(ddof=1)) if enough else math.nan
    return {
        "pearson_r": pearson,
        "bland_altman_mean_difference": bias,
        "bland_altman_sd_difference": spread,
        "bland_altman_limits_of_agreement": [bias - 1.96 * spread, bias + 1.96 * spread],
    }


def evaluate(truth: str | Path, pred: str | Path, *, progress: bool = False) -> dict:
    """Lesion-wise report comparing predicted label maps with truth (two files, or two folders of subjects).

    Folders are paired by the ``sub-XXX`` name in each file's path. The report has per class
    (``"cmb"``, ``"iron"``) the pooled scores over all subjects (counts summed, then ratios),
    ``fp_per_subject``, the per-subject means of sensitivity/precision (as the DEEPMIR paper reports),
    count agreement, and a per-subject list; plus ``subjects``, ``unpaired_truth``, ``unpaired_pred``.
    Truth and prediction of a subject must share the grid (InputError naming both files otherwise).
    """
    pairs, only_truth, only_pred = _pairs(Path(truth), Path(pred))
    per_subject = []
    with progress_bar("evaluate", total=len(pairs), unit="subject", enabled=progress) as bar:
        for name, truth_path, pred_path in pairs:
            truth_volume, pred_volume = load_label_map(truth_path), load_label_map(pred_path)
            check_same_grid(truth_volume, pred_volume, what="prediction")
            per_subject.append((name, truth_path, pred_path, score_lesions(truth_volume.data, pred_volume.data)))
            bar.update(1)
    report: dict = {
        "rule": "26-connected components per class; a lesion counts when it shares a voxel with one of the same class",
        "n_subjects": len(per_subject),
        "subjects": [name for name, *_ in per_subject],
        "unpaired_truth": only_truth,
        "unpaired_pred": only_pred,
    }
    for class_name in CLASS_NAMES.values():
        rows = [
            {"subject": name, "truth_file": str(t), "pred_file": str(p)} | scores[class_name]
            for name, t, p, scores in per_subject
        ]
        totals = {key: sum(row[key] for row in rows) for key in ("n_truth", "n_truth_found", "n_pred", "n_pred_true")}
        pooled = lesion_metrics(**totals)
        pooled["fp_per_subject"] = pooled["false_positives"] / len(rows)
        for key in ("sensitivity", "precision", "f1"):
            values = [row[key] for row in rows if not math.isnan(row[key])]
            pooled[f"{key}_mean_over_subjects"] = float(np.mean(values)) if values else math.nan
        pooled["count_agreement"] = count_agreement([r["n_truth"] for r in rows], [r["n_pred"] for r in rows])
        pooled["per_subject"] = rows
        report[class_name] = pooled
    return report
