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
from .features import region_features
from .guidance import REJECTING_FLAGS, judge
from .measure import label_lesions

#: Rounds of the check at most (each drops at least one lesion; two are the most seen).
_MAX_ROUNDS = 5


def rejected_by_rules(labels: np.ndarray, subject) -> tuple[np.ndarray, list[dict]]:
    """``labels`` (0/1/2 on ``subject``'s SWI grid) without the lesions whose protocol flags reject them,
    and one record per dropped lesion: class, centre (scanner mm), the rejecting flags and the reason."""
    labels = np.asarray(labels)
    rejected: list[dict] = []
    for _ in range(_MAX_ROUNDS):
        lesion_ids, classes = label_lesions(labels)
        if not classes:
            break
        table = region_features(
            lesion_ids, subject.affine, swi=subject.swi, qsm=subject.qsm, exclude=labels > 0
        ).reset_index()
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
        labels = np.where(np.isin(lesion_ids, dropped), 0, labels).astype(np.uint8)
    return labels, rejected


def rejections_summary(rejected: list[dict]) -> str:
    """'2 detections dropped by the protocol's rules (1 likely a vessel, 1 not paramagnetic on QSM)', or ''."""
    if not rejected:
        return ""
    counts = Counter(flag for record in rejected for flag in record["flags"])
    reasons = ", ".join(f"{n} {flag}" for flag, n in counts.items())
    noun = "detection" if len(rejected) == 1 else "detections"
    return f"{len(rejected)} {noun} dropped by the protocol's rules ({reasons}; listed in the provenance)"
