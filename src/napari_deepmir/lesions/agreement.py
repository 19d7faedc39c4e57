"""Agreement of two raters' label maps: lesion-wise matches, Cohen's kappa, ICC of counts, disagreements.

Rules (docs/lesion-tables.md): only *definite* lesions are compared (MARS, Gregoire et al. 2009, reports its
reliability for definite microbleeds): a lesion its rater rated ``possible`` in the lesion table beside the label
map (``*_lesions.tsv`` of the same participant, as a labelling session exports it) is left out; a label map without
such a table counts every lesion as definite. Rater A's and rater B's lesions of one class are paired one to one
under a matching rule of :mod:`.matching`; lesions left over are paired one to one with left-over lesions of the
other class of the other rater (a *class* disagreement); the rest were drawn by one rater only. Per class:
Cohen's kappa for the presence (at least one lesion) per participant, and ICC(2,1) of the per-participant
counts: two-way random effects, absolute agreement, single rater (Shrout & Fleiss 1979; McGraw & Wong ICC(A,1)),
overall and per location category and MARS region (with a location or region map beside rater A's label map;
a pair counts where rater A's lesion is); for microbleeds also Cohen's (1968) quadratic-weighted kappa of the
burden category (0, 1, 2-4, >=5).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import CLASS_NAMES
from ..io import InputError
from ..io.bids import subject_id
from ..io.derivatives import read_table, write_json, write_table_with_sidecar
from ..io.destinations import check_destinations, generated_by, generated_by_us, our_table
from ..io.nifti import voxel_sizes
from ..progress import progress_bar
from .candidates import COLUMNS
from .components import check_same_grid, load_label_map
from .evaluate import compare_maps, cross_class_pairs, lesion_places, place_maps
from .matching import Lesions, check_rule
from .measure import label_lesions
from .pairing import pair_label_maps
from .summary import BURDEN_CATEGORIES, burden_category

#: Column -> (description, units) of disagreements.tsv (and its sidecar).
DISAGREEMENT_COLUMNS: dict[str, tuple[str, str | None]] = {
    "subject": ("Participant (sub-XXX)", None),
    "rank": ("Number of the disagreement within the participant (1..n, by position), for review", None),
    "kind": (
        "only_a (drawn by rater A only), only_b (rater B only) or class (both drew it, as different classes)",
        None,
    ),
    "class_a": ("Rater A's class: cmb, iron or none", None),
    "class_b": ("Rater B's class: cmb, iron or none", None),
    "x_mm": ("Centroid, scanner RAS x (rater A's lesion, else rater B's)", "mm"),
    "y_mm": ("Centroid, scanner RAS y", "mm"),
    "z_mm": ("Centroid, scanner RAS z", "mm"),
    "i": ("Centroid, first array axis", "voxel"),
    "j": ("Centroid, second array axis", "voxel"),
    "k": ("Centroid, third array axis", "voxel"),
    "voxels_a": ("Voxels of rater A's lesion (0: none)", None),
    "voxels_b": ("Voxels of rater B's lesion (0: none)", None),
    "file_a": ("Rater A's label map", None),
    "file_b": ("Rater B's label map", None),
}
#: Columns a disagreement table must have to be reviewed (see :func:`read_disagreements`).
_REQUIRED = ("subject", "rank", "kind", "class_a", "class_b", "x_mm", "y_mm", "z_mm", "i", "j", "k")


@dataclass
class AgreementResult:
    report: dict
    disagreements: pd.DataFrame


def cohen_kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two raters' yes/no ratings; NaN when chance agreement is 1 (one category only)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not len(a):
        return math.nan
    observed = float(np.mean(a == b))
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1) of an (n subjects, k raters) matrix: two-way random, absolute agreement, single rater.

    (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n), with mean squares of rows (subjects), columns (raters)
    and error of the two-way ANOVA. NaN with fewer than 2 subjects or when the denominator is 0."""
    ratings = np.asarray(ratings, float)
    n, k = ratings.shape
    if n < 2 or k < 2:
        return math.nan
    grand = ratings.mean()
    ss_rows = k * float(((ratings.mean(axis=1) - grand) ** 2).sum())
    ss_columns = n * float(((ratings.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((ratings - grand) ** 2).sum()) - ss_rows - ss_columns
    ms_rows, ms_columns = ss_rows / (n - 1), ss_columns / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_columns - ms_error) / n
    return math.nan if denominator == 0 else (ms_rows - ms_error) / denominator


def weighted_kappa(a: list[str], b: list[str], categories: tuple[str, ...]) -> float:
    """Cohen's (1968) quadratic-weighted kappa of two raters' ordered ``categories``; NaN when chance disagreement
    is 0."""
    index = {category: n for n, category in enumerate(categories)}
    k = len(categories)
    observed = np.zeros((k, k))
    for x, y in zip(a, b):
        observed[index[x], index[y]] += 1
    if not observed.sum():
        return math.nan
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    weights = (np.subtract.outer(np.arange(k), np.arange(k)) / (k - 1)) ** 2
    chance = float((weights * expected).sum())
    return math.nan if chance == 0 else 1.0 - float((weights * observed).sum()) / chance


def definite_labels(path: Path, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The label map ``labels`` (read from ``path``) without the lesions its rater rated possible in the lesion table
    beside it, and how many were left out; InputError naming the table when it does not list this map's lesions."""
    subject = subject_id(path.name)
    tables = sorted(p for p in path.parent.glob("*_lesions.tsv") if subject is None or subject_id(p.name) == subject)
    if len(tables) > 1:
        raise InputError(path.parent, f"several lesion tables: {', '.join(p.name for p in tables)}")
    table = read_table(tables[0]) if tables else None
    if table is None or "certainty" not in table.columns or not (table["certainty"] == "possible").any():
        return labels, 0
    ids, classes = label_lesions(labels)
    listed = dict(zip(table["lesion_id"].astype(int), table["label"].astype(int)))
    if listed != classes:
        raise InputError(tables[0], f"does not list the lesions of {path.name} (ids or classes differ): re-export it")
    possible = table.loc[table["certainty"] == "possible", "lesion_id"].astype(int).to_numpy()
    return np.where(np.isin(ids, possible), 0, labels).astype(labels.dtype), len(possible)


def _place_counts(comparison, places_a: dict, places_b: dict, key: str) -> dict[str, dict]:
    """Per place (by ``key``: location or region), rater A's and B's lesions and the pairs (at A's lesion)."""
    counts: dict[str, dict] = {}
    for place in places_a[key]:
        counts.setdefault(place, {"n_a": 0, "n_b": 0, "n_matched": 0})["n_a"] += 1
    for place in places_b[key]:
        counts.setdefault(place, {"n_a": 0, "n_b": 0, "n_matched": 0})["n_b"] += 1
    for a_id, _ in comparison.pairs:
        counts[places_a[key][a_id - 1]]["n_matched"] += 1
    return counts


def _voxel_centre(lesions: Lesions, number: int, affine: np.ndarray) -> np.ndarray:
    world = lesions.centroids_mm[number - 1]
    return np.linalg.solve(affine[:3, :3], world - affine[:3, 3])


def _subject_disagreements(subject: str, a_path: Path, b_path: Path, rule: str, max_distance_mm) -> tuple:
    """(per-class counts, disagreement rows) of one participant."""
    a_volume, b_volume = load_label_map(a_path), load_label_map(b_path)
    check_same_grid(a_volume, b_volume, what="rater B's label map")
    affine = a_volume.affine
    a_labels, a_possible = definite_labels(Path(a_path), a_volume.data)
    b_labels, b_possible = definite_labels(Path(b_path), b_volume.data)
    comparisons = compare_maps(a_labels, b_labels, rule=rule, affine=affine, max_distance_mm=max_distance_mm)
    locations, regions = place_maps(Path(a_path), a_volume)
    crossed = cross_class_pairs(comparisons, rule=rule, max_distance_mm=max_distance_mm, truth_left="unpaired")
    rows, counts = [], {}
    class_swapped_a = {
        value: {t for (tv, _), pairs in crossed.items() if tv == value for t, _ in pairs} for value in CLASS_NAMES
    }
    class_swapped_b = {
        value: {p for (_, pv), pairs in crossed.items() if pv == value for _, p in pairs} for value in CLASS_NAMES
    }

    def row(kind: str, a_value, a_id, b_value, b_id) -> dict:
        side, value, number = ("a", a_value, a_id) if a_id else ("b", b_value, b_id)
        lesions = comparisons[value].truth if side == "a" else comparisons[value].pred
        x, y, z = lesions.centroids_mm[number - 1]
        i, j, k = _voxel_centre(lesions, number, affine)
        return {
            "subject": subject,
            "kind": kind,
            "class_a": CLASS_NAMES[a_value] if a_id else "none",
            "class_b": CLASS_NAMES[b_value] if b_id else "none",
            "x_mm": x,
            "y_mm": y,
            "z_mm": z,
            "i": i,
            "j": j,
            "k": k,
            "voxels_a": int((comparisons[a_value].truth.ids == a_id).sum()) if a_id else 0,
            "voxels_b": int((comparisons[b_value].pred.ids == b_id).sum()) if b_id else 0,
            "file_a": str(a_path),
            "file_b": str(b_path),
        }

    for value, comparison in comparisons.items():
        paired_a = {t for t, _ in comparison.pairs}
        paired_b = {p for _, p in comparison.pairs}
        counts[CLASS_NAMES[value]] = {
            "n_a": comparison.truth.count,
            "n_b": comparison.pred.count,
            "n_matched": len(comparison.pairs),
        }
        if locations is not None:
            spacing = voxel_sizes(affine)
            places_a = lesion_places(comparison.truth, spacing, locations, regions)
            places_b = lesion_places(comparison.pred, spacing, locations, regions)
            for key in ("location", "region") if regions is not None else ("location",):
                counts[CLASS_NAMES[value]][f"by_{key}"] = _place_counts(comparison, places_a, places_b, key)
        for number in range(1, comparison.truth.count + 1):
            if number not in paired_a and number not in class_swapped_a[value]:
                rows.append(row("only_a", value, number, None, 0))
        for number in range(1, comparison.pred.count + 1):
            if number not in paired_b and number not in class_swapped_b[value]:
                rows.append(row("only_b", None, 0, value, number))
    for (a_value, b_value), pairs in crossed.items():
        counts[CLASS_NAMES[a_value]][f"n_a_{CLASS_NAMES[a_value]}_b_{CLASS_NAMES[b_value]}"] = len(pairs)
        rows.extend(row("class", a_value, a_id, b_value, b_id) for a_id, b_id in pairs)
    counts["possible_left_out"] = {"a": a_possible, "b": b_possible}
    return counts, rows


def _agreement_of(n_a: list[int], n_b: list[int], matched: int) -> dict:
    """Lesion agreement (2 matched / all) and ICC(2,1) of per-participant counts."""
    return {
        "n_a": sum(n_a),
        "n_b": sum(n_b),
        "n_matched": matched,
        "lesion_agreement": 2 * matched / (sum(n_a) + sum(n_b)) if sum(n_a) + sum(n_b) else math.nan,
        "count_icc": {"form": "ICC(2,1)", "icc": icc_2_1(np.column_stack([n_a, n_b]))},
    }


def _by_place(counts: list[dict], key: str) -> dict[str, dict]:
    """Per place, :func:`_agreement_of` over the participants whose counts have places (0 where a place is absent)."""
    placed = [c[key] for c in counts if key in c]
    names = sorted({place for c in placed for place in c})
    empty = {"n_a": 0, "n_b": 0, "n_matched": 0}
    return {
        place: _agreement_of(
            [c.get(place, empty)["n_a"] for c in placed],
            [c.get(place, empty)["n_b"] for c in placed],
            sum(c.get(place, empty)["n_matched"] for c in placed),
        )
        for place in names
    }


def agreement(
    a: str | Path,
    b: str | Path,
    *,
    rule: str = "overlap",
    max_distance_mm: float | None = None,
    progress: bool = False,
) -> AgreementResult:
    """Compare rater A's and rater B's label maps (two files, or two folders paired by ``sub-XXX`` names)."""
    check_rule(rule, max_distance_mm)
    pairs, only_a, only_b = pair_label_maps(Path(a), Path(b), names=("rater A", "rater B"))
    per_subject, rows = [], []
    with progress_bar("agreement", total=len(pairs), unit="subject", enabled=progress) as bar:
        for subject, a_path, b_path in pairs:
            counts, subject_rows = _subject_disagreements(subject, a_path, b_path, rule, max_distance_mm)
            per_subject.append({"subject": subject, **counts})
            rows.extend(sorted(subject_rows, key=lambda r: (r["z_mm"], r["y_mm"], r["x_mm"])))
            bar.update(1)
    report: dict = {
        "rule": rule,
        "max_distance_mm": max_distance_mm if rule == "distance" else None,
        "certainty": "definite",
        "n_subjects": len(per_subject),
        "subjects": [s["subject"] for s in per_subject],
        "only_a": only_a,
        "only_b": only_b,
    }
    for name in CLASS_NAMES.values():
        counts = [s[name] for s in per_subject]
        n_a, n_b = [c["n_a"] for c in counts], [c["n_b"] for c in counts]
        matched = sum(c["n_matched"] for c in counts)
        present_a, present_b = [n > 0 for n in n_a], [n > 0 for n in n_b]
        report[name] = {
            **_agreement_of(n_a, n_b, matched),
            "presence": {
                "both": sum(x and y for x, y in zip(present_a, present_b)),
                "a_only": sum(x and not y for x, y in zip(present_a, present_b)),
                "b_only": sum(y and not x for x, y in zip(present_a, present_b)),
                "neither": sum(not x and not y for x, y in zip(present_a, present_b)),
            },
            "presence_kappa": cohen_kappa(present_a, present_b),
            "by_location": _by_place(counts, "by_location"),
            "by_region": _by_place(counts, "by_region"),
            "per_subject": [{"subject": s["subject"], **s[name]} for s in per_subject],
        }
    burden_a = [burden_category(s["cmb"]["n_a"]) for s in per_subject]
    burden_b = [burden_category(s["cmb"]["n_b"]) for s in per_subject]
    report["cmb"]["burden_kappa"] = {
        "form": "quadratic-weighted Cohen's kappa of the burden category " + ", ".join(BURDEN_CATEGORIES),
        "kappa": weighted_kappa(burden_a, burden_b, BURDEN_CATEGORIES),
    }
    report["possible_left_out"] = {
        rater: sum(s["possible_left_out"][rater] for s in per_subject) for rater in ("a", "b")
    }
    table = pd.DataFrame(rows, columns=[c for c in DISAGREEMENT_COLUMNS if c != "rank"])
    table.insert(1, "rank", table.groupby("subject").cumcount() + 1 if len(table) else [])
    return AgreementResult(report, table)


def check_agreement_outputs(out_dir: str | Path, *, overwrite: bool = False, inputs=()) -> tuple[Path, Path]:
    """The report and table paths in ``out_dir``, checked by the one rule (:mod:`..io.destinations`): files there
    are replaced only when ours (the report's GeneratedBy, a disagreement table) or with ``overwrite``."""
    out_dir = Path(out_dir)
    report, table = out_dir / "agreement.json", out_dir / "disagreements.tsv"
    is_table = our_table(DISAGREEMENT_COLUMNS)
    check_destinations(
        [report, table, table.with_suffix(".json")],
        overwrite=overwrite,
        ours=lambda path: generated_by_us(path) if path == report else is_table(path),
        inputs=inputs,
    )
    return report, table


def write_agreement(result: AgreementResult, out_dir: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``agreement.json`` and ``disagreements.tsv`` (with its JSON sidecar) into ``out_dir``
    (:func:`check_agreement_outputs` first)."""
    report_path, table_path = check_agreement_outputs(out_dir, overwrite=overwrite)
    report = write_json(report_path, {**result.report, "GeneratedBy": generated_by()})
    table = write_table_with_sidecar(table_path, result.disagreements, DISAGREEMENT_COLUMNS)
    return report, table


def read_disagreements(path: str | Path, subject: str | None = None) -> pd.DataFrame:
    """A disagreements.tsv (of ``deepmir agreement``), only ``subject``'s rows when given; InputError naming the
    file when columns are missing."""
    table = read_table(path)
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise InputError(path, f"not a disagreement table: missing columns {', '.join(missing)}")
    return table[table["subject"] == subject].reset_index(drop=True) if subject is not None else table


def consensus_candidates(disagreements: pd.DataFrame) -> pd.DataFrame:
    """One participant's disagreements as a candidate list for review (the columns of
    :data:`~napari_deepmir.lesions.candidates.COLUMNS`): one candidate per disagreement, in rank order, no
    suggestion, the raters' classes in ``flags``."""
    table = disagreements.sort_values("rank").reset_index(drop=True)
    candidates = pd.DataFrame(index=table.index, columns=list(COLUMNS))
    for column in ("rank", "x_mm", "y_mm", "z_mm", "i", "j", "k"):
        candidates[column] = table[column]
    for axis in ("i", "j", "k"):
        candidates[f"seed_{axis}"] = table[axis].round().astype(int)
    candidates["suggested_class"] = ""
    candidates["flags"] = "rater A: " + table["class_a"].astype(str) + "; rater B: " + table["class_b"].astype(str)
    candidates["reason"] = "raters disagree (" + table["kind"].astype(str) + ")"
    return candidates
