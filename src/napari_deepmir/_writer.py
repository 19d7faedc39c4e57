"""npe2 writer: a Labels layer -> NIfTI on its source grid with the source affine (exact round trip)."""

import numpy as np

from .io import save_labels
from .io.display import DisplayGeometry

#: Swaps napari's (z, y, x) order and NIfTI's (x, y, z) order in a 4x4 affine.
_REVERSE = np.eye(4)[[2, 1, 0, 3]]


def write_labels(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Write a Labels layer as uint8 NIfTI.

    A layer made by this plugin goes back onto its source grid with the source affine; any other
    3D layer is written with its own napari affine, its (z, y, x) axes turned into NIfTI's (x, y, z).
    """
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"cannot write a {data.ndim}D labels layer as NIfTI: expected 3D")
    if not path.lower().endswith((".nii", ".nii.gz")):
        path = path + ".nii.gz"
    metadata = meta.get("metadata") or {}
    if "deepmir" in metadata:
        geometry = DisplayGeometry.from_metadata(metadata)
        save_labels(path, geometry.from_display(data), geometry.affine)
    else:
        affine = np.asarray(meta.get("affine", np.eye(4)), dtype=float)
        save_labels(path, data.transpose(2, 1, 0), _REVERSE @ affine @ _REVERSE)
    return [path]
