"""Label maps (and probability maps) of two sources paired by subject, for evaluation and rater agreement.

Folders are searched recursively; files are grouped by the ``sub-XXX`` in their path. Image files, location and
region maps, probability maps and anything in a ``derivatives`` folder below the given one are skipped; when a
subject has several files, the ones ending in ``_dseg`` win; two candidates left is an error.
"""

import re
from pathlib import Path

from ..conventions import BIDS_SUFFIXES, CLASS_NAMES
from ..io import InputError
from ..io.bids import in_derivatives, subject_id, suffixes_read
from ..io.nifti import is_nifti_path

#: File-name endings that are images, place maps or probabilities, never a lesion label map.
_NOT_LABEL_MAPS = tuple(
    f"_{s}"
    for s in (
        *suffixes_read("swi"),
        BIDS_SUFFIXES["qsm"],
        BIDS_SUFFIXES["t2"],
        BIDS_SUFFIXES["magnitude"],
        BIDS_SUFFIXES["phase"],
        BIDS_SUFFIXES["locations"],
        BIDS_SUFFIXES["regions"],
        "probseg",
        "probabilities",
    )
)
#: The ``label-<class>`` entity of a probability map (``..._label-cmb_..._probseg.nii.gz``).
_PROBABILITY_LABEL = re.compile(r"_label-([A-Za-z0-9]+)")


def _stem(path: Path) -> str:
    return path.name.split(".nii")[0]


def _nifti_by_subject(folder: Path, recursive: bool = True):
    """(subject, path) of every NIfTI file in (``recursive``: under) ``folder`` with a sub-XXX name, outside
    derivatives."""
    folder = folder.resolve()  # so that a folder given as "." still contributes its own sub-XXX name
    for path in sorted(folder.rglob("*.nii*") if recursive else folder.glob("*.nii*")):
        name = subject_id(path.relative_to(folder.parent))
        if is_nifti_path(path) and name is not None and not in_derivatives(path, folder):
            yield name, path


def label_map_files(folder: Path) -> dict[str, Path]:
    """Label map per subject under ``folder`` (rules in the module docstring)."""
    found: dict[str, list[Path]] = {}
    for name, path in _nifti_by_subject(folder):
        if not _stem(path).endswith(_NOT_LABEL_MAPS):
            found.setdefault(name, []).append(path)
    chosen = {}
    for name, paths in found.items():
        preferred = [p for p in paths if _stem(p).endswith("_dseg")] or paths
        if len(preferred) > 1:
            listed = ", ".join(str(p.relative_to(folder.resolve())) for p in preferred)
            raise InputError(folder, f"several label maps for {name}: {listed}")
        chosen[name] = preferred[0]
    return chosen


def probability_files(folder: Path, recursive: bool = True) -> dict[str, dict[str, Path]]:
    """Probability maps per subject in (``recursive``: under) ``folder``: {subject: {class name: path}} for files
    named ``*_label-<class>_*probseg.nii.gz`` (as ``deepmir predict --save-probabilities`` writes them)."""
    found: dict[str, dict[str, Path]] = {}
    for name, path in _nifti_by_subject(folder, recursive):
        label = _PROBABILITY_LABEL.search(path.name)
        if _stem(path).endswith("_probseg") and label and label.group(1).lower() in CLASS_NAMES.values():
            found.setdefault(name, {})[label.group(1).lower()] = path
    return found


def pair_label_maps(
    first: Path, second: Path, names: tuple[str, str] = ("truth", "prediction")
) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(subject, first file, second file) pairs, and the subjects found only in ``first`` / only in ``second``.

    ``first`` and ``second`` are two files or two folders; ``names`` say what they are in error messages."""
    if first.is_dir() != second.is_dir():
        kind = "a folder" if first.is_dir() else "a file"
        raise InputError(second, f"give two files or two folders ({names[0]} {first} is {kind})")
    for path in (first, second):
        if not path.exists():
            raise InputError(path, "not found")
    if not first.is_dir():
        return [(subject_id(first) or subject_id(second) or first.name.split(".")[0], first, second)], [], []
    first_files, second_files = label_map_files(first), label_map_files(second)
    if not first_files:
        raise InputError(first, "no label maps with a sub-XXX name found")
    pairs = [(name, first_files[name], second_files[name]) for name in sorted(first_files) if name in second_files]
    if not pairs:
        raise InputError(second, f"no {names[1]} shares a subject with {first} (subjects are paired by sub-XXX names)")
    return pairs, sorted(set(first_files) - set(second_files)), sorted(set(second_files) - set(first_files))
