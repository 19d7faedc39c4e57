"""One decision: a detection the labelling protocol's own evidence rejects is not reported as a lesion.

The lesion table judges every lesion by the protocol (:func:`.guidance.judge`) and flags contradictions.
Three flags say the region is not a lesion at all — a tube across slices (a vessel), a diamagnetic source
(a calcification), no paramagnetic source on QSM — so a detection that carries one is dropped here, with
the same measurements the table makes, and reported with its reason instead (issue 21: 13 of 60 false
microbleeds on an independent set carried "likely a vessel"). Lesions are measured against the tissue
around them with the other lesions left out of their shells, so dropping one can change a neighbour's
shell: the check runs until no lesion is left that the rules reject.
"""

from collections import Counter

import numpy as np

from ..conventions import CLASS_NAMES
from .guidance import REJECTING_FLAGS, judge
from .measure import Lesions, find_lesions

#: Rounds of the check at most (each drops at least one lesion; two are the most seen).
_MAX_ROUNDS = 5


def rejected_by_rules(labels: np.ndarray, subject) -> tuple[np.ndarray, list[dict], Lesions | None]:
    """``labels`` (0/1/2 on ``subject``'s SWI grid) without the lesions whose protocol flags reject them,
    one record per dropped lesion (class, centre in scanner mm, the rejecting flags and the reason), and the
    kept lesions as measured for the last check (:class:`.measure.Lesions`, for the lesion table; None when
    the last check still dropped some)."""
    labels = np.asarray(labels)
    rejected: list[dict] = []
    lesions = None
    for _ in range(_MAX_ROUNDS):
        lesions = find_lesions(labels, subject.affine, swi=subject.swi, qsm=subject.qsm)
        lesion_ids, classes = lesions.ids, lesions.classes
        if not classes:
            break
        table = lesions.features.reset_index()
        dropped = []
        for _, row in table.iterrows():
            name = CLASS_NAMES[classes[int(row["lesion_id"])]]
            flags, _, reason = judge(row, None, labelled_as=name)
            rejecting = [flag for flag in flags if flag in REJECTING_FLAGS]
            if rejecting:
                dropped.append(int(row["lesion_id"]))
                centre = [round(float(row[axis]), 1) for axis in ("x_mm", "y_mm", "z_mm")]
                rejected.append({"class": name, "centre_mm": centre, "flags": rejecting, "reason": reason})
        if not dropped:
            break
        labels, lesions = np.where(np.isin(lesion_ids, dropped), 0, labels).astype(np.uint8), None
    return labels, rejected, lesions


def rejections_summary(rejected: list[dict]) -> str:
    """'2 detections dropped by the protocol's rules (1 likely a vessel, 1 not paramagnetic on QSM)', or ''."""
    if not rejected:
        return ""
    counts = Counter(flag for record in rejected for flag in record["flags"])
    reasons = ", ".join(f"{n} {flag}" for flag, n in counts.items())
    noun = "detection" if len(rejected) == 1 else "detections"
    return f"{len(rejected)} {noun} dropped by the protocol's rules ({reasons}; listed in the provenance)"
