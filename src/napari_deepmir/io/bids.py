"""BIDS-like discovery: find a subject's files by their suffixes (sub-X_swi.nii.gz, ...)."""

import re
from pathlib import Path

from ..conventions import BIDS_SUFFIXES
from .errors import InputError
from .nifti import NIFTI_SUFFIXES

SUBJECT_PATTERN = re.compile(r"sub-[A-Za-z0-9]+")


#: The BIDS folder of derived data (annotations, predictions) in a dataset.
DERIVATIVES = "derivatives"


def subject_id(path: str | Path) -> str | None:
    """The ``sub-XXX`` name found anywhere in ``path`` (the last one), or None."""
    found = SUBJECT_PATTERN.findall(str(path))
    return found[-1] if found else None


def _strip_nifti(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def find_subject_files(folder: str | Path) -> dict[str, Path]:
    """Map file kind (``swi``, ``qsm``, ``t2``, ``labels``, ``locations``) to its file in ``folder``.

    A file matches a kind when its name (without .nii/.nii.gz) ends with ``_<suffix>``; the
    ``labels`` kind (``_dseg``) excludes ``desc-`` variants such as the location map. Files are
    searched in ``folder`` and, BIDS-style, in its ``anat/`` subfolder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "subject folder not found")
    found: dict[str, Path] = {}
    candidates = sorted(folder.glob("*.nii*")) + sorted(folder.glob("anat/*.nii*"))
    for kind, suffix in sorted(BIDS_SUFFIXES.items(), key=lambda item: -len(item[1])):
        for path in candidates:
            stem = _strip_nifti(path.name)
            if stem is None or path in found.values():
                continue
            if stem.endswith("_" + suffix) and not (kind == "labels" and "_desc-" in stem):
                if kind in found:
                    raise InputError(folder, f"two files for {kind}: {found[kind].name} and {path.name}")
                found[kind] = path
    return found


def has_swi(files: dict[str, Path]) -> bool:
    """Whether a subject's files (:func:`find_subject_files`) give an SWI: its own, or a magnitude and phase."""
    return "swi" in files or {"magnitude", "phase"} <= set(files)


def find_subject_folders(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (root included) that holds an SWI file (or a gradient-echo magnitude to make one
    from), sorted by name.

    Folders under a ``derivatives`` folder of ``root`` (annotations, predictions: copies of subjects,
    not subjects) are skipped; give such a folder itself as ``root`` to read it."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "folder not found")
    patterns = (f"*_{BIDS_SUFFIXES[kind]}.nii*" for kind in ("swi", "magnitude"))
    files = [p for pattern in patterns for p in root.rglob(pattern) if not in_derivatives(p, root)]
    return sorted({p.parent.parent if p.parent.name == "anat" else p.parent for p in files})


def in_derivatives(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in a ``derivatives`` folder below ``root``."""
    return DERIVATIVES in Path(path).relative_to(root).parts[:-1]
