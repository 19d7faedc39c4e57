"""Resampling between grids in world (scanner RAS) coordinates, using each image's affine."""

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from .errors import InputError
from .nifti import Volume


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, ...],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample ``data`` (on ``affine``) onto the grid ``shape``/``target_affine``.

    Works for any affines, oblique ones included (nibabel.processing does the world-space mapping).
    ``order`` 0 is nearest neighbour (labels), 1 trilinear (images).
    """
    if data.shape == tuple(shape) and np.allclose(affine, target_affine, atol=1e-4):
        return data
    source = nib.Nifti1Image(np.asarray(data, dtype=np.float32 if order else data.dtype), affine)
    out = resample_from_to(source, (tuple(shape), target_affine), order=order, mode="constant", cval=cval)
    return np.asarray(out.dataobj)


def world_bounds(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world bounding box (min, max corners in mm) of a grid."""
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in shape[:3]], indexing="ij")).reshape(3, -1)
    world = affine[:3, :3] @ corners + affine[:3, 3:4]
    return world.min(axis=1), world.max(axis=1)


def overlap_fraction(moving: Volume, reference_shape: tuple[int, ...], reference_affine: np.ndarray) -> float:
    """Fraction of the reference grid's bounding box that the moving image's bounding box covers."""
    lo_m, hi_m = world_bounds(moving.data.shape, moving.affine)
    lo_r, hi_r = world_bounds(reference_shape, reference_affine)
    inter = np.clip(np.minimum(hi_m, hi_r) - np.maximum(lo_m, lo_r), 0, None)
    return float(np.prod(inter) / np.prod(hi_r - lo_r))


def resample_volume_to(moving: Volume, reference: Volume, *, order: int = 1, min_overlap: float = 0.05) -> np.ndarray:
    """Resample ``moving`` onto ``reference``'s grid; refuse images that do not overlap it in space."""
    fraction = overlap_fraction(moving, reference.data.shape, reference.affine)
    if fraction < min_overlap:
        raise InputError(
            moving.path,
            f"does not overlap {reference.path.name if reference.path else 'the reference image'} in world space "
            f"({100 * fraction:.1f}% of its field of view); check the affines (sform/qform) of both files",
        )
    return resample_to_grid(moving.data, moving.affine, reference.data.shape, reference.affine, order=order)
