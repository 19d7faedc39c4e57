"""Patches around candidate lesions on a model's working grid, the input of the second stage
(:mod:`..model.verifier`): each modality as the U-Net sees it, plus the candidate's own mask."""

import numpy as np
from scipy import ndimage

#: Patch size in working voxels (x, y, slices): 24 x 24 x 24 mm on the default 1 x 1 x 2 mm grid.
PATCH_SHAPE = (24, 24, 12)


def points_to_working(prepared, points: np.ndarray) -> np.ndarray:
    """SWI-grid voxel coordinates (n, 3) -> working-grid voxel coordinates (n, 3) of ``prepared``."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    canonical = np.empty_like(points)
    subject_shape = np.asarray(prepared.subject_shape)
    for axis, (target, flip) in enumerate(prepared.orientation):
        values = points[:, axis]
        canonical[:, int(target)] = subject_shape[axis] - 1 - values if flip < 0 else values
    return (canonical + 0.5) * prepared.zoom - 0.5


def component_centres(components: np.ndarray, count: int) -> np.ndarray:
    """Centres of mass (n, 3), SWI-grid voxels, of components 1..count of a labelled volume."""
    if count == 0:
        return np.zeros((0, 3))
    with np.errstate(invalid="ignore"):  # a number without voxels: NaN
        return np.asarray(ndimage.center_of_mass(components > 0, components, np.arange(1, count + 1)), dtype=float)


def candidate_patches(prepared, components: np.ndarray, count: int, patch_shape=PATCH_SHAPE) -> np.ndarray:
    """(count, modalities + 1, *patch_shape) float32: the working-grid channels around each component of
    ``components`` (labelled 1..count on the SWI grid) and, as the last channel, that component's mask
    (1 inside; a component too small to survive resampling marks its centre voxel)."""
    shape = np.asarray(patch_shape, dtype=int)
    channels = prepared.channels
    patches = np.zeros((count, channels.shape[0] + 1, *shape), np.float32)
    if count == 0:
        return patches
    working_ids = prepared.labels_to_working(components.astype(np.int32))
    centres = points_to_working(prepared, component_centres(components, count))
    present = np.isfinite(centres).all(axis=1)  # a number without voxels has no patch (stays zero)
    centres = np.clip(np.rint(np.where(present[:, None], centres, 0)), 0, np.asarray(channels.shape[1:]) - 1)
    centres = centres.astype(int)
    low = centres - shape // 2
    for n in np.flatnonzero(present):
        start, centre = low[n], centres[n]
        source = tuple(slice(max(s, 0), min(s + w, limit)) for s, w, limit in zip(start, shape, channels.shape[1:]))
        target = tuple(slice(src.start - s, src.stop - s) for src, s in zip(source, start))
        patches[n, :-1][(slice(None), *target)] = channels[(slice(None), *source)]
        mask = working_ids[source] == n + 1
        if not mask.any():
            mask = np.zeros(mask.shape, bool)
            mask[tuple(c - src.start for c, src in zip(centre, source))] = True
        patches[n, -1][target] = mask
    return patches
