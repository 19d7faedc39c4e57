"""Which lesion of the follow-up is which lesion of the baseline: matching across time in millimetres.

Both lesion tables (one row per lesion, :mod:`..lesions.measure`) are compared in the **baseline's world**:
each follow-up centroid is carried there by the registration. Two lesions of one class *may be the same*
when their centroids are at most ``MATCH_TOLERANCE_MM + max(extent) / 2`` apart: the tolerance covers the
registration's residual and the centroid shift of partial volume on thick slices; the half extent grows the
allowance with the lesion, because blooming changes a lesion's apparent size (CMB volume x2.3 on SWI from
TE 20 to 40 ms, Liu et al., Radiology 2012) around a centre that stays. Pairs are made one to one (the
Hungarian algorithm of :func:`..lesions.matching.one_to_one`, nearest centroids first).

Status of each lesion:

- ``persisting``: in both sessions; ``grown`` when also its volume grew more than
  :data:`GROWTH_VOLUME_RATIO` times (more than blooming alone makes) *and* its diameter by more than
  :data:`GROWTH_MIN_DIAMETER_MM` (more than one voxel of partial volume);
- ``new``: in the follow-up only;
- ``resolved``: in the baseline only (resolved, or not seen at follow-up).
"""

import numpy as np
import pandas as pd

from ..lesions.matching import Lesions, one_to_one

#: Fixed part of the matching distance (mm): registration residual plus centroid shift of partial volume.
MATCH_TOLERANCE_MM = 3.0
#: A persisting lesion is ``grown`` when its volume grew more than this many times ...
GROWTH_VOLUME_RATIO = 2.3
#: ... and its sphere-equivalent diameter by more than this (mm).
GROWTH_MIN_DIAMETER_MM = 1.5
STATUSES = ("new", "persisting", "grown", "resolved")

#: Column -> (description, units) of the change table.
CHANGE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "change_id": ("Row number (1..N): new lesions first, nearest the top of the head first", None),
    "class": ("cmb or iron", None),
    "status": ("new, persisting, grown (persisting and larger) or resolved (baseline only, or not seen)", None),
    "baseline_lesion_id": ("lesion_id in the baseline's lesion table (empty when new)", None),
    "followup_lesion_id": ("lesion_id in the follow-up's lesion table (empty when resolved)", None),
    **{
        f"{a}_mm": (f"Centroid in the baseline's world, scanner RAS {a} (follow-up lesions carried there)", "mm")
        for a in "xyz"
    },
    **{f"followup_{a}_mm": (f"Centroid in the follow-up's own world, scanner RAS {a}", "mm") for a in "xyz"},
    "distance_mm": ("Distance between the matched centroids in the baseline's world", "mm"),
    "baseline_volume_mm3": ("Volume at baseline", "mm^3"),
    "followup_volume_mm3": ("Volume at follow-up", "mm^3"),
    "baseline_diameter_mm": ("Sphere-equivalent diameter at baseline", "mm"),
    "followup_diameter_mm": ("Sphere-equivalent diameter at follow-up", "mm"),
    "found_by": (
        (
            "What found the lesion: detection (either session's), baseline image (a follow-up lesion the "
            "baseline's detection missed but its image shows) or difference (a follow-up lesion only the "
            "difference of the sessions found)"
        ),
        None,
    ),
    "review": ("The rater's decision on a new lesion in Compare sessions: confirmed, rejected or empty", None),
    "review_reason": ("Why the rater rejected (or noted) it", None),
}


def match_distance_mm(extent_a, extent_b):
    """The farthest two lesions' centroids may be apart to be one lesion (see the module doc)."""
    return MATCH_TOLERANCE_MM + np.maximum(extent_a, extent_b) / 2


