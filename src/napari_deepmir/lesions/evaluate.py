"""Lesion-wise evaluation of a predicted label map against a truth label map.

Rules (docs/lesion-tables.md): lesions are 26-connected components of one class, paired by a matching rule of
:mod:`.matching` (``overlap``, the default; ``adjacent``; ``distance``). A predicted lesion is a *true positive*
when it is in the one-to-one pairing of same-class lesions, so the second piece of a split lesion is a false
positive. A truth lesion is *found* when a predicted lesion of its class may pair with it (``overlap``,
``adjacent``: a merged prediction finds every lesion it covers) or, for ``distance``, when it is paired.
Zero denominators: sensitivity is NaN without truth lesions, precision is NaN without predicted lesions, F1 is
NaN only when both are NaN (if just one is NaN the other is 0 and so is F1).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..conventions import BIDS_SUFFIXES, CLASS_NAMES
from ..io import InputError
from ..io.bids import subject_id
from ..io.jsonfile import read_json
from ..io.nifti import voxel_sizes
from ..io.sidecar import sidecar_path
from ..progress import progress_bar
from .components import (
    check_same_grid,
    load_label_map,
    load_location_map,
    load_probability_map,
    load_region_map,
    locations_from_regions,
)
from .matching import Lesions, allowed_pairs, check_rule, one_to_one
from .pairing import pair_label_maps, probability_files
from .placement import lesion_place

#: Thresholds on a predicted lesion's peak class probability swept for the FROC curve; at 0 every lesion of the
#: prediction is kept, so the curve ends at the pipeline's operating point.
FROC_THRESHOLDS: tuple[float, ...] = (0.0, *(round(t, 2) for t in np.arange(0.1, 1.0, 0.05)))
#: False positives per subject at which the FROC's sensitivity is reported.
FROC_FP_RATES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
_COUNT_KEYS = ("n_truth", "n_truth_found", "n_pred", "n_pred_true")


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


@dataclass
class ClassComparison:
    """One class of two label maps compared: the lesions, which truth lesions are found, the one-to-one pairs."""

    truth: Lesions
    pred: Lesions
    found: np.ndarray  # bool per truth lesion
    pairs: list[tuple[int, int]]  # (truth id, pred id), one to one

    def counts(self) -> dict:
        return {
            "n_truth": self.truth.count,
            "n_truth_found": int(self.found.sum()),
            "n_pred": self.pred.count,
            "n_pred_true": len(self.pairs),
        }

    def unpaired_pred(self) -> np.ndarray:
        """Ids of the predicted lesions in no pair (false positives)."""
        paired = {p for _, p in self.pairs}
        return np.array([n for n in range(1, self.pred.count + 1) if n not in paired], dtype=int)

    def missed_truth(self) -> np.ndarray:
        """Ids of the truth lesions not found."""
        return np.flatnonzero(~self.found) + 1


def compare_class(
    truth: Lesions, pred: Lesions, *, rule: str = "overlap", max_distance_mm: float | None = None
) -> ClassComparison:
    """Pair the lesions of one class of truth and prediction under ``rule`` (module docstring)."""
    allowed = allowed_pairs(truth, pred, rule, max_distance_mm)
    pairs = one_to_one(truth, pred, allowed)
    if rule == "distance":
        found = np.zeros(truth.count, dtype=bool)
        found[[t - 1 for t, _ in pairs]] = True
    else:
        found = allowed.any(axis=1)
    return ClassComparison(truth, pred, found, pairs)


def compare_maps(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    rule: str = "overlap",
    affine: np.ndarray | None = None,
    max_distance_mm: float | None = None,
) -> dict[int, ClassComparison]:
    """Per class value, the comparison of two label maps on one grid."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} are not on the same grid")
    check_rule(rule, max_distance_mm)
    return {
        value: compare_class(
            Lesions.of_class(truth, value, affine),
            Lesions.of_class(pred, value, affine),
            rule=rule,
            max_distance_mm=max_distance_mm,
        )
        for value in CLASS_NAMES
    }


def cross_class_pairs(
    comparisons: dict[int, ClassComparison],
    *,
    rule: str = "overlap",
    max_distance_mm: float | None = None,
    truth_left: str = "missed",
) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """{(truth class, predicted class): [(truth id, pred id)]}: truth lesions left over by their own class
    (``truth_left``: ``missed``, not found; or ``unpaired``, in no same-class pair) paired one to one with
    unpaired predictions of the other class, under ``rule``."""
    crossed = {}
    for t_value, truth_side in comparisons.items():
        for p_value, pred_side in comparisons.items():
            if p_value == t_value:
                continue
            if truth_left == "missed":
                left = truth_side.missed_truth()
            else:
                left = np.setdiff1d(np.arange(1, truth_side.truth.count + 1), [t for t, _ in truth_side.pairs])
            allowed = allowed_pairs(truth_side.truth, pred_side.pred, rule, max_distance_mm)
            keep = np.zeros_like(allowed)
            keep[np.ix_(left - 1, pred_side.unpaired_pred() - 1)] = True
            crossed[(t_value, p_value)] = one_to_one(truth_side.truth, pred_side.pred, allowed & keep)
    return crossed


