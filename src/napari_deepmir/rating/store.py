"""Where annotation sessions live, and their resumption.

One folder per subject under an annotation root (by default ``derivatives/deepmir-annotations/`` of
the dataset that holds the subject's folder, which subject discovery skips) holds ``sub-X_dseg.nii.gz``
(labels on the SWI grid, SWI affine),
``sub-X_decisions.json`` (who accepted which candidate as definite or possible, who rejected which and
why, when, whether the session is blinded, and where the review stopped), ``sub-X_candidates.csv`` (the
candidate list under review) and the subject's modality files (hard links when possible, else copies);
:func:`~napari_deepmir.rating.session.export_session` adds the lesion table (with the rater's certainty) and the
rejected candidates with their reasons (hard negatives for fine-tuning). The root is thus a data folder that
``deepmir finetune --data ROOT`` reads. Every write is atomic; a file that cannot be read is
renamed aside with a warning, never overwritten.
"""

import json
import os
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import platformdirs

from ..conventions import BIDS_SUFFIXES
from ..io import InputError, Subject, save_nifti
from ..io.atomic import atomic_path
from ..io.bids import find_subject_files
from ..lesions.components import load_label_map
from .decisions import default_rater, parse_decisions, rater_problem
from .session import AnnotationSession, annotation_name

#: The installed package, whose files (the shipped sample) are never written to.
_PACKAGE = Path(__file__).resolve().parents[1]


#: Folder made under the dataset's ``derivatives/`` when no annotation root is given.
DEFAULT_FOLDER_NAME = "deepmir-annotations"


def user_annotations_dir() -> Path:
    """The user's own annotation folder (platformdirs' user data folder, e.g. ``~/.local/share/napari-deepmir/``
    on Linux): where the annotations of a subject shipped inside this package (the sample) go."""
    return platformdirs.user_data_path("napari-deepmir", appauthor=False) / DEFAULT_FOLDER_NAME


def default_annotation_root(swi_path: str | Path) -> Path:
    """``<dataset>/derivatives/deepmir-annotations`` for a subject's SWI file
    (``<dataset>/sub-X[/anat]/...swi.nii.gz``); :func:`user_annotations_dir` for a subject inside the installed
    package (the sample), which is never written to."""
    if _PACKAGE in Path(swi_path).resolve().parents:
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
        decisions, position, candidates_name, blinding = parse_decisions(content, session.name)
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


def _set_aside(path: Path, problem: str) -> str:
    """Rename an unreadable file to ``<name>.corrupt-<time>`` and return the warning about it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(aside)
    message = f"{path}: {problem}; kept aside as {aside.name}, starting afresh"
    warnings.warn(message, stacklevel=3)
    return message


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
