"""Consensus read: a third reader decides each disagreement of two raters; the result is a reference standard.

``deepmir agreement --a A --b B --out DIR`` writes ``DIR/disagreements.tsv``: the lesions one rater drew and
the other did not, or drew as the other class. A consensus read walks one participant's disagreements as the
candidates of an :class:`~napari_deepmir.rating.session.AnnotationSession` kept in ``DIR/consensus/<sub-X>/``
(so it autosaves, resumes and rates like guided labelling: definite / possible, a reason for each
rejection). Its label map starts as the lesions both raters drew alike (each the union of the two raters'
voxels); accepting a disagreement paints the raters' voxels of it with the chosen class, rejecting leaves
them out. :func:`export_consensus` writes the consensus table and the consensus map's agreement with each
rater. ``DIR/consensus`` is then a data folder (``deepmir finetune --data``, ``deepmir evaluate``,
``deepmir agreement --a DIR/consensus --b A``).

Blinded sessions show the two calls of each disagreement in a random order, without saying which rater
made which (the candidates table keeps the raters' columns so that the regions can be found again).
"""

import functools
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import CLASS_NAMES
from ..io import InputError, Volume, load_subject_dir
from ..io.bids import find_subject_files
from ..io.derivatives import write_json, write_table_with_sidecar
from ..lesions.agreement import agreement, consensus_candidates, read_disagreements
from ..lesions.components import check_same_grid, load_label_map, load_location_map
from ..lesions.guidance import assess_region
from ..lesions.matching import Lesions
from .decisions import ACCEPTED, REJECTED
from .session import AnnotationSession, annotation_name, export_session
from .store import AnnotationStore

#: Folder, beside the disagreement table, that holds the consensus sessions (one folder per participant).
CONSENSUS_FOLDER = "consensus"
#: Columns of the disagreement table a consensus candidate keeps: the raters' calls and files.
RATER_COLUMNS = ("kind", "class_a", "class_b", "voxels_a", "voxels_b", "file_a", "file_b")
_CLASS_VALUES = {name: value for value, name in CLASS_NAMES.items()}
#: Column -> (description, units) of the consensus table.
CONSENSUS_COLUMNS: dict[str, tuple[str, str | None]] = {
    "subject": ("Participant (sub-XXX)", None),
    "rank": ("Number of the disagreement within the participant (disagreements.tsv)", None),
    "kind": ("only_a, only_b (drawn by one rater only) or class (drawn as different classes)", None),
    "class_a": ("Rater A's class: cmb, iron or none", None),
    "class_b": ("Rater B's class: cmb, iron or none", None),
    "consensus": ("The consensus: cmb, iron, not a lesion, or undecided (left out of the consensus map)", None),
    "certainty": ("Certainty of an accepted lesion: definite or possible (MARS)", None),
    "reason": ("Why it is not a lesion (a rejection reason of the labelling protocol)", None),
    "rater": ("Who decided", None),
    "time": ("When (ISO 8601, UTC)", None),
    "x_mm": ("Centroid, scanner RAS x", "mm"),
    "y_mm": ("Centroid, scanner RAS y", "mm"),
    "z_mm": ("Centroid, scanner RAS z", "mm"),
}


def consensus_root(disagreements_path: str | Path) -> Path:
    """The folder of the consensus sessions of a disagreement table: ``consensus/`` beside it."""
    return Path(disagreements_path).resolve().parent / CONSENSUS_FOLDER


def is_consensus_candidate(candidate) -> bool:
    """Whether a candidate table row is a disagreement of a consensus read."""
    return all(column in candidate for column in RATER_COLUMNS)


@functools.lru_cache(maxsize=4)
def _rater_lesions(path: str, stamp: tuple[int, int]) -> dict[int, Lesions]:
    volume = load_label_map(path)
    return {value: Lesions.of_class(volume.data, value, volume.affine) for value in CLASS_NAMES}


