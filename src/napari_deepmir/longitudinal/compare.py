"""A baseline and a follow-up of one participant compared: registration, lesions of each session, the change
table and the ARIA-H grade; written as one output set with its provenance.

Each session's lesions come from the detection pipeline (:func:`..detection.pipeline.detect`, the same as ``deepmir
predict``, each session's output set written beside the comparison) or from a label map given for it (an
earlier output, an annotation) on that session's SWI grid.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..detection.pipeline import detect
from ..io import InputError, Subject
from ..io.nifti import Volume
from ..io.subject import load_subject_dir
from ..lesions.components import load_label_map
from ..lesions.measure import label_lesions, measure_lesions
from .changes import compare_lesions, new_microbleeds
from .difference import apply_difference_evidence, found_by_column
from .grading import AriaGrade
from .register import SessionRegistration, register_sessions


@dataclass
class Session:
    """One session: its subject (images on its SWI grid), label map, lesion table and where the labels came from."""

    label: str
    subject: Subject
    labels: np.ndarray
    table: pd.DataFrame
    source: dict
    detection: object = None  # the pipeline's DetectionResult when the session was detected here
    lesion_ids: np.ndarray | None = None  # lesion-id map (table's lesion_id) when lesions were added to the labels

    def lesion_id_map(self) -> np.ndarray:
        """Each voxel's lesion id (the table's ``lesion_id``; 0 outside lesions)."""
        return self.lesion_ids if self.lesion_ids is not None else label_lesions(self.labels)[0]


@dataclass
class SessionComparison:
    participant: str
    baseline: Session
    followup: Session
    registration: SessionRegistration
    changes: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    score: dict | None = None  # against a synthetic pair's truth (:func:`.evaluate.score_pair`), when given

    @property
    def grade(self) -> AriaGrade:
        """The ARIA-H grade; new lesions a rater rejected (``review`` column) do not count."""
        return AriaGrade(new_microbleeds(self.changes))

    def summary(self) -> str:
        counts = self.changes["status"].value_counts()
        parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("new", "persisting", "grown", "resolved"))
        return f"{self.participant}: {parts} lesion(s); {self.grade.describe()}"


def session_label(folder: str | Path, default: str) -> str:
    """The BIDS session of a folder (``ses-2`` of ``.../sub-1/ses-2`` or ``.../ses-2/anat``), else ``default``."""
    for part in reversed(Path(folder).parts):
        if part.startswith("ses-"):
            return part
    return default


def labels_on_grid(path: str | Path, subject: Subject) -> np.ndarray:
    """A label map (0/1/2; all 0 is a session without lesions) that must lie on ``subject``'s SWI grid; an
    InputError names the file otherwise."""
    volume = load_label_map(path)
    if volume.data.shape != subject.shape or not np.allclose(volume.affine, subject.affine, atol=1e-3):
        raise InputError(
            path,
            f"is not on the SWI grid of {subject.name} ({subject.paths.get('swi')}): "
            "labels must have the SWI's shape and affine",
        )
    return volume.data.astype(np.uint8)


def load_session(
    folder: str | Path,
    label: str,
    *,
    labels: str | Path | None = None,
    model=None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> Session:
    """Load session ``label``'s folder and find its lesions: from ``labels`` when given, else by the detection
    pipeline."""
    subject = load_subject_dir(folder)
    if labels is not None:
        found = labels_on_grid(labels, subject)
        return Session(label, subject, found, measure_lesions(found, subject), {"Labels": str(Path(labels))})
    result = detect(subject, model, device=device, progress=progress)
    return Session(label, subject, result.labels, result.table, dict(result.model), detection=result)


def compare_sessions(baseline: Session, followup: Session) -> SessionComparison:
    """Register the follow-up to the baseline, weigh the difference evidence (:mod:`.difference`: the sessions'
    lesions gain those the images show), match their lesions and grade the follow-up."""
    base, follow = baseline.subject, followup.subject
    both_t2 = base.t2 is not None and follow.t2 is not None
    registration = register_sessions(
        Volume(base.swi, base.affine),
        Volume(follow.swi, follow.affine),
        base.mask,
        baseline_t2=Volume(base.t2, base.affine) if both_t2 else None,
        followup_t2=Volume(follow.t2, follow.affine) if both_t2 else None,
    )
    baseline, followup = apply_difference_evidence(baseline, followup, registration.followup_to_baseline)
    changes = compare_lesions(baseline.table, followup.table, registration.followup_to_baseline)
    changes["found_by"] = found_by_column(changes, baseline.table, followup.table)
    warnings = [*baseline.subject.warnings, *followup.subject.warnings]
    if not registration.reliable:
        warnings.append(registration.describe())
    participant = baseline.subject.name
    return SessionComparison(participant, baseline, followup, registration, changes, warnings)
