"""Is a dark spot on SWI a vein seen end-on? The dark structure it belongs to, measured in 3D.

A microbleed is round in 3D; a vein continues across slices (Greenberg et al., Lancet Neurol 2009: tell
them apart by continuity). From a lesion's darkest voxel, the SWI voxels darker than halfway between
that voxel and the local background (the median of a box reaching :data:`REACH_MM` around it) are grown
(26-connected) inside the box. The principal extents of that region, in millimetres, say whether it is
a tube: at least :data:`TUBE_MIN_LENGTH_MM` long and :data:`TUBE_MIN_ELONGATION` times longer than wide.
A microbleed's region stays within its blooming (under 10 mm on 2 mm slices at TE 20-30 ms); a region
that leaks into a large dark area (wide as well as long) is not called a tube, so the rule errs on the
side of keeping a lesion.
"""

import numpy as np
from scipy import ndimage

REACH_MM = 10.0
TUBE_MIN_LENGTH_MM = 12.0
TUBE_MIN_ELONGATION = 2.5


def dark_region_extents(swi: np.ndarray, spacing, seed) -> tuple[float, float]:
    """(length, width) in mm of the dark SWI region grown from voxel ``seed`` (see the module docstring)."""
    spacing = np.asarray(spacing, dtype=float)
    seed = np.asarray(seed, dtype=int)
    reach = np.ceil(REACH_MM / spacing).astype(int)
    low, high = np.maximum(seed - reach, 0), np.minimum(seed + reach + 1, swi.shape)
    box = np.asarray(swi[tuple(slice(a, b) for a, b in zip(low, high))], dtype=np.float32)
    start = tuple(seed - low)
    threshold = box[start] + 0.5 * (float(np.median(box)) - box[start])
    regions, _ = ndimage.label(box <= threshold, structure=np.ones((3, 3, 3), bool))
    points = np.argwhere(regions == regions[start]) * spacing
    covariance = np.cov(points.T) if len(points) > 1 else np.zeros((3, 3))
    # each voxel is a box, not a point: add its own spread so one voxel measures its size
    eigenvalues = np.linalg.eigvalsh(covariance + np.diag(spacing**2 / 12.0))
    length, width = np.sqrt(12.0 * eigenvalues[::-1][:2])
    return float(length), float(width)


def is_tube(length_mm: float, width_mm: float, min_length_mm: float = TUBE_MIN_LENGTH_MM) -> bool:
    """Whether a dark region of these extents is a vein-like tube rather than a round lesion."""
    return length_mm >= min_length_mm and length_mm >= TUBE_MIN_ELONGATION * width_mm


def tube_components(
    swi: np.ndarray, spacing, components: np.ndarray, candidates, min_length_mm: float = TUBE_MIN_LENGTH_MM
) -> set[int]:
    """The component numbers among ``candidates`` (of the label map ``components``) whose darkest SWI voxel
    belongs to a tube at least ``min_length_mm`` long."""
    boxes = ndimage.find_objects(components)
    tubes = set()
    for number in candidates:
        box = boxes[number - 1]
        inside = components[box] == number
        darkest = np.unravel_index(np.argmin(np.where(inside, swi[box], np.inf)), inside.shape)
        seed = [s.start + d for s, d in zip(box, darkest)]
        if is_tube(*dark_region_extents(swi, spacing, seed), min_length_mm):
            tubes.add(int(number))
    return tubes
