"""An annotation session: one subject's labels (SWI grid), candidate list, decisions and review position,
each saved atomically as it changes, and its export (lesion table with certainty, rejected candidates).
"""

import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import BIDS_SUFFIXES, CLASS_NAMES
from ..detection.pipeline import full_table
from ..io import Subject, save_labels
from ..io.atomic import atomic_path, write_text_atomic
from ..io.bids import subject_id
from ..io.derivatives import write_table_with_sidecar
from ..lesions.candidates import table_descriptions, useful_candidates
from ..lesions.components import class_components
from ..lesions.measure import COLUMNS, measure_lesions
from .decisions import (
    ACCEPTED,
    DECISIONS_FORMAT,
    DECISIONS_VERSION,
    DEFINITE,
    REJECTED,
    REJECTION_REASONS,
    SAME_CANDIDATE_MM,
    Decision,
    candidate_seed,
)

#: Candidate columns a blinded rater does not see: the ranking and the protocol's or the model's opinion.
BLINDED_HIDDEN_COLUMNS = ("score", "suggested_class", "flags", "reason", "probability_mean", "blob_response")


def annotation_name(name: str) -> str:
    """A BIDS subject name (``sub-<alphanumerics>``) for a subject called ``name``."""
    return subject_id(name) or "sub-" + (re.sub(r"[^A-Za-z0-9]", "", name) or "unnamed")


@dataclass
class AnnotationSession:
    """An open subject: its labels (SWI grid), candidates, decisions and review position, saved atomically."""

    folder: Path
    name: str
    affine: np.ndarray
    labels: np.ndarray
    rater: str
    candidates: pd.DataFrame | None = None
    decisions: list[Decision] = field(default_factory=list)
    position: int = 0
    #: A blinded session lists candidates unranked (shuffled with ``order_seed``), without suggestions.
    blinded: bool = False
    order_seed: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def labels_path(self) -> Path:
        return self.folder / f"{self.name}_{BIDS_SUFFIXES['labels']}.nii.gz"

    @property
    def decisions_path(self) -> Path:
        return self.folder / f"{self.name}_decisions.json"

    @property
    def candidates_path(self) -> Path:
        return self.folder / f"{self.name}_candidates.csv"

    @property
    def lesions_path(self) -> Path:
        return self.folder / f"{self.name}_desc-annotation_lesions.tsv"

    @property
    def rejected_path(self) -> Path:
        return self.folder / f"{self.name}_desc-rejected_candidates.tsv"

    def blind(self) -> None:
        """Make the session blinded (before any candidate is listed); it stays so. ValueError once reviewing began."""
        if self.blinded:
            return
        if self.candidates is not None or self.decisions:
            raise ValueError(f"{self.decisions_path}: candidates were already listed unblinded; it cannot be blinded")
        self.blinded, self.order_seed = True, zlib.crc32(self.name.encode())
        self.save_decisions()

    def save_labels(self, labels: np.ndarray) -> bool:
        """Write ``labels`` (SWI grid) if they differ from the last saved ones; True when written."""
        labels = np.asarray(labels, dtype=np.uint8)
        if labels.shape != self.labels.shape:
            raise ValueError(f"labels {labels.shape} are not on the subject's grid {self.labels.shape}")
        if self.labels_path.exists() and np.array_equal(labels, self.labels):
            return False
        save_labels(self.labels_path, labels, self.affine)
        self.labels = labels.copy()
        return True

    def set_candidates(self, table: pd.DataFrame) -> None:
        """Keep and save the candidate list under review (decisions already made stay recorded); a blinded
        session keeps it unranked and without suggestions (:func:`blinded_candidates`)."""
        self.candidates = blinded_candidates(table, self.order_seed) if self.blinded else table.reset_index(drop=True)
        with atomic_path(self.candidates_path) as tmp:
            self.candidates.to_csv(tmp, index=False)
        self.position = min(self.position, max(len(self.candidates) - 1, 0))
        self.save_decisions()

    def decision_for(self, candidate) -> Decision | None:
        """The latest decision on ``candidate`` (a candidate table row), or None."""
        centre = np.array([candidate["x_mm"], candidate["y_mm"], candidate["z_mm"]], dtype=float)
        for decision in reversed(self.decisions):
            if np.linalg.norm(decision.centre - centre) <= SAME_CANDIDATE_MM:
                return decision
        return None

    def record(self, candidate, decision: str, *, certainty: str = DEFINITE, reason: str = "other") -> Decision:
        """Record ``decision`` on ``candidate`` (a candidate table row) by the rater, now, with the
        ``certainty`` of an acceptance or the ``reason`` of a rejection; saved at once."""
        rejected = decision == REJECTED
        made = Decision(
            rank=int(candidate["rank"]),
            x_mm=float(candidate["x_mm"]),
            y_mm=float(candidate["y_mm"]),
            z_mm=float(candidate["z_mm"]),
            decision=decision,
            rater=self.rater,
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            certainty=None if rejected else certainty,
            reason=reason if rejected else None,
        )
        previous = self.decision_for(candidate)
        if previous is not None:
            self.decisions.remove(previous)
        self.decisions.append(made)
        self.save_decisions()
        return made

    def mark_stale(self, labels: np.ndarray) -> bool:
        """Mark each accepted candidate whose seed voxel no longer holds its class in ``labels`` (SWI grid)
        as stale (and one painted again as not); saved when anything changed. True when something changed."""
        if self.candidates is None:
            return False
        changed = False
        for _, row in self.candidates.iterrows():
            decision = self.decision_for(row)
            if decision is None or decision.decision == REJECTED:
                continue
            value = next(v for v, name in ACCEPTED.items() if name == decision.decision)
            stale = bool(labels[candidate_seed(row)] != value)
            if stale != decision.stale:
                decision.stale, changed = stale, True
        if changed:
            self.save_decisions()
        return changed

    @property
    def reviewed(self) -> int:
        """How many candidates of the current list have a decision."""
        if self.candidates is None:
            return 0
        decisions = (self.decision_for(row) for _, row in self.candidates.iterrows())
        return sum(d is not None and not d.stale for d in decisions)

    def set_position(self, position: int) -> None:
        """Remember the candidate under review (index into the candidate list); saved at once."""
        self.position = int(position)
        self.save_decisions()

    def save_decisions(self) -> None:
        content = {
            "format": DECISIONS_FORMAT,
            "version": DECISIONS_VERSION,
            "subject": self.name,
            "rater": self.rater,
            "position": self.position,
            "blinded": self.blinded,
            "order_seed": self.order_seed,
            "candidates": self.candidates_path.name if self.candidates is not None else None,
            "decisions": [asdict(d) for d in self.decisions],
        }
        write_text_atomic(self.decisions_path, json.dumps(content, indent=1) + "\n")

    def certainty_marks(self) -> list[tuple[tuple[float, float, float], str]]:
        """(centre mm, certainty) of every standing acceptance that has one, for the lesion table."""
        return [
            (tuple(d.centre), d.certainty)
            for d in self.decisions
            if d.decision != REJECTED and not d.stale and d.certainty is not None
        ]

    def rejected_candidates(self) -> pd.DataFrame:
        """One row per rejected candidate: where (mm; seed voxel and measurements when its candidate is
        listed), why, by whom and when. The hard negatives a fine-tuning needs."""
        first = ["rank", "x_mm", "y_mm", "z_mm", "reason", "rater", "time"]
        rows = []
        for decision in self.decisions:
            if decision.decision != REJECTED:
                continue
            listed = self._listed_row(decision) or {}
            rows.append({k: v for k, v in listed.items() if k not in first} | {k: getattr(decision, k) for k in first})
        table = pd.DataFrame(rows)
        return table.reindex(columns=first + [c for c in table.columns if c not in first])

    def _listed_row(self, decision: Decision) -> dict | None:
        """The listed candidate a decision belongs to (within :data:`SAME_CANDIDATE_MM`), or None."""
        if self.candidates is None or not len(self.candidates):
            return None
        distances = np.linalg.norm(self.candidates[["x_mm", "y_mm", "z_mm"]].to_numpy(float) - decision.centre, axis=1)
        nearest = int(np.argmin(distances))
        return self.candidates.iloc[nearest].to_dict() if distances[nearest] <= SAME_CANDIDATE_MM else None

    def counts(self) -> dict[int, int]:
        """Number of lesions (26-connected components) of each class in the saved-or-given labels."""
        return {value: class_components(self.labels, value)[1] for value in CLASS_NAMES}


