"""BIDS names: the raw file names written (one place), and discovery of a subject's files by their suffixes.

What is written passes the official BIDS validator (SWI as ``sub-X_rec-swi_T2starw``, QSM as ``sub-X_Chimap``,
gradient-echo parts as ``part-mag``/``part-phase``, all in ``sub-X[/ses-Y]/anat/``); what is read also takes the
names used before (``sub-X_swi``, files directly in ``sub-X/``), see ``conventions.OTHER_SUFFIXES_READ``.
"""

import json
import re
from pathlib import Path

from ..conventions import BIDS_SUFFIXES, OTHER_SUFFIXES_READ
from .atomic import write_text_atomic
from .errors import InputError
from .nifti import NIFTI_SUFFIXES

SUBJECT_PATTERN = re.compile(r"sub-[A-Za-z0-9]+")


#: The BIDS folder of derived data (annotations, predictions) in a dataset.
DERIVATIVES = "derivatives"
#: The BIDS version the written dataset_description.json files state.
BIDS_VERSION = "1.9.0"


def suffixes_read(kind: str) -> tuple[str, ...]:
    """Every suffix read as file kind ``kind``: the one written (``BIDS_SUFFIXES``) first, then the others."""
    return (BIDS_SUFFIXES[kind], *OTHER_SUFFIXES_READ.get(kind, ()))


def names_read(kind: str) -> str:
    """The names read as ``kind``, for messages: ``*_rec-swi_T2starw.nii.gz (or *_rec-SWI_T2starw, ... *_swi)``."""
    written, *others = suffixes_read(kind)
    return f"*_{written}.nii.gz" + (f" (or {', '.join(f'*_{o}' for o in others)})" if others else "")


def raw_file_name(subject: str, session: str | None, kind: str, extension: str = ".nii.gz") -> str:
    """``sub-<subject>[_ses-<session>]_<BIDS suffix of kind><extension>`` (labels without their ``sub-``/``ses-``)."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "") + f"_{BIDS_SUFFIXES[kind]}{extension}"


def raw_path(root: str | Path, subject: str, session: str | None, kind: str, extension: str = ".nii.gz") -> Path:
    """``root/sub-<subject>[/ses-<session>]/anat/`` + :func:`raw_file_name`: where a raw image of ``kind`` goes."""
    folder = Path(root) / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    return folder / raw_file_name(subject, session, kind, extension)


def write_dataset_files(root: str | Path, description: dict, readme: str | None = None, ignore=()) -> list[Path]:
    """A dataset's own files at ``root``, each written only when it is missing (never replaced): its
    ``dataset_description.json`` (``description`` with ``BIDSVersion``, ``DatasetType`` raw unless it says
    otherwise), a ``README`` and a ``.bidsignore`` listing ``ignore`` (patterns of files the BIDS validator
    should skip). Returns the files written."""
    root = Path(root)
    description = {"Name": root.name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw", **description}
    contents = {
        "dataset_description.json": json.dumps(description, indent=2) + "\n",
        "README": readme,
        ".bidsignore": "".join(f"{pattern}\n" for pattern in ignore) or None,
    }
    written = []
    for name, text in contents.items():
        if text is not None and not (root / name).exists():
            written.append(write_text_atomic(root / name, text))
    return written


def subject_files_matching(folder: str | Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` in a subject folder and, BIDS-style, in its ``anat/`` subfolder."""
    folder = Path(folder)
    return sorted(folder.glob(pattern)) + sorted(folder.glob(f"anat/{pattern}"))


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

    A file matches a kind when its name (without .nii/.nii.gz) ends with ``_<suffix>`` (any of
    :func:`suffixes_read`: ``sub-X_swi`` is an SWI as ``sub-X_rec-swi_T2starw`` is); the
    ``labels`` kind (``_dseg``) excludes ``desc-`` variants such as the location map. Files are
    searched in ``folder`` and, BIDS-style, in its ``anat/`` subfolder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "subject folder not found")
    found: dict[str, Path] = {}
    candidates = subject_files_matching(folder, "*.nii*")
    names = [(kind, suffix) for kind in BIDS_SUFFIXES for suffix in suffixes_read(kind)]
    for kind, suffix in sorted(names, key=lambda item: -len(item[1])):
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
    patterns = (f"*_{suffix}.nii*" for kind in ("swi", "magnitude") for suffix in suffixes_read(kind))
    files = [p for pattern in patterns for p in root.rglob(pattern) if not in_derivatives(p, root)]
    return sorted({p.parent.parent if p.parent.name == "anat" else p.parent for p in files})


def in_derivatives(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in a ``derivatives`` folder below ``root``."""
    return DERIVATIVES in Path(path).relative_to(root).parts[:-1]