def class_confusion(
    comparisons: dict[int, ClassComparison], *, rule: str = "overlap", max_distance_mm: float | None = None
) -> dict[str, dict[str, int]]:
    """Truth lesions by truth class (rows ``cmb``, ``iron``; each row sums to the truth count) against what the
    prediction made of them: found by its own class (diagonal), missed but paired one to one with an unpaired
    prediction of the other class (CMB<->iron confusion), or missed (``none``). Row ``none``: the false positive
    predictions of each class that are no such confusion."""
    names = (*CLASS_NAMES.values(), "none")
    table = {row: dict.fromkeys(names, 0) for row in names}
    crossed = cross_class_pairs(comparisons, rule=rule, max_distance_mm=max_distance_mm)
    for value, comparison in comparisons.items():
        name = CLASS_NAMES[value]
        table[name][name] = int(comparison.found.sum())
        confused_truth = sum(len(pairs) for (t, _), pairs in crossed.items() if t == value)
        confused_pred = sum(len(pairs) for (_, p), pairs in crossed.items() if p == value)
        for (t, p), pairs in crossed.items():
            if t == value:
                table[name][CLASS_NAMES[p]] = len(pairs)
        table[name]["none"] = len(comparison.missed_truth()) - confused_truth
        table["none"][name] = len(comparison.unpaired_pred()) - confused_pred
    return table


def score_lesions(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    rule: str = "overlap",
    affine: np.ndarray | None = None,
    max_distance_mm: float | None = None,
) -> dict[str, dict]:
    """Lesion-wise counts and scores per class name (``"cmb"``, ``"iron"``) for two label maps on one grid."""
    comparisons = compare_maps(truth, pred, rule=rule, affine=affine, max_distance_mm=max_distance_mm)
    return {CLASS_NAMES[v]: lesion_metrics(**c.counts()) for v, c in comparisons.items()}


def lesion_places(lesions: Lesions, spacing, locations: np.ndarray | None, regions: np.ndarray | None) -> dict:
    """Per lesion, its location and ``region side`` (:func:`.placement.lesion_place`); ``unknown`` without a map."""
    boxes = ndimage.find_objects(lesions.ids, max_label=lesions.count)
    places = [
        lesion_place(
            np.argwhere(lesions.ids[box] == n) + [b.start for b in box], spacing, locations=locations, regions=regions
        )
        for n, box in enumerate(boxes, start=1)
    ]
    return {
        "location": [location or "unknown" for location, _ in places],
        "region": ["unknown" if region is None else f"{region[0]} {region[1]}" for _, region in places],
    }


def _place_counts(comparison: ClassComparison, truth_places: list[str], pred_places: list[str]) -> dict[str, dict]:
    counts: dict[str, dict] = {}
    for place, found in zip(truth_places, comparison.found):
        entry = counts.setdefault(place, dict.fromkeys(_COUNT_KEYS, 0))
        entry["n_truth"] += 1
        entry["n_truth_found"] += int(found)
    paired = {p for _, p in comparison.pairs}
    for number, place in enumerate(pred_places, start=1):
        entry = counts.setdefault(place, dict.fromkeys(_COUNT_KEYS, 0))
        entry["n_pred"] += 1
        entry["n_pred_true"] += int(number in paired)
    return counts


def _froc_counts(
    truth: np.ndarray, pred: np.ndarray, probabilities: dict[str, np.ndarray], affine, rule: str, max_distance_mm
) -> dict[str, list[dict]]:
    """Per class name, the lesion counts at each of :data:`FROC_THRESHOLDS`. The candidates are the lesions of the
    predicted label map (the whole pipeline's output: post-processing and second stage included), each scored by
    its peak class probability; at a threshold those scoring at least it are kept and paired one to one with the
    truth under ``rule``: a truth lesion counts as found only when paired (1:1 sensitivity)."""
    counts: dict[str, list[dict]] = {}
    for value, name in CLASS_NAMES.items():
        if name not in probabilities:
            continue
        truth_lesions = Lesions.of_class(truth, value, affine)
        candidates = Lesions.of_class(pred, value, affine)
        peaks = np.asarray(ndimage.maximum(probabilities[name], candidates.ids, range(1, candidates.count + 1)))
        allowed = allowed_pairs(truth_lesions, candidates, rule, max_distance_mm)
        counts[name] = []
        for threshold in FROC_THRESHOLDS:
            kept = peaks.reshape(-1) >= threshold
            subset = candidates.subset(kept)
            paired = len(one_to_one(truth_lesions, subset, allowed[:, kept]))
            counts[name].append(
                {"n_truth": truth_lesions.count, "n_truth_found": paired, "n_pred": subset.count, "n_pred_true": paired}
            )
    return counts


