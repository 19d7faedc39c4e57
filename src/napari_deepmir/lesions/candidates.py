"""Candidate finder for guided labelling: likely lesions ranked best first, each with a grown region.

Classical detector: SWI darkness relative to the local background (normalised Gaussian average
inside the brain), a scale-normalised multi-scale Laplacian of Gaussian for dark blobs, local maxima
as seeds. Each seed grows into a region (the SWI blob at half depth), which is measured and judged
by the labelling protocol (:mod:`.guidance`). The score rewards SWI contrast, positive QSM and, when
given, the model's lesion probability; it penalises diamagnetic (calcification), tubular (vein) and
non-paramagnetic regions, which stay in the list with their flags.
"""

import math

import numpy as np
import pandas as pd
from scipy import ndimage

from ..conventions import CLASS_NAMES
from .components import CONNECTIVITY_26
from .features import region_features
from .guidance import FLAG_DIAMAGNETIC, FLAG_VESSEL, judge
from .measure import COLUMNS as LESION_COLUMNS
from .measure import label_lesions
from .placement import lesion_place

#: Blob scales (Gaussian sigma, mm) of the Laplacian of Gaussian: CMBs are ~1.5-10 mm across.
BLOB_SIGMAS_MM = (0.8, 1.3, 2.0, 3.0)
#: Sigma (mm) of the local SWI background.
BACKGROUND_SIGMA_MM = 6.0
#: Half-size (mm) of the box a region may grow in.
GROW_RADIUS_MM = 9.0
#: Seeds closer than this (mm) to a stronger seed are the same blob.
SEED_SPACING_MM = 2.5
#: Score multipliers for regions the protocol argues against (they stay listed, lower).
PENALTY_DIAMAGNETIC = 0.25
PENALTY_VESSEL = 0.3
PENALTY_NOT_PARAMAGNETIC = 0.4

COLUMNS = (
    "rank",
    "x_mm",
    "y_mm",
    "z_mm",
    "i",
    "j",
    "k",
    "seed_i",
    "seed_j",
    "seed_k",
    "diameter_mm",
    "qsm_mean_ppb",
    "score",
    "suggested_class",
    "flags",
    "reason",
    "qsm_peak_ppb",
    "qsm_contrast_ppb",
    "swi_contrast",
    "extent_mm",
    "elongation",
    "volume_mm3",
    "voxels",
    "blob_response",
    "probability_mean",
    "location",
)


def _local_background(swi: np.ndarray, mask: np.ndarray, sigma_vox: np.ndarray) -> np.ndarray:
    weights = ndimage.gaussian_filter(mask.astype(np.float32), sigma_vox)
    average = ndimage.gaussian_filter(np.where(mask, swi, 0).astype(np.float32), sigma_vox)
    return average / np.maximum(weights, 1e-3)


def blob_response(subject) -> np.ndarray:
    """Dark-blob strength on SWI: max over scales of the scale-normalised LoG of the relative darkness."""
    spacing = subject.spacing
    mask = subject.mask
    swi = subject.swi.astype(np.float32)
    background = _local_background(swi, mask, BACKGROUND_SIGMA_MM / spacing)
    darkness = np.where(mask, np.clip(1.0 - swi / np.maximum(background, 1e-6), 0.0, 1.0), 0.0).astype(np.float32)
    response = np.zeros_like(darkness)
    for sigma_mm in BLOB_SIGMAS_MM:
        scale = -(sigma_mm**2) * ndimage.gaussian_laplace(darkness, sigma_mm / spacing)
        np.maximum(response, scale, out=response)
    response[~mask] = 0
    return response


def _seeds(response: np.ndarray, spacing: np.ndarray, limit: int, spacing_mm: float = SEED_SPACING_MM) -> np.ndarray:
    """Local maxima of ``response`` (voxel indices), strongest first, at most ``limit``."""
    size = np.maximum(2 * np.round(spacing_mm / spacing).astype(int) + 1, 3)
    peaks = (response == ndimage.maximum_filter(response, size=tuple(size))) & (response > 0.02)
    coords = np.argwhere(peaks)
    order = np.argsort(-response[tuple(coords.T)], kind="stable")
    return coords[order[:limit]]