def _to_world(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return points @ transform[:3, :3].T + transform[:3, 3] if len(points) else points.reshape(0, 3)


def _xyz(table: pd.DataFrame) -> np.ndarray:
    return table[["x_mm", "y_mm", "z_mm"]].to_numpy(float).reshape(-1, 3)


def _extent(table: pd.DataFrame) -> np.ndarray:
    column = "extent_mm" if "extent_mm" in table else "diameter_mm"
    return table[column].to_numpy(float)


def _grown(base: pd.Series, follow: pd.Series) -> bool:
    ratio = follow["volume_mm3"] / max(float(base["volume_mm3"]), 1e-6)
    return ratio > GROWTH_VOLUME_RATIO and follow["diameter_mm"] - base["diameter_mm"] > GROWTH_MIN_DIAMETER_MM


def _row(name: str, status: str, base: pd.Series | None, follow: pd.Series | None, follow_in_base) -> dict:
    row = {"class": name, "status": status}
    row["baseline_lesion_id"] = None if base is None else int(base["lesion_id"])
    row["followup_lesion_id"] = None if follow is None else int(follow["lesion_id"])
    where = follow_in_base if base is None else base[["x_mm", "y_mm", "z_mm"]].to_numpy(float)
    row.update(dict(zip(("x_mm", "y_mm", "z_mm"), where)))
    for axis in "xyz":
        row[f"followup_{axis}_mm"] = np.nan if follow is None else follow[f"{axis}_mm"]
    both = base is not None and follow is not None
    row["distance_mm"] = float(np.linalg.norm(where - follow_in_base)) if both else np.nan
    for session, lesion in (("baseline", base), ("followup", follow)):
        for measure in ("volume_mm3", "diameter_mm"):
            row[f"{session}_{measure}"] = np.nan if lesion is None else lesion[measure]
    return row


def compare_lesions(baseline: pd.DataFrame, followup: pd.DataFrame, followup_to_baseline: np.ndarray) -> pd.DataFrame:
    """The change table (:data:`CHANGE_COLUMNS`) of two lesion tables; ``followup_to_baseline`` (4 x 4) maps a
    follow-up world point to the baseline's world."""
    rows = []
    for name in sorted(set(baseline["class"]) | set(followup["class"])):
        base = baseline[baseline["class"] == name].reset_index(drop=True)
        follow = followup[followup["class"] == name].reset_index(drop=True)
        carried = _to_world(_xyz(follow), followup_to_baseline)
        a, b = Lesions(np.zeros(0), len(base), _xyz(base)), Lesions(np.zeros(0), len(follow), carried)
        distances = np.linalg.norm(a.centroids_mm[:, None] - b.centroids_mm[None], axis=-1)
        allowed = distances <= match_distance_mm(_extent(base)[:, None], _extent(follow)[None, :])
        pairs = {i - 1: j - 1 for i, j in one_to_one(a, b, allowed)}
        for i in range(len(base)):
            j = pairs.get(i)
            if j is None:
                rows.append(_row(name, "resolved", base.loc[i], None, np.full(3, np.nan)))
            else:
                status = "grown" if _grown(base.loc[i], follow.loc[j]) else "persisting"
                rows.append(_row(name, status, base.loc[i], follow.loc[j], carried[j]))
        for j in sorted(set(range(len(follow))) - set(pairs.values())):
            rows.append(_row(name, "new", None, follow.loc[j], carried[j]))
    table = pd.DataFrame(rows, columns=[c for c in CHANGE_COLUMNS if c != "change_id"])
    order = table["status"].map(STATUSES.index).to_numpy() if len(table) else np.zeros(0)
    table = table.iloc[np.lexsort((-table["z_mm"].to_numpy(float), order))].reset_index(drop=True)
    table.insert(0, "change_id", np.arange(1, len(table) + 1))
    for column in ("baseline_lesion_id", "followup_lesion_id"):
        table[column] = table[column].astype("Int64")
    table["review"] = table["review"].astype(object)
    table["review_reason"] = table["review_reason"].astype(object)
    return table


def new_microbleeds(changes: pd.DataFrame) -> int:
    """New microbleeds in a change table, not counting those a rater rejected."""
    new = (changes["status"] == "new") & (changes["class"] == "cmb")
    return int((new & (changes["review"].fillna("") != "rejected")).sum())
