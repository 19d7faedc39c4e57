"""Difference evidence: the two sessions are one head, so a lesion is new only where the baseline *image* lacks it.

Detections alone make a new lesion of every persisting one the baseline's detection missed, and miss every new
one the follow-up's detection missed. Longitudinal readers look at the place itself, in both scans; so does
:func:`apply_difference_evidence`, after the follow-up is registered to the baseline:

1. **Seen in the baseline image.** A follow-up lesion without a baseline match (:mod:`.changes`) is looked for
   in the baseline SWI at its place: the baseline's dark-blob strength (:func:`..lesions.candidates.blob_response`,
   the labelling guidance's finder) within :data:`EVIDENCE_RADIUS_MM` of where the registration carries it.
   When that is at least :data:`PRESENT_SHARE` of the lesion's own strength at follow-up, the lesion was there
   already: its baseline region is grown there (:func:`..lesions.candidates.grow_region`) and added to the
   baseline's lesions (``found_by`` = ``baseline image``), and the lesion matches it: persisting, not new.
2. **Missed at follow-up.** The finder's candidates on the follow-up SWI that no follow-up lesion covers are
   kept when the labelling protocol calls them a microbleed (:func:`..lesions.guidance.judge`: paramagnetic on
   QSM, round, at most 10 mm; no vessel, diamagnetic or not-paramagnetic flag), their SWI contrast is at
   least :data:`MIN_CANDIDATE_SWI_CONTRAST`, no lesion of either session is within the matching distance, and
   the baseline shows less than :data:`PRESENT_SHARE` of their strength at their place: added to the follow-up's
   lesions (``found_by`` = ``difference``), so they are new.

The tolerance covers the registration's residual and the centre shift of blooming and partial volume, as the
matching distance does (:data:`.changes.MATCH_TOLERANCE_MM`). A lesion added here keeps the session's detection
output set as the pipeline wrote it: the added ones get lesion ids after the detection's.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from ..conventions import CMB
from ..lesions.candidates import blob_response, find_candidates, grow_region
from ..lesions.guidance import REJECTING_FLAGS
from ..lesions.measure import measure_lesions
from .changes import MATCH_TOLERANCE_MM, compare_lesions, match_distance_mm

#: How far (mm) from where the registration carries a follow-up lesion the baseline is searched for it.
EVIDENCE_RADIUS_MM = MATCH_TOLERANCE_MM
#: The baseline shows a follow-up lesion when its dark-blob strength there is at least this share of the lesion's.
PRESENT_SHARE = 0.5
#: Least SWI contrast (relative darkness against the tissue around it) of a finder candidate counted new.
MIN_CANDIDATE_SWI_CONTRAST = 0.3
#: Finder candidates looked at on the follow-up (best first).
MAX_CANDIDATES = 100


def local_peak(response: np.ndarray, mask: np.ndarray, voxel, spacing, radius_mm: float) -> tuple[float, tuple]:
    """(strength, voxel): the largest ``response`` inside ``mask`` within ``radius_mm`` of ``voxel`` (0 outside)."""
    centre = np.asarray(voxel, float)
    reach = np.ceil(radius_mm / np.asarray(spacing)).astype(int)
    low = np.maximum(np.floor(centre).astype(int) - reach, 0)
    high = np.minimum(np.ceil(centre).astype(int) + reach + 1, response.shape)
    if np.any(high <= low):
        return 0.0, tuple(np.clip(np.round(centre).astype(int), 0, np.array(response.shape) - 1))
    grid = np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij")
    distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))
    box = tuple(slice(a, b) for a, b in zip(low, high))
    values = np.where((distance <= radius_mm) & mask[box], response[box], 0.0)
    where = np.unravel_index(int(np.argmax(values)), values.shape)
    return float(values[where]), tuple(int(a + w) for a, w in zip(low, where))


def _voxel_of(points_mm: np.ndarray, affine: np.ndarray) -> np.ndarray:
    inverse = np.linalg.inv(affine)
    return points_mm @ inverse[:3, :3].T + inverse[:3, 3]


def _carry(points_mm: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return points_mm.reshape(-1, 3) @ transform[:3, :3].T + transform[:3, 3]


def _points(table: pd.DataFrame) -> np.ndarray:
    return table[["x_mm", "y_mm", "z_mm"]].to_numpy(float).reshape(-1, 3)


def _near(points: np.ndarray, extents: np.ndarray, point: np.ndarray, extent: float) -> bool:
    """Whether a lesion at ``point`` may be one of those at ``points`` (the matching distance of :mod:`.changes`)."""
    return bool((np.linalg.norm(points - point, axis=1) <= match_distance_mm(extents, extent)).any())


def with_added_lesions(session, regions: list[tuple[np.ndarray, int]], found_by: str):
    """``session`` with ``regions`` ((mask, label value) each, where no lesion is yet) added as lesions numbered
    after its own; the table gets ``found_by`` (``detection`` for its own rows)."""
    ids = session.lesion_id_map()
    labels, ids, rows = session.labels.copy(), ids.copy(), []
    table = session.table.copy()
    if "found_by" not in table:
        table["found_by"] = "detection"
    next_id = int(max(ids.max(initial=0), table["lesion_id"].max() if len(table) else 0)) + 1
    for mask, value in regions:
        mask = mask & (labels == 0)
        if not mask.any():
            continue
        labels[mask], ids[mask] = value, next_id
        row = measure_lesions(np.where(mask, value, 0).astype(np.uint8), session.subject)
        rows.append(row.assign(lesion_id=next_id, found_by=found_by))
        next_id += 1
    if rows:
        table = pd.concat([table, *rows], ignore_index=True)
    return replace(session, labels=labels, table=table, lesion_ids=ids)


def strength_at(subject, response: np.ndarray, point_mm: np.ndarray) -> tuple[float, tuple]:
    """(strength, voxel): a session's dark-blob strength near a world point (within :data:`EVIDENCE_RADIUS_MM`)."""
    voxel = _voxel_of(np.asarray(point_mm, float), subject.affine)
    return local_peak(response, subject.mask, voxel, subject.spacing, EVIDENCE_RADIUS_MM)