def _lesions_of(path) -> dict[int, Lesions]:
    """The lesions of each class of a rater's label map (cached while the file is unchanged)."""
    status = Path(path).stat()
    return _rater_lesions(str(path), (status.st_mtime_ns, status.st_size))


def _nearest(lesions: Lesions, centre: np.ndarray, voxels: int) -> np.ndarray:
    """The lesion of ``lesions`` of ``voxels`` voxels (any size when none has it) whose centroid is nearest."""
    sizes = np.bincount(lesions.ids.ravel(), minlength=lesions.count + 1)[1:]
    pool = np.flatnonzero(sizes == voxels) if np.any(sizes == voxels) else np.arange(lesions.count)
    if not len(pool):
        raise ValueError("no such lesion")
    number = pool[np.argmin(np.linalg.norm(lesions.centroids_mm[pool] - centre, axis=1))] + 1
    return lesions.ids == number


def consensus_region(candidate) -> np.ndarray:
    """The voxels (SWI grid) of a disagreement: rater A's lesion, rater B's, or both for a class disagreement
    (rater B's: the one of its size nearest rater A's centroid, where the row is centred); InputError naming
    the file when a rater's label map no longer holds it."""
    centre = np.array([candidate["x_mm"], candidate["y_mm"], candidate["z_mm"]], dtype=float)
    region = None
    for side in ("a", "b"):
        name = candidate[f"class_{side}"]
        if name not in _CLASS_VALUES:
            continue
        path = candidate[f"file_{side}"]
        lesions = _lesions_of(path)[_CLASS_VALUES[name]]
        try:
            mask = _nearest(lesions, centre, int(candidate[f"voxels_{side}"]))
        except ValueError:
            raise InputError(path, f"no {name} lesion left near the disagreement at {np.round(centre, 1)} mm") from None
        region = mask if region is None else region | mask
    if region is None:
        raise ValueError("a disagreement names no rater's lesion")
    return region


def subject_disagreements(path: str | Path, subject: str) -> pd.DataFrame:
    """``subject``'s rows of a disagreement table, in rank order; InputError naming the file when it has none or
    lacks the raters' columns."""
    table = read_disagreements(path)
    missing = [c for c in RATER_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"not a disagreement table of deepmir agreement: missing columns {', '.join(missing)}")
    rows = table[table["subject"] == annotation_name(subject)].sort_values("rank").reset_index(drop=True)
    if not len(rows):
        listed = ", ".join(sorted(set(table["subject"].astype(str))))[:200] or "none"
        problem = f"no disagreement of {annotation_name(subject)} (participants with one: {listed})"
        raise InputError(path, problem + "; where the raters agree, either rater's map is the consensus")
    if rows["file_a"].nunique() != 1 or rows["file_b"].nunique() != 1:
        raise InputError(path, f"{annotation_name(subject)} has several label maps per rater")
    return rows


def agreed_labels(a: np.ndarray, b: np.ndarray, regions: list[np.ndarray]) -> np.ndarray:
    """The lesions both raters drew alike: the union of the two maps (rater A's class where both drew a voxel)
    without the voxels of the disagreements (``regions``)."""
    labels = np.where(a > 0, a, b).astype(np.uint8)
    for region in regions:
        labels[region] = 0
    return labels


def _calls(rows: pd.DataFrame, blinded: bool, seed: int) -> list[str]:
    """Each disagreement's two calls: who said what, or (``blinded``) in a random order without the raters."""
    if not blinded:
        return [f"A: {a}, B: {b}" for a, b in zip(rows["class_a"], rows["class_b"])]
    swap = np.random.default_rng(seed).random(len(rows)) < 0.5
    pairs = [(b, a) if s else (a, b) for a, b, s in zip(rows["class_a"], rows["class_b"], swap)]
    return [f"one rater: {first}, the other: {second}" for first, second in pairs]


