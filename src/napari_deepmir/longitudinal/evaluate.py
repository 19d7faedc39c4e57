"""Scoring a comparison against the truth of a synthetic pair (``deepmir synth --sessions 2``).

A truth new microbleed is *found* when a called new microbleed's follow-up centroid lies within
:data:`SCORE_DISTANCE_MM` of its centre (pairs one to one, nearest first). A called new microbleed that is no
truth new one is a *false new lesion*; when it lies within that distance of a truth persisting microbleed it is
also counted as *persisting called new* (a lesion the comparison lost across time, e.g. through motion).
Rejected lesions (``review``) are not called. Grades are compared exactly and by linearly weighted kappa.
"""

import numpy as np
import pandas as pd

from ..lesions.matching import Lesions, one_to_one
from .changes import new_microbleeds
from .grading import AriaGrade, microbleed_grade, weighted_kappa

#: Farthest (mm) a called lesion's centroid may be from a truth lesion's centre to be it (in the follow-up's world).
SCORE_DISTANCE_MM = 4.0


def _followup_points(table: pd.DataFrame) -> np.ndarray:
    return table[["followup_x_mm", "followup_y_mm", "followup_z_mm"]].to_numpy(float).reshape(-1, 3)


def _near(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None] - b[None], axis=-1) <= SCORE_DISTANCE_MM


def score_pair(changes: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """One pair's figures: truth and called new microbleeds, found, false new, persisting called new, grades."""
    called = changes[
        (changes["status"] == "new") & (changes["class"] == "cmb") & (changes["review"].fillna("") != "rejected")
    ]
    truth_new = truth[(truth["status"] == "new") & (truth["class"] == "cmb")]
    persisting = truth[(truth["status"] == "persisting") & (truth["class"] == "cmb")]
    a, b = _followup_points(truth_new), _followup_points(called)
    pairs = one_to_one(Lesions(np.zeros(0), len(a), a), Lesions(np.zeros(0), len(b), b), _near(a, b))
    unmatched = np.ones(len(b), bool)
    unmatched[[j - 1 for _, j in pairs]] = False
    lost = _near(b[unmatched], _followup_points(persisting)).any(axis=1) if len(persisting) else np.zeros(0, bool)
    truth_grade = microbleed_grade(len(truth_new))
    called_grade = AriaGrade(new_microbleeds(changes)).grade
    return {
        "truth_new": len(truth_new),
        "called_new": len(called),
        "found": len(pairs),
        "false_new": int(unmatched.sum()),
        "persisting_called_new": int(lost.sum()),
        "truth_grade": truth_grade,
        "grade": called_grade,
        "grade_exact": truth_grade == called_grade,
    }


def summarise(scores: list[dict]) -> dict:
    """Figures over pairs: new-lesion sensitivity, false new per pair, grade exact share and weighted kappa."""
    if not scores:
        raise ValueError("no pairs to summarise")
    truth_new = sum(s["truth_new"] for s in scores)
    return {
        "pairs": len(scores),
        "truth_new": truth_new,
        "found": sum(s["found"] for s in scores),
        "sensitivity": sum(s["found"] for s in scores) / truth_new if truth_new else float("nan"),
        "false_new_per_pair": sum(s["false_new"] for s in scores) / len(scores),
        "persisting_called_new": sum(s["persisting_called_new"] for s in scores),
        "grade_exact": sum(s["grade_exact"] for s in scores) / len(scores),
        "grade_kappa": weighted_kappa([s["truth_grade"] for s in scores], [s["grade"] for s in scores]),
    }