def froc_curve(per_subject: list[list[dict]], n_subjects: int) -> dict:
    """Pooled FROC points (sensitivity, false positives per subject) over thresholds, from per-subject counts; the
    sensitivity at a rate of false positives the curve never gets down to is None (null), not 0."""
    points = []
    for index, threshold in enumerate(FROC_THRESHOLDS):
        totals = {key: sum(counts[index][key] for counts in per_subject) for key in _COUNT_KEYS}
        points.append(
            (threshold, _ratio(totals["n_truth_found"], totals["n_truth"]), _fp_per_subject(totals, n_subjects))
        )
    sensitivity_at = {}
    for rate in FROC_FP_RATES:
        reachable = [s for _, s, fp in points if fp <= rate and not math.isnan(s)]
        sensitivity_at[str(rate)] = max(reachable) if reachable else None
    return {
        "thresholds": [t for t, _, _ in points],
        "sensitivity": [s for _, s, _ in points],
        "fp_per_subject": [fp for _, _, fp in points],
        "sensitivity_at_fp_per_subject": sensitivity_at,
        "n_subjects": n_subjects,
    }


def _fp_per_subject(totals: dict, n_subjects: int) -> float:
    return (totals["n_pred"] - totals["n_pred_true"]) / n_subjects if n_subjects else math.nan


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