def blinded_candidates(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` for a blinded review: its useful head (:func:`~napari_deepmir.lesions.candidates.useful_candidates`),
    in a random order reproducible from ``seed``, ranks renumbered in that order, without the columns of
    :data:`BLINDED_HIDDEN_COLUMNS`."""
    table = useful_candidates(table)
    order = np.random.default_rng(seed).permutation(len(table))
    blinded = table.iloc[order].drop(columns=list(BLINDED_HIDDEN_COLUMNS), errors="ignore").reset_index(drop=True)
    blinded["rank"] = np.arange(1, len(blinded) + 1)
    return blinded


def export_session(session: AnnotationSession, subject: Subject, *, locations: np.ndarray | None = None) -> list[Path]:
    """Write the session's lesion table (with each lesion's ``certainty`` from the decisions) and its
    rejected candidates with their reasons, each with a JSON sidecar, in the annotation folder."""
    table = measure_lesions(session.labels, subject, locations=locations, certainty=session.certainty_marks())
    rejected_columns = table_descriptions() | {
        "rank": ("Rank of the candidate in the list the rater reviewed", None),
        "reason": ("Why the rater rejected it: " + ", ".join(REJECTION_REASONS), None),
        "rater": ("Who rejected it", None),
        "time": ("When (ISO 8601, UTC)", None),
    }
    return [
        write_table_with_sidecar(session.lesions_path, full_table(table), COLUMNS),
        write_table_with_sidecar(session.rejected_path, session.rejected_candidates(), rejected_columns),
    ]
