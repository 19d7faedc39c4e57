"""Lesion-wise evaluation of a predicted label map against a truth label map.

Rule (docs/lesion-tables.md): lesions are 26-connected components of one class. A truth lesion is
*found* when a predicted component of the same class shares at least one voxel with it; a predicted
component is a *true positive* when it shares at least one voxel with a truth lesion of its class.
Zero denominators: sensitivity is NaN without truth lesions, precision is NaN without predicted
lesions, F1 is NaN only when both are NaN (if just one is NaN the other is 0 and so is F1).
"""

import math

import numpy as np

from ..conventions import CLASS_NAMES
from .components import class_components


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