def seen_at_baseline(baseline, followup, followup_to_baseline: np.ndarray, responses) -> list[tuple[np.ndarray, int]]:
    """Baseline regions of the follow-up lesions without a baseline match that the baseline image shows (rule 1)."""
    changes = compare_lesions(baseline.table, followup.table, followup_to_baseline)
    new = changes[changes["status"] == "new"]
    label = dict(zip(followup.table["lesion_id"], followup.table["label"]))
    regions = []
    for row in new.itertuples():
        own, _ = strength_at(followup.subject, responses[1], [row.followup_x_mm, row.followup_y_mm, row.followup_z_mm])
        there, peak = strength_at(baseline.subject, responses[0], [row.x_mm, row.y_mm, row.z_mm])
        if there > 0 and there >= PRESENT_SHARE * own:
            regions.append((grow_region(baseline.subject, peak), int(label[row.followup_lesion_id])))
    return regions


def missed_at_followup(baseline, followup, followup_to_baseline: np.ndarray, responses) -> list[tuple[np.ndarray, int]]:
    """Follow-up regions of the finder's microbleed candidates that no lesion covers and the baseline lacks (rule 2)."""
    base, follow = baseline.subject, followup.subject
    candidates = find_candidates(follow, max_candidates=MAX_CANDIDATES, response=responses[1])
    rejecting = candidates["flags"].fillna("").map(lambda flags: any(f in flags for f in REJECTING_FLAGS))
    candidates = candidates[
        (candidates["suggested_class"] == "cmb")
        & ~rejecting
        & (candidates["swi_contrast"] >= MIN_CANDIDATE_SWI_CONTRAST)
    ]
    base_points, base_extent = _points(baseline.table), baseline.table["extent_mm"].to_numpy(float)
    follow_points, follow_extent = _points(followup.table), followup.table["extent_mm"].to_numpy(float)
    regions = []
    for row in candidates.itertuples():
        region = grow_region(follow, (row.seed_i, row.seed_j, row.seed_k))
        point = np.array([row.x_mm, row.y_mm, row.z_mm])
        if (followup.labels[region] > 0).any() or _near(follow_points, follow_extent, point, row.extent_mm):
            continue  # a follow-up lesion already
        carried = _carry(point, followup_to_baseline)[0]
        if _near(base_points, base_extent, carried, row.extent_mm):
            continue  # a baseline lesion: not new
        own, _ = strength_at(follow, responses[1], point)
        there, _ = strength_at(base, responses[0], carried)
        if there < PRESENT_SHARE * own:
            regions.append((region, CMB))
    return regions


def apply_difference_evidence(baseline, followup, followup_to_baseline: np.ndarray):
    """(baseline, follow-up) sessions with the lesions the difference evidence adds (see the module doc)."""
    responses = (blob_response(baseline.subject), blob_response(followup.subject))
    seen = seen_at_baseline(baseline, followup, followup_to_baseline, responses)
    baseline = with_added_lesions(baseline, seen, "baseline image")
    missed = missed_at_followup(baseline, followup, followup_to_baseline, responses)
    return baseline, with_added_lesions(followup, missed, "difference")


def found_by_column(changes: pd.DataFrame, baseline: pd.DataFrame, followup: pd.DataFrame) -> list[str]:
    """Per change row: ``baseline image`` or ``difference`` when its lesion was added here, else ``detection``."""

    def lookup(table: pd.DataFrame) -> dict:
        return dict(zip(table["lesion_id"], table["found_by"])) if "found_by" in table else {}

    base, follow = lookup(baseline), lookup(followup)
    found = []
    for row in changes.itertuples():
        added = [base.get(row.baseline_lesion_id), follow.get(row.followup_lesion_id)]
        found.append(next((a for a in added if isinstance(a, str) and a != "detection"), "detection"))
    return found


def evidence_record(changes: pd.DataFrame) -> dict:
    """The difference evidence's rule, thresholds and what it changed, for the comparison's record."""
    found = changes["found_by"].value_counts() if "found_by" in changes else pd.Series(dtype=int)
    return {
        "Rule": "a follow-up lesion the baseline image shows at its place is persisting; a finder candidate judged "
        "a microbleed that the baseline image lacks is new (docs/follow-up.md)",
        "EvidenceRadiusMm": EVIDENCE_RADIUS_MM,
        "PresentShare": PRESENT_SHARE,
        "MinCandidateSwiContrast": MIN_CANDIDATE_SWI_CONTRAST,
        "SeenInBaselineImage": int(found.get("baseline image", 0)),
        "FoundByDifference": int(found.get("difference", 0)),
    }
