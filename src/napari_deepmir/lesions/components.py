"""Lesions as 26-connected components of one class, and label maps read from disk."""

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..conventions import CLASS_NAMES, LOCATION_NAMES, REGION_LOCATION, REGION_MAP_VALUES, RIGHT_OFFSET
from ..io import InputError, Volume, load_volume

#: 26-connectivity in 3D: voxels sharing a face, an edge or a corner belong to the same lesion.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def class_components(labels: np.ndarray, value: int) -> tuple[np.ndarray, int]:
    """Components of the voxels equal to ``value``: (int32 ids 1..n in scan order, n)."""
    components, count = ndimage.label(np.asarray(labels) == value, structure=CONNECTIVITY_26)
    return components.astype(np.int32, copy=False), int(count)


def load_label_map(path: str | Path) -> Volume:
    """Read a label map (0 background, 1 CMB, 2 iron deposit) as an int16 volume; other values are an error."""
    return _load_integer_map(path, {0, *CLASS_NAMES}, "0 background, 1 CMB, 2 iron deposit")


def load_location_map(path: str | Path) -> Volume:
    """Read a location map (values of ``conventions.LOCATION_NAMES``) as an int16 volume."""
    return _load_integer_map(path, set(LOCATION_NAMES), ", ".join(f"{k} {v}" for k, v in LOCATION_NAMES.items()))


def load_region_map(path: str | Path) -> Volume:
    """Read a region map (MARS region codes of ``conventions.REGION_NAMES``, ``+ RIGHT_OFFSET`` on the right)."""
    meaning = f"0 or a MARS region code 1-{max(REGION_LOCATION)}, plus {RIGHT_OFFSET} on the right"
    return _load_integer_map(path, set(REGION_MAP_VALUES), meaning)


def load_probability_map(path: str | Path) -> Volume:
    """Read one class's probability map (0..1); values outside 0..1 are an error naming the file."""
    volume = load_volume(path, check_values=False)
    if volume.data.size and (volume.data.min() < 0 or volume.data.max() > 1):
        raise InputError(path, "not a probability map: values outside 0..1")
    return volume


def locations_from_regions(regions: np.ndarray) -> np.ndarray:
    """The location map (``conventions.LOCATION_NAMES`` values) a region map implies."""
    lookup = np.zeros(max(REGION_MAP_VALUES) + 1, dtype=np.int16)
    for code in REGION_MAP_VALUES - {0}:
        lookup[code] = REGION_LOCATION[code % RIGHT_OFFSET]
    return lookup[np.asarray(regions, dtype=np.int64)]


def _load_integer_map(path: str | Path, allowed: set[int], meaning: str) -> Volume:
    volume = load_volume(path, check_values=False)
    data = volume.data
    if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise InputError(path, "not a label map: it has non-integer values")
    found = set(np.unique(data).astype(int).tolist())
    if not found <= allowed:
        extra = ", ".join(str(v) for v in sorted(found - allowed))
        raise InputError(path, f"unexpected label values {extra} (expected {meaning})")
    volume.data = data.astype(np.int16)
    return volume


def check_same_grid(reference: Volume, other: Volume, what: str = "label map") -> None:
    """Raise InputError naming both files unless ``other`` lies on the grid (shape and affine) of ``reference``."""
    if tuple(other.data.shape) != tuple(reference.data.shape):
        raise InputError(
            other.path,
            f"{what} grid {tuple(other.data.shape)} does not match {reference.path} grid {tuple(reference.data.shape)}",
        )
    if not np.allclose(other.affine, reference.affine, atol=1e-3):
        raise InputError(other.path, f"{what} affine differs from that of {reference.path}: not on the same grid")