def place_maps(truth_path: Path, truth_volume) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(location map, region map) beside a truth label map (``*_desc-locations_dseg`` / ``*_desc-regions_dseg`` of
    its subject in its folder), on its grid; the location map comes from the region map when only that exists."""
    maps = {}
    for kind, loader in (("locations", load_location_map), ("regions", load_region_map)):
        path = _place_file(Path(truth_path), kind)
        if path is not None:
            volume = loader(path)
            check_same_grid(truth_volume, volume, what=f"{kind} map")
            maps[kind] = volume.data
    regions, locations = maps.get("regions"), maps.get("locations")
    if locations is None and regions is not None:
        locations = locations_from_regions(regions)
    return locations, regions


def _place_file(truth_path: Path, kind: str) -> Path | None:
    subject = subject_id(truth_path.name)
    found = [
        path
        for path in truth_path.parent.glob(f"*_{BIDS_SUFFIXES[kind]}.nii*")
        if subject is None or subject_id(path.name) == subject
    ]
    if len(found) > 1:
        raise InputError(truth_path.parent, f"several {kind} maps: {', '.join(p.name for p in sorted(found))}")
    return found[0] if found else None


def _subject_scores(truth_path: Path, pred_path: Path, probability_paths: dict, rule: str, max_distance_mm) -> dict:
    """Everything evaluate reports about one subject."""
    truth_volume, pred_volume = load_label_map(truth_path), load_label_map(pred_path)
    check_same_grid(truth_volume, pred_volume, what="prediction")
    affine = truth_volume.affine
    comparisons = compare_maps(
        truth_volume.data, pred_volume.data, rule=rule, affine=affine, max_distance_mm=max_distance_mm
    )
    locations, regions = place_maps(truth_path, truth_volume)
    places = {"location": {}, "region": {}}
    spacing = voxel_sizes(affine)
    for value, comparison in comparisons.items():
        if locations is None:
            break
        truth_places = lesion_places(comparison.truth, spacing, locations, regions)
        pred_places = lesion_places(comparison.pred, spacing, locations, regions)
        for key in ("location", "region") if regions is not None else ("location",):
            places[key][CLASS_NAMES[value]] = _place_counts(comparison, truth_places[key], pred_places[key])
    probabilities = {}
    for name, path in probability_paths.items():
        volume = load_probability_map(path)
        check_same_grid(truth_volume, volume, what="probability map")
        probabilities[name] = volume.data
    return {
        "scores": {CLASS_NAMES[v]: lesion_metrics(**c.counts()) for v, c in comparisons.items()},
        "confusion": class_confusion(comparisons, rule=rule, max_distance_mm=max_distance_mm),
        "places": places,
        "froc": _froc_counts(truth_volume.data, pred_volume.data, probabilities, affine, rule, max_distance_mm),
    }


def _sum_places(per_subject: list[dict], key: str, class_name: str) -> dict[str, dict]:
    totals: dict[str, dict] = {}
    for result in per_subject:
        for place, counts in result["places"][key].get(class_name, {}).items():
            entry = totals.setdefault(place, dict.fromkeys(_COUNT_KEYS, 0))
            for count_key in _COUNT_KEYS:
                entry[count_key] += counts[count_key]
    return {place: lesion_metrics(**counts) for place, counts in sorted(totals.items())}


def check_complete(labels: Path) -> None:
    """InputError when the provenance sidecar of a predicted label map says its output set is incomplete."""
    marker = sidecar_path(labels)
    record = read_json(marker) if marker.is_file() else None
    if isinstance(record, dict) and record.get("Complete") is False:
        raise InputError(
            labels,
            f"its output set is marked incomplete ({marker.name}: an interrupted run); run the prediction again, "
            "or pass --allow-incomplete to score it anyway",
        )


def evaluate(
    truth: str | Path,
    pred: str | Path,
    *,
    rule: str = "overlap",
    max_distance_mm: float | None = None,
    progress: bool = False,
    allow_incomplete: bool = False,
) -> dict:
    """Lesion-wise report comparing predicted label maps with truth (two files, or two folders of subjects).

    A prediction whose output set is marked incomplete (an interrupted run: its provenance sidecar says
    ``"Complete": false``) is refused (InputError naming it) unless ``allow_incomplete``.

    Folders are paired by the ``sub-XXX`` name in each file's path (:mod:`.pairing`). The report has per class
    (``"cmb"``, ``"iron"``) the pooled scores over all subjects (counts summed, then ratios),
    ``fp_per_subject``, the per-subject means of sensitivity/precision (as the DEEPMIR paper reports), count
    agreement, figures per location and region (with place maps beside the truth), the FROC curve (with
    probability maps beside the predictions) and a per-subject list; plus the CMB<->iron ``confusion``,
    ``subjects``, ``unpaired_truth``, ``unpaired_pred``. Truth and prediction of a subject must share the grid
    (InputError naming both files otherwise).
    """
    check_rule(rule, max_distance_mm)
    truth, pred = Path(truth), Path(pred)
    pairs, only_truth, only_pred = pair_label_maps(truth, pred)
    if not allow_incomplete:
        for _, _, pred_path in pairs:
            check_complete(pred_path)
    # probability maps under the prediction folder, or beside a prediction file
    probabilities = probability_files(pred) if pred.is_dir() else probability_files(pred.parent, recursive=False)
    results = []
    with progress_bar("evaluate", total=len(pairs), unit="subject", enabled=progress) as bar:
        for name, truth_path, pred_path in pairs:
            scores = _subject_scores(truth_path, pred_path, probabilities.get(name, {}), rule, max_distance_mm)
            results.append({"subject": name, "truth_file": truth_path, "pred_file": pred_path, **scores})
            bar.update(1)
    report: dict = {
        "rule": rule,
        "max_distance_mm": max_distance_mm if rule == "distance" else None,
        "n_subjects": len(results),
        "subjects": [r["subject"] for r in results],
        "unpaired_truth": only_truth,
        "unpaired_pred": only_pred,
        "confusion": _sum_confusion([r["confusion"] for r in results]),
    }
    for class_name in CLASS_NAMES.values():
        rows = [
            {"subject": r["subject"], "truth_file": str(r["truth_file"]), "pred_file": str(r["pred_file"])}
            | r["scores"][class_name]
            for r in results
        ]
        totals = {key: sum(row[key] for row in rows) for key in _COUNT_KEYS}
        pooled = lesion_metrics(**totals)
        pooled["fp_per_subject"] = _fp_per_subject(totals, len(rows))
        for key in ("sensitivity", "precision", "f1"):
            values = [row[key] for row in rows if not math.isnan(row[key])]
            pooled[f"{key}_mean_over_subjects"] = float(np.mean(values)) if values else math.nan
        pooled["count_agreement"] = count_agreement([r["n_truth"] for r in rows], [r["n_pred"] for r in rows])
        pooled["by_location"] = _sum_places(results, "location", class_name)
        pooled["by_region"] = _sum_places(results, "region", class_name)
        froc = [r["froc"][class_name] for r in results if class_name in r["froc"]]
        pooled["froc"] = froc_curve(froc, len(froc)) if froc else None
        pooled["per_subject"] = rows
        report[class_name] = pooled
    return report


def _sum_confusion(tables: list[dict]) -> dict:
    names = (*CLASS_NAMES.values(), "none")
    return {row: {column: sum(t[row][column] for t in tables) for column in names} for row in names}