def grow_box(subject, seed_voxel) -> tuple[tuple[slice, ...], np.ndarray]:
    """Box around the seed, and the region (half-depth SWI blob) grown in it, as a mask of the box."""
    seed = np.asarray(seed_voxel, dtype=int)
    radius = np.ceil(GROW_RADIUS_MM / subject.spacing).astype(int)
    low = np.maximum(seed - radius, 0)
    high = np.minimum(seed + radius + 1, subject.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    swi = subject.swi[box]
    local = seed - low
    near = tuple(slice(max(c - 1, 0), c + 2) for c in local)
    inside = np.where(subject.mask[box][near], swi[near], np.inf)
    core_offset = np.unravel_index(np.argmin(inside), inside.shape)
    core = tuple(int(n.start + o) for n, o in zip(near, core_offset))
    region = np.zeros(swi.shape, dtype=bool)
    tissue = swi[subject.mask[box]] if subject.mask[box].any() else swi.ravel()
    background = float(np.median(tissue))
    depth = background - float(swi[core])
    if depth <= 0:
        region[core] = True
        return box, region
    dark = (swi <= swi[core] + 0.5 * depth) & subject.mask[box]
    dark[core] = True
    components, _ = ndimage.label(dark, structure=CONNECTIVITY_26)
    return box, components == components[core]


def grow_region(subject, seed_voxel) -> np.ndarray:
    """Region of the SWI blob at ``seed_voxel`` (i, j, k) as a boolean mask of the subject's grid.

    The darkest voxel next to the seed is the blob's core; the region is the 26-connected set of
    voxels darker than half-way between the core and the median tissue value within 9 mm,
    inside the brain mask."""
    box, region = grow_box(subject, seed_voxel)
    mask = np.zeros(subject.shape, dtype=bool)
    mask[box] = region
    return mask


def grown_components(subject, seeds) -> tuple[np.ndarray, int]:
    """(components, n): the regions grown from ``seeds`` (n, 3) numbered 1..n (:func:`grow_region`; a seed
    without a region marks its own voxel; a voxel two regions reach belongs to the first)."""
    seeds = np.asarray(seeds, dtype=int).reshape(-1, 3)
    components = np.zeros(subject.shape, np.int32)
    for number, seed in enumerate(seeds, start=1):
        box, region = grow_box(subject, seed)
        if not region.any():
            region[tuple(seed - [s.start for s in box])] = True
        target = components[box]
        target[region & (target == 0)] = number
    return components, len(seeds)


def find_candidates(
    subject,
    *,
    probabilities: np.ndarray | None = None,
    locations: np.ndarray | None = None,
    max_candidates: int = 200,
    response: np.ndarray | None = None,
) -> pd.DataFrame:
    """Likely lesions of ``subject`` ranked best first (columns :data:`COLUMNS`).

    ``probabilities`` (3, *grid), a model's class probabilities, add seeds at their lesion peaks and
    raise the score of regions the model believes in; ``locations`` (a location map) gives locations
    and the basal-ganglia rule of the guidance. ``response``: the subject's :func:`blob_response` when the
    caller has it already (it is the finder's costliest step)."""
    response = blob_response(subject) if response is None else response
    seeds = _seeds(response, subject.spacing, 3 * max_candidates)
    # then blobs next to a stronger one (a small deposit beside a dark nucleus), tried after the others
    seeds = np.concatenate([seeds, _seeds(response, subject.spacing, 3 * max_candidates, spacing_mm=0.0)])
    lesion_probability = None
    if probabilities is not None:
        lesion_probability = 1.0 - np.asarray(probabilities[0], dtype=np.float32)
        model_seeds = _seeds(np.where(lesion_probability > 0.5, lesion_probability, 0), subject.spacing, max_candidates)
        seeds = np.concatenate([model_seeds, seeds])
    claimed = np.zeros(subject.shape, dtype=bool)
    rows = []
    for seed in seeds:
        if claimed[tuple(seed)]:
            continue
        box, region = grow_box(subject, seed)
        if (claimed[box] & region).any():  # the same blob, reached from another seed
            continue
        claimed[box] |= region
        features = _measure_in_box(subject, box, region)
        coords = np.argwhere(region) + [b.start for b in box]
        location = lesion_place(coords, subject.spacing, locations=locations)[0]
        flags, suggestion, reason = judge(features, location)
        row = features | {
            "seed_i": int(seed[0]),
            "seed_j": int(seed[1]),
            "seed_k": int(seed[2]),
            "blob_response": float(response[box][region].max()),
            "location": location,
            "flags": ";".join(flags),
            "suggested_class": suggestion,
            "reason": reason,
        }
        if lesion_probability is None:
            row["probability_mean"] = math.nan
        else:
            row["probability_mean"] = float(lesion_probability[box][region].mean())
        row["score"] = _score(row, flags, suggestion)
        rows.append(row)
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    table = table.sort_values("score", ascending=False, kind="stable").head(max_candidates).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _measure_in_box(subject, box: tuple[slice, ...], region: np.ndarray) -> dict:
    """Features of a region given as a mask of ``box``; centroids in the subject's voxel and world coordinates."""
    offset = np.array([b.start for b in box])
    affine = subject.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ offset
    qsm = None if subject.qsm is None else subject.qsm[box]
    features = region_features(region.astype(np.int32), affine, swi=subject.swi[box], qsm=qsm).iloc[0].to_dict()
    for axis, name in enumerate("ijk"):
        features[name] += offset[axis]
    return features


def _score(row: dict, flags: list[str], suggestion: str) -> float:
    """Likelihood score: SWI contrast x blob strength, boosted by positive QSM and model probability."""
    contrast = row["swi_contrast"] if math.isfinite(row["swi_contrast"]) else 0.0
    score = max(contrast, 0.0) * (0.5 + row["blob_response"])
    qsm = row["qsm_mean_ppb"]
    if math.isfinite(qsm):
        score *= 1.0 + min(max(qsm, 0.0), 300.0) / 100.0
    if math.isfinite(row["probability_mean"]):
        score += 2.0 * row["probability_mean"]
    if FLAG_DIAMAGNETIC in flags:
        score *= PENALTY_DIAMAGNETIC
    if FLAG_VESSEL in flags:
        score *= PENALTY_VESSEL
    if suggestion == "reject" and FLAG_DIAMAGNETIC not in flags and FLAG_VESSEL not in flags:
        score *= PENALTY_NOT_PARAMAGNETIC
    return float(score)


#: A blinded pass reviews the useful list only, since its random order hides where the ranked list turns to
#: noise: the candidates scoring at least USEFUL_SCORE_SHARE of the best one, at most BLINDED_CAP of them. On the
#: shipped sample the scores fall below 5 % of the best where the QSM contrast falls into noise (±10-30 ppb): 64 of
#: 200 candidates are kept, among them all 11 that touch a true lesion (the lowest of those at 27 % of the best).
USEFUL_SCORE_SHARE = 0.05
BLINDED_CAP = 100


def useful_candidates(table: pd.DataFrame) -> pd.DataFrame:
    """The head of a ranked candidate table (best first) worth a blinded rater's time: score at least
    :data:`USEFUL_SCORE_SHARE` of the best, at most :data:`BLINDED_CAP` rows. A list without scores (the
    disagreements of a consensus read) is kept whole, up to the cap."""
    scores = pd.to_numeric(table["score"], errors="coerce") if "score" in table.columns else pd.Series(dtype=float)
    if not scores.notna().any():
        return table.head(BLINDED_CAP)
    useful = table[scores >= USEFUL_SCORE_SHARE * float(scores.max())]
    return useful.head(BLINDED_CAP)


def table_descriptions() -> dict[str, tuple[str, str | None]]:
    """Column -> (description, units) of the candidate table, for its JSON sidecar."""
    return LESION_COLUMNS | {
        "rank": ("Rank, 1 = most likely lesion", None),
        "i": ("Centroid of the grown region, first array axis", "voxel"),
        "j": ("Centroid of the grown region, second array axis", "voxel"),
        "k": ("Centroid of the grown region, third array axis", "voxel"),
        "seed_i": ("Seed voxel (grow_region starts here), first array axis", "voxel"),
        "seed_j": ("Seed voxel, second array axis", "voxel"),
        "seed_k": ("Seed voxel, third array axis", "voxel"),
        "score": ("Likelihood score used for the ranking (higher first)", None),
        "reason": ("Why the protocol suggests this class", None),
        "blob_response": ("Strongest scale-normalised LoG response of SWI darkness in the region", None),
        "probability_mean": ("Mean model probability of a lesion (1 - background) in the region", None),
    }


def candidate_recall(table: pd.DataFrame, subject, labels: np.ndarray, *, top: int = 30) -> dict[str, tuple[int, int]]:
    """Per class name: (true lesions hit, true lesions) by the first ``top`` candidates of ``table``.

    A true lesion (26-connected component of one class of ``labels``) is hit when the region grown
    from a candidate's seed shares a voxel with it, the lesion-wise rule of :mod:`.evaluate`."""
    lesion_ids, classes = label_lesions(labels)
    hit: set[int] = set()
    for seed in table.head(top)[["seed_i", "seed_j", "seed_k"]].to_numpy(int):
        box, region = grow_box(subject, seed)
        hit.update(int(v) for v in np.unique(lesion_ids[box][region]) if v)
    recall = {}
    for value, name in CLASS_NAMES.items():
        ids = [lesion for lesion, v in classes.items() if v == value]
        recall[name] = (sum(lesion in hit for lesion in ids), len(ids))
    return recall
