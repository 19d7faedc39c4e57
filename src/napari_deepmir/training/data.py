"""Annotated subjects for training: modalities + a label map, prepared exactly as inference prepares them."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conventions import BIDS_SUFFIXES, CLASS_NAMES
from ..detection.inference import prepare_input
from ..io import InputError, Subject, Volume, load_subject_dir
from ..io.bids import find_subject_files, find_subject_folders, names_read
from ..lesions.components import check_same_grid, load_label_map


@dataclass
class AnnotatedSubject:
    """One subject ready for training.

    ``channels`` (C, X, Y, Z) and ``labels`` (X, Y, Z) are on the model's working grid (see
    ``detection.inference.prepare_input``); ``subject`` and ``truth`` are the original SWI-grid data, used to
    validate through the same full-volume prediction path as ``deepmir predict``.
    """

    name: str
    channels: np.ndarray
    labels: np.ndarray
    subject: Subject
    truth: np.ndarray


def check_labels(labels: np.ndarray, subject: Subject, source: str | Path | None = None) -> np.ndarray:
    """Label map as uint8 after checking it is on the subject's grid and holds only 0/1/2."""
    labels = np.asarray(labels)
    where = source if source is not None else subject.name
    if labels.shape != subject.shape:
        raise InputError(where, f"label map has shape {labels.shape}, the subject's SWI grid is {subject.shape}")
    values = np.unique(labels)
    allowed = {0, *CLASS_NAMES}
    unexpected = [v for v in values.tolist() if v not in allowed]
    if unexpected:
        raise InputError(where, f"label values must be 0, 1 (CMB) or 2 (iron); found {unexpected[:5]}")
    return labels.astype(np.uint8)


def prepare_annotated(subject: Subject, labels: np.ndarray, card, source: str | Path | None = None) -> AnnotatedSubject:
    """An in-memory subject and its label map (SWI grid) prepared for the model described by ``card``."""
    truth = check_labels(labels, subject, source)
    missing = [m for m in card.modalities if getattr(subject, m) is None]
    if missing:
        raise InputError(
            source or subject.name, f"the model needs {', '.join(m.upper() for m in missing)}, which this subject lacks"
        )
    prepared = prepare_input(subject, card)
    working = np.asarray(prepared.labels_to_working(truth)).astype(np.uint8)
    # named by its folder when it has one: subject names repeat across datasets (sub-001 in each)
    name = str(Path(source).parent) if source is not None else subject.name
    return AnnotatedSubject(name, np.asarray(prepared.channels, np.float32), working, subject, truth)


def load_annotated_subject(folder: str | Path, card, registration: str = "auto") -> AnnotatedSubject:
    """A subject folder (modalities + ``*_dseg.nii.gz``) prepared for ``card``'s model; ``registration`` as
    for :func:`~napari_deepmir.io.load_subject_dir`."""
    files = find_subject_files(folder)
    if "labels" not in files:
        raise InputError(folder, f"no label map found (looked for *_{BIDS_SUFFIXES['labels']}.nii.gz)")
    # validated as a subject with just these modalities
    subject = load_subject_dir(folder, only=tuple(card.modalities), registration=registration)
    labels = load_label_map(files["labels"])
    check_same_grid(Volume(subject.swi, subject.affine, subject.paths.get("swi")), labels)
    return prepare_annotated(subject, labels.data, card, files["labels"])


def annotated_folders(paths: list[str | Path]) -> list[Path]:
    """Subject folders with a label map under each path (a subject folder itself, or a cohort root)."""
    folders: list[Path] = []
    for path in paths:
        found = [f for f in find_subject_folders(path) if "labels" in find_subject_files(f)]
        if not found:
            raise InputError(path, f"no annotated subject found (need {names_read('swi')} and *_dseg.nii.gz)")
        folders.extend(f for f in found if f not in folders)
    return folders
