"""Annotation store for guided labelling: labels, candidate decisions and review position per subject.

One folder per subject under an annotation root (by default ``derivatives/deepmir-annotations/`` of
the dataset that holds the subject's folder, which subject discovery skips) holds ``sub-X_dseg.nii.gz``
(labels on the SWI grid, SWI affine),
``sub-X_decisions.json`` (who accepted which candidate as definite or possible, who rejected which and
why, when, whether the session is blinded, and where the review stopped), ``sub-X_candidates.csv`` (the
candidate list under review) and the subject's modality files (hard links when possible, else copies);
:func:`export_session` adds the lesion table (with the rater's certainty) and the rejected candidates
with their reasons (hard negatives for fine-tuning). The root is thus a data folder that
``deepmir finetune --data ROOT`` reads. Every write is atomic; a file that cannot be read is
renamed aside with a warning, never overwritten.
"""

import getpass
import json
import math
import os
import re
import shutil
import warnings
import zlib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .conventions import BIDS_SUFFIXES, CLASS_NAMES
from .io import InputError, Subject, save_labels, save_nifti
from .io.atomic import atomic_path, write_text_atomic
from .io.bids import find_subject_files, subject_id

#: Folder made under the dataset's ``derivatives/`` when no annotation root is given.
DEFAULT_FOLDER_NAME = "deepmir-annotations"
#: A candidate's decision: accepted as a class (``accepted-cmb``, ``accepted-iron``) or rejected.
ACCEPTED = {value: f"accepted-{name}" for value, name in CLASS_NAMES.items()}
REJECTED = "rejected"
DECISIONS = (*ACCEPTED.values(), REJECTED)
#: How sure the rater is of an accepted lesion: MARS definite / possible (BOMBS: certain / uncertain).
DEFINITE, POSSIBLE = "definite", "possible"
CERTAINTIES = (DEFINITE, POSSIBLE)
#: Why a candidate was rejected: the mimics of the rating scales (Greenberg et al. 2009), artefacts, other.
REJECTION_REASONS = (
    "vein",
    "calcification",
    "flow void",
    "cortical superficial siderosis",
    "cavernoma",
    "artefact",
    "other",
)
#: Candidate columns a blinded rater does not see: the ranking and the protocol's or the model's opinion.
BLINDED_HIDDEN_COLUMNS = ("score", "suggested_class", "flags", "reason", "probability_mean", "blob_response")
#: A saved decision belongs to a candidate whose centre lies within this distance (mm).
SAME_CANDIDATE_MM = 1.0
#: Longest rater name accepted.
MAX_RATER_LENGTH = 64
_FORMAT = "deepmir-annotation-decisions"
#: Version 2 added certainty, rejection reasons and the blinded mode; version 1 files are read as they are.
_VERSION = 2


def default_rater() -> str:
    """The login name of the current user (the rater), or ``unknown``."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 (getpass raises various errors when no user name is set)
        return "unknown"


def rater_problem(rater) -> str | None:
    """Why ``rater`` is not a usable rater name (a short printable string), or None."""
    if not isinstance(rater, str) or not rater.strip():
        return f"rater must be a non-empty text, not {rater!r}"[:200]
    if len(rater) > MAX_RATER_LENGTH or not rater.isprintable():
        return f"rater must be printable and at most {MAX_RATER_LENGTH} characters, not {rater[:80]!r}"
    return None


def annotation_name(name: str) -> str:
    """A BIDS subject name (``sub-<alphanumerics>``) for a subject called ``name``."""
    return subject_id(name) or "sub-" + (re.sub(r"[^A-Za-z0-9]", "", name) or "unnamed")


@dataclass
class Decision:
    """A rater's verdict on one candidate."""

    rank: int
    x_mm: float
    y_mm: float
    z_mm: float
    decision: str
    rater: str
    time: str
    #: An acceptance whose paint is gone (undone or erased): shown as stale, not counted as accepted.
    stale: bool = False
    #: An acceptance's certainty (:data:`CERTAINTIES`); None in files written before it was recorded.
    certainty: str | None = None
    #: A rejection's reason (:data:`REJECTION_REASONS`); None in files written before it was recorded.
    reason: str | None = None

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        rejected = self.decision == REJECTED
        if self.certainty is not None and (rejected or self.certainty not in CERTAINTIES):
            raise ValueError(
                f"certainty must be one of {', '.join(CERTAINTIES)} on an acceptance, not {self.certainty!r}"
            )
        if self.reason is not None and (not rejected or self.reason not in REJECTION_REASONS):
            raise ValueError(
                f"reason must be one of {', '.join(REJECTION_REASONS)} on a rejection, not {self.reason!r}"
            )

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x_mm, self.y_mm, self.z_mm], dtype=float)


