"""How a volume on its file grid is shown in napari, and back.

napari slices along the first axis and shows the last two. To show axial slices whatever the
file's orientation, a volume is reoriented to the closest canonical RAS orientation and its axes
reversed, so a layer's data axes are (S, A, R) and napari's world coordinates are
(z, y, x) in scanner millimetres. :class:`DisplayGeometry` holds the file grid and does both
directions exactly (a reorientation is a permutation and flips, never an interpolation), so a
label map painted in napari is written back on its source grid voxel for voxel.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from .nifti import voxel_sizes

#: Reverses the three spatial axes: (x, y, z) <-> (z, y, x).
REVERSE_AXES = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)


@dataclass(frozen=True)
class DisplayGeometry:
    """The source grid (``shape``, ``affine``: voxel -> scanner RAS mm) of a layer shown in napari."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @classmethod
    def from_metadata(cls, metadata: dict) -> "DisplayGeometry":
        """Rebuild from a layer's ``metadata['deepmir']`` (see :meth:`to_metadata`)."""
        info = metadata["deepmir"]
        return cls(tuple(int(n) for n in info["shape"]), np.asarray(info["affine"], dtype=float))

    def to_metadata(self) -> dict:
        """JSON-friendly description kept in layer metadata (the original affine and shape)."""
        return {"shape": list(self.shape), "affine": np.asarray(self.affine).tolist()}

    @cached_property
    def _orientation(self) -> np.ndarray:
        return io_orientation(self.affine)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (mm) along the source axes."""
        return voxel_sizes(self.affine)

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """Source-grid array (last three axes spatial) -> napari layer data (..., S, A, R)."""
        lead = array.ndim - 3
        if lead:
            return np.stack([self.to_display(a) for a in array])
        return np.ascontiguousarray(apply_orientation(array, self._orientation).transpose(2, 1, 0))

    def from_display(self, array: np.ndarray) -> np.ndarray:
        """napari layer data (S, A, R) -> array on the source grid; exact inverse of :meth:`to_display`."""
        canonical = np.asarray(array).transpose(2, 1, 0)
        back = ornt_transform([[0, 1], [1, 1], [2, 1]], self._orientation)
        return np.ascontiguousarray(apply_orientation(canonical, back))

    @cached_property
    def display_affine(self) -> np.ndarray:
        """4x4 affine from layer data indices (S, A, R order) to napari world (z, y, x) in mm."""
        canonical = self.affine @ inv_ornt_aff(self._orientation, self.shape)
        return REVERSE_AXES @ canonical @ REVERSE_AXES

    def world_to_napari(self, xyz_mm) -> np.ndarray:
        """Scanner RAS (x, y, z) mm -> napari world coordinates (z, y, x)."""
        return np.asarray(xyz_mm, dtype=float)[..., ::-1]

    def napari_to_source_voxel(self, zyx_world) -> np.ndarray:
        """napari world (z, y, x) -> (fractional) voxel index on the source grid."""
        xyz = np.asarray(zyx_world, dtype=float)[..., ::-1]
        return (np.linalg.inv(self.affine) @ np.append(xyz, 1.0))[:3]