def review_candidates(rows: pd.DataFrame, regions: list[np.ndarray], subject, locations=None, *, blinded=False):
    """The disagreements as candidates for review (:func:`~.lesions.agreement.consensus_candidates`) with the
    protocol's evidence on each region, a seed voxel inside it, the raters' columns and their ``calls``."""

    table = consensus_candidates(rows)
    table["disagreement"] = rows["rank"].to_numpy()
    for index, region in enumerate(regions):
        evidence = assess_region(region, subject, locations).as_dict()
        for key in ("diameter_mm", "extent_mm", "qsm_mean_ppb", "qsm_peak_ppb", "qsm_contrast_ppb"):
            table.loc[index, key] = evidence[key]
        for key in ("swi_contrast", "elongation", "location", "flags"):
            table.loc[index, key] = evidence[key]
        voxels = np.argwhere(region)
        seed = voxels[np.argmin(np.linalg.norm(voxels - rows.loc[index, ["i", "j", "k"]].to_numpy(float), axis=1))]
        table.loc[index, ["seed_i", "seed_j", "seed_k"]] = seed
        table.loc[index, "voxels"] = len(voxels)
        table.loc[index, "volume_mm3"] = len(voxels) * float(np.prod(subject.spacing))
    for column in RATER_COLUMNS:
        table[column] = rows[column].to_numpy()
    table["calls"] = _calls(rows, blinded, zlib.crc32(str(rows["subject"].iloc[0]).encode()))
    return table


def start_consensus(session: AnnotationSession, subject, path: str | Path, *, locations=None) -> bool:
    """Make ``session`` (opened in :func:`consensus_root`) the consensus read of ``subject``'s disagreements
    in the table at ``path``: the agreed lesions as its labels, the disagreements as its candidates. A session
    already under way resumes as it is (False); True when started."""
    rows = subject_disagreements(path, subject.name)
    if session.candidates is not None or session.decisions:
        if (
            session.candidates is None
            or not len(session.candidates)
            or not is_consensus_candidate(session.candidates.iloc[0])
        ):
            raise InputError(session.decisions_path, "holds a labelling session, not a consensus read")
        return False
    a, b = (load_label_map(rows.loc[0, f"file_{side}"]) for side in ("a", "b"))
    reference = Volume(np.zeros(subject.shape, np.uint8), subject.affine, subject.paths.get("swi"))
    check_same_grid(reference, a, what="rater A's label map")
    check_same_grid(reference, b, what="rater B's label map")
    regions = [consensus_region(row) for _, row in rows.iterrows()]
    session.save_labels(agreed_labels(a.data, b.data, regions))
    session.set_candidates(review_candidates(rows, regions, subject, locations, blinded=session.blinded))
    return True


def _verdict(decision) -> str:
    if decision is None or decision.stale:
        return "undecided"
    if decision.decision == REJECTED:
        return "not a lesion"
    return next(CLASS_NAMES[value] for value, name in ACCEPTED.items() if name == decision.decision)


def consensus_table(session: AnnotationSession) -> pd.DataFrame:
    """One row per disagreement (in the order of disagreements.tsv): the raters' calls and the consensus."""
    rows = []
    for _, candidate in session.candidates.sort_values("disagreement").iterrows():
        decision = session.decision_for(candidate)
        rows.append(
            {
                "subject": session.name,
                "rank": int(candidate["disagreement"]),
                **{column: candidate[column] for column in ("kind", "class_a", "class_b")},
                "consensus": _verdict(decision),
                "certainty": None if decision is None else decision.certainty,
                "reason": None if decision is None else decision.reason,
                "rater": None if decision is None else decision.rater,
                "time": None if decision is None else decision.time,
                **{column: float(candidate[column]) for column in ("x_mm", "y_mm", "z_mm")},
            }
        )
    return pd.DataFrame(rows, columns=list(CONSENSUS_COLUMNS))