def _set_aside(path: Path, problem: str) -> str:
    """Rename an unreadable file to ``<name>.corrupt-<time>`` and return the warning about it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(aside)
    message = f"{path}: {problem}; kept aside as {aside.name}, starting afresh"
    warnings.warn(message, stacklevel=3)
    return message


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
            "format": _FORMAT,
            "version": _VERSION,
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
        from .lesions.components import class_components

        return {value: class_components(self.labels, value)[1] for value in CLASS_NAMES}


def user_annotations_dir() -> Path:
    """The user's own annotation folder (platformdirs' user data folder, e.g. ``~/.local/share/napari-deepmir/``
    on Linux): where the annotations of a subject shipped inside this package (the sample) go."""
    import platformdirs

    return platformdirs.user_data_path("napari-deepmir", appauthor=False) / DEFAULT_FOLDER_NAME


def default_annotation_root(swi_path: str | Path) -> Path:
    """``<dataset>/derivatives/deepmir-annotations`` for a subject's SWI file
    (``<dataset>/sub-X[/anat]/...swi.nii.gz``); :func:`user_annotations_dir` for a subject inside the installed
    package (the sample), which is never written to."""
    if Path(__file__).resolve().parent in Path(swi_path).resolve().parents:
        return user_annotations_dir()
    subject_folder = Path(swi_path).resolve().parent
    if subject_folder.name == "anat":
        subject_folder = subject_folder.parent
    return subject_folder.parent / "derivatives" / DEFAULT_FOLDER_NAME


class AnnotationStore:
    """Where annotation sessions live: ``root/<sub-X>/``; without a root,
    ``<dataset>/derivatives/deepmir-annotations/<sub-X>/`` (the dataset: the folder holding the subject's folder)."""

    def __init__(self, root: str | Path | None = None):
        self.root = None if root in (None, "") else Path(root)

    def folder_for(self, subject: Subject) -> Path:
        """The annotation folder of ``subject``."""
        name = annotation_name(subject.name)
        if self.root is not None:
            return self.root / name
        swi = subject.paths.get("swi")
        if swi is None:
            raise InputError(None, f"subject {subject.name} was not read from a file: choose an annotation folder")
        return default_annotation_root(swi) / name

    def open(self, subject: Subject, *, rater: str | None = None, blinded: bool = False) -> AnnotationSession:
        """Create or reopen the annotation session of ``subject`` (labels, candidates, decisions, position).

        ``blinded`` makes a new session blinded (:meth:`AnnotationSession.blind`); a blinded session
        stays blinded, and one already reviewed unblinded stays unblinded (with a warning)."""
        if rater is not None and rater_problem(rater):
            raise InputError(None, rater_problem(rater))
        folder = self.folder_for(subject)
        folder.mkdir(parents=True, exist_ok=True)
        session = AnnotationSession(
            folder=folder,
            name=annotation_name(subject.name),
            affine=np.asarray(subject.affine, dtype=float),
            labels=np.zeros(subject.shape, dtype=np.uint8),
            rater=rater or default_rater(),
        )
        _write_modalities(subject, folder, session.name)
        _load_labels(session)
        _load_decisions(session, rater)
        if blinded and not session.blinded:
            try:
                session.blind()
            except ValueError as error:
                warnings.warn(str(error), stacklevel=2)
                session.warnings.append(str(error))
        return session


def _load_labels(session: AnnotationSession) -> None:
    path = session.labels_path
    if not path.exists():
        return
    from .lesions.components import load_label_map

    try:
        volume = load_label_map(path)
        if volume.data.shape != session.labels.shape or not np.allclose(volume.affine, session.affine, atol=1e-3):
            problem = f"labels grid {volume.data.shape} is not the subject's SWI grid {session.labels.shape}"
            raise InputError(path, problem)
    except (InputError, OSError, EOFError, ValueError) as error:
        session.warnings.append(_set_aside(path, f"unreadable labels ({getattr(error, 'problem', error)})"))
        return
    session.labels = volume.data.astype(np.uint8)


def _load_decisions(session: AnnotationSession, rater: str | None) -> None:
    """Resume decisions, position and candidate list; a malformed file is set aside, never trusted."""
    path = session.decisions_path
    if not path.exists():
        return
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        decisions, position, candidates_name, blinding = _parse_decisions(content, session.name)
        candidates_path = None if candidates_name is None else _inside(session.folder, candidates_name)
    except (OSError, ValueError, TypeError, RecursionError) as error:
        session.warnings.append(_set_aside(path, f"unreadable decisions ({str(error)[:300]})"))
        return
    candidates = None
    if candidates_path is not None and not candidates_path.is_file():
        message = f"{path}: its candidate list {candidates_path.name} is missing; find candidates again"
        warnings.warn(message, stacklevel=3)
        session.warnings.append(message)
    elif candidates_path is not None:
        try:
            candidates = _read_candidates(candidates_path)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            session.warnings.append(_set_aside(candidates_path, f"unreadable candidate list ({str(error)[:300]})"))
    if candidates is not None and position >= max(len(candidates), 1):
        last = max(len(candidates) - 1, 0)
        message = f"{path}: review position {position} is beyond the {len(candidates)} candidates; resuming at {last}"
        warnings.warn(message, stacklevel=3)
        session.warnings.append(message)
        position = last
    session.decisions, session.position, session.candidates = decisions, position, candidates
    session.blinded, session.order_seed = blinding
    if rater is None and content.get("rater"):
        session.rater = content["rater"]


def _parse_decisions(content, subject: str) -> tuple[list[Decision], int, str | None, tuple[bool, int | None]]:
    """Decisions, review position, candidate file name and (blinded, order seed) of a decisions file;
    ValueError if malformed."""
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        raise ValueError("not a decisions file")
    if content.get("version") not in (1, _VERSION):
        raise ValueError(f"unknown version {str(content.get('version'))[:80]!r}")
    if content.get("subject") != subject:
        raise ValueError(f"written for subject {str(content.get('subject'))[:80]!r}, not {subject}")
    if content.get("rater") is not None and rater_problem(content["rater"]):
        raise ValueError(rater_problem(content["rater"]))
    position = content.get("position", 0)
    if not _is_count(position):
        raise ValueError(f"position must be a non-negative whole number, not {str(position)[:80]!r}")
    candidates = content.get("candidates")
    if candidates is not None and not isinstance(candidates, str):
        raise ValueError(f"candidates must be a file name, not {str(candidates)[:80]!r}")
    blinded, order_seed = content.get("blinded", False), content.get("order_seed")
    if not isinstance(blinded, bool):
        raise TypeError(f"blinded must be true or false, not {str(blinded)[:80]!r}")
    if blinded and not _is_count(order_seed):
        raise ValueError(f"a blinded session needs a non-negative whole order_seed, not {str(order_seed)[:80]!r}")
    entries = content.get("decisions")
    if not isinstance(entries, list):
        raise TypeError("decisions must be a list")
    decisions = [_parse_decision(entry, number) for number, entry in enumerate(entries, 1)]
    return decisions, position, candidates, (blinded, order_seed if blinded else None)


def _parse_decision(entry, number: int) -> Decision:
    """One saved decision, each field checked; ValueError naming the entry if malformed. ``certainty`` and
    ``reason`` may be missing (files of version 1)."""
    names = {f.name for f in fields(Decision)}
    required = names - {"certainty", "reason"}
    if not isinstance(entry, dict) or not required <= set(entry) <= names:
        raise ValueError(f"decision {number} must have the fields {', '.join(sorted(names))}")
    if not _is_count(entry["rank"]):
        raise ValueError(f"decision {number}: rank must be a non-negative whole number")
    coordinates = [entry[c] for c in ("x_mm", "y_mm", "z_mm")]
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in coordinates):
        raise ValueError(f"decision {number}: x_mm, y_mm, z_mm must be finite numbers")
    if entry["decision"] not in DECISIONS:
        raise ValueError(f"decision {number}: decision must be one of {', '.join(DECISIONS)}")
    if rater_problem(entry["rater"]):
        raise ValueError(f"decision {number}: {rater_problem(entry['rater'])}")
    try:
        datetime.fromisoformat(entry["time"])
    except (TypeError, ValueError):
        raise ValueError(f"decision {number}: time must be an ISO 8601 date and time") from None
    if not isinstance(entry["stale"], bool):
        raise TypeError(f"decision {number}: stale must be true or false")
    for key in ("certainty", "reason"):
        if not isinstance(entry.get(key), (str, type(None))):
            raise TypeError(f"decision {number}: {key} must be a text or null")
    try:
        return Decision(**entry)
    except ValueError as error:
        raise ValueError(f"decision {number}: {str(error)[:200]}") from None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a relative ``name`` that stays inside ``folder``; ValueError otherwise."""
    relative = Path(name)
    if relative.is_absolute() or relative.anchor or ".." in relative.parts or not relative.parts:
        raise ValueError(f"candidate list {name[:200]!r} is not a file inside the annotation folder")
    path = folder / relative
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise ValueError(f"candidate list {name[:200]!r} leads outside the annotation folder") from None
    return path


def _read_candidates(path: Path) -> pd.DataFrame:
    """The saved candidate list; empty text cells (no flags, no location) read back as ''."""
    table = pd.read_csv(path)
    missing = [c for c in ("rank", "x_mm", "y_mm", "z_mm") if c not in table.columns]
    if missing:
        raise ValueError(f"missing columns {', '.join(missing)}")
    if not all(pd.api.types.is_numeric_dtype(table[c]) for c in ("rank", "x_mm", "y_mm", "z_mm")):
        raise ValueError("rank, x_mm, y_mm, z_mm must be numbers")
    text_columns = table.columns[table.dtypes == object].union(["flags", "reason", "location"])
    for column in text_columns.intersection(table.columns):
        table[column] = table[column].fillna("")
    return table


def _write_modalities(subject: Subject, folder: Path, name: str) -> None:
    """Put the subject's modality (and location map) files in ``folder`` once: hard links, else copies.

    Modalities not read from a file are written from the subject's arrays (SWI grid, QSM in ppb). A kind the
    folder already holds under another name it reads (``_swi``, from an earlier version) is not added again."""
    present = find_subject_files(folder)
    sources = dict(subject.paths)
    swi = subject.paths.get("swi")
    if swi is not None:
        try:
            sources.setdefault("locations", find_subject_files(Path(swi).parent).get("locations"))
        except InputError:
            pass
    for kind in ("swi", "qsm", "t2", "locations"):
        source = sources.get(kind)
        if kind in present:
            continue
        if source is not None:
            source = Path(source)
            ending = ".nii.gz" if source.name.lower().endswith(".nii.gz") else ".nii"
            target = folder / f"{name}_{BIDS_SUFFIXES[kind]}{ending}"
            if not target.exists() and source.resolve() != target.resolve():
                _link_or_copy(source, target)
        elif kind != "locations" and getattr(subject, kind, None) is not None:
            target = folder / f"{name}_{BIDS_SUFFIXES[kind]}.nii.gz"
            if not target.exists():
                save_nifti(target, getattr(subject, kind), subject.affine)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)


def blinded_candidates(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` for a blinded review: its useful head (:func:`~.lesions.candidates.useful_candidates`), in a random
    order reproducible from ``seed``, ranks renumbered in that order, without the columns of
    :data:`BLINDED_HIDDEN_COLUMNS`."""
    from .lesions.candidates import useful_candidates

    table = useful_candidates(table)
    order = np.random.default_rng(seed).permutation(len(table))
    blinded = table.iloc[order].drop(columns=list(BLINDED_HIDDEN_COLUMNS), errors="ignore").reset_index(drop=True)
    blinded["rank"] = np.arange(1, len(blinded) + 1)
    return blinded


def export_session(session: AnnotationSession, subject: Subject, *, locations: np.ndarray | None = None) -> list[Path]:
    """Write the session's lesion table (with each lesion's ``certainty`` from the decisions) and its
    rejected candidates with their reasons, each with a JSON sidecar, in the annotation folder."""
    from .detection.pipeline import full_table
    from .io.derivatives import write_table_with_sidecar
    from .lesions.candidates import table_descriptions
    from .lesions.measure import COLUMNS, measure_lesions

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


def candidate_centre(candidate) -> tuple[float, float, float]:
    """World (scanner RAS mm) centre of a candidate table row."""
    return tuple(float(candidate[c]) for c in ("x_mm", "y_mm", "z_mm"))


def candidate_seed(candidate) -> tuple[int, int, int]:
    """Voxel (SWI grid) from which a candidate's region grows."""
    columns = ("seed_i", "seed_j", "seed_k") if "seed_i" in candidate else ("i", "j", "k")
    return tuple(round(float(candidate[c])) for c in columns)