def consensus_agreement(session: AnnotationSession) -> dict:
    """Lesion-wise agreement of the saved consensus map with each rater's map, under the matching rule of the
    agreement that listed the disagreements (its ``agreement.json``, else overlap)."""

    settings = session.folder.parent.parent / "agreement.json"
    rule, distance = "overlap", None
    if settings.is_file():
        try:
            saved = json.loads(settings.read_text(encoding="utf-8"))
            rule, distance = saved.get("rule", rule), saved.get("max_distance_mm")
        except (ValueError, AttributeError) as error:
            raise InputError(settings, f"not an agreement report ({str(error)[:200]})") from None
    first = session.candidates.iloc[0]
    report = {"consensus": str(session.labels_path), "rule": rule, "max_distance_mm": distance}
    for side in ("a", "b"):
        result = agreement(session.labels_path, first[f"file_{side}"], rule=rule, max_distance_mm=distance).report
        report[f"rater_{side}"] = {"file": str(first[f"file_{side}"])} | {
            name: {
                "n_consensus": result[name]["n_a"],
                "n_rater": result[name]["n_b"],
                "n_matched": result[name]["n_matched"],
                "lesion_agreement": result[name]["lesion_agreement"],
            }
            for name in CLASS_NAMES.values()
        }
    return report


def agreement_text(report: dict) -> str:
    """One line per rater: the consensus map's lesion agreement with that rater, per class."""

    def figure(values: dict) -> str:
        value = values["lesion_agreement"]
        share = "n/a" if value is None or math.isnan(value) else f"{value:.2f}"
        return f"{share} ({values['n_matched']} matched of {values['n_consensus']} / {values['n_rater']})"

    return "\n".join(
        f"consensus vs rater {side.upper()}: "
        + ", ".join(f"{name} {figure(report[f'rater_{side}'][name])}" for name in CLASS_NAMES.values())
        for side in ("a", "b")
    )


def export_consensus(session: AnnotationSession, subject, *, locations=None) -> tuple[list[Path], dict]:
    """Write the consensus read's lesion table and rejected candidates (:func:`~.session.export_session`),
    the consensus table (``*_desc-consensus_decisions.tsv``) and the consensus map's agreement with each rater
    (``*_desc-consensus_agreement.json``); returns the files and that agreement. Undecided disagreements are
    left out of the map and listed as such."""

    if session.candidates is None or not is_consensus_candidate(session.candidates.iloc[0]):
        raise InputError(session.decisions_path, "not a consensus read: open a disagreement table first")
    session.save_labels(session.labels)  # written once even when nothing was decided
    paths = export_session(session, subject, locations=locations)
    table = consensus_table(session)
    paths.append(
        write_table_with_sidecar(
            session.folder / f"{session.name}_desc-consensus_decisions.tsv", table, CONSENSUS_COLUMNS
        )
    )
    report = consensus_agreement(session) | {"undecided": int((table["consensus"] == "undecided").sum())}
    paths.append(write_json(session.folder / f"{session.name}_desc-consensus_agreement.json", report))
    return paths, report


def export_consensus_reads(disagreements_path: str | Path) -> list[tuple[str, dict]]:
    """:func:`export_consensus` of every consensus read of a disagreement table (the session folders under
    :func:`consensus_root` that hold one), each subject loaded from the images in its session folder;
    (subject, agreement report) of each. InputError naming the table when none was started."""

    root = consensus_root(disagreements_path)
    folders = sorted(f for f in root.iterdir() if (f / f"{f.name}_decisions.json").is_file()) if root.is_dir() else []
    results = []
    for folder in folders:
        subject = load_subject_dir(folder, registration="check")
        session = AnnotationStore(root).open(subject)
        if session.candidates is None or not len(session.candidates):
            continue
        if not is_consensus_candidate(session.candidates.iloc[0]):
            continue
        location_file = find_subject_files(folder).get("locations")
        locations = None if location_file is None else load_location_map(location_file).data
        results.append((session.name, export_consensus(session, subject, locations=locations)[1]))
    if not results:
        raise InputError(disagreements_path, f"no consensus read in {root}: open the table in Label lesions first")
    return results
