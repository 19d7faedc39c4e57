"""Where a lesion is: its location category and MARS region, by one rule for the table, guidance and evaluation.

A cortical microbleed blooms into the sulcal CSF beside it, so many of its voxels lie outside every label. The
rule (docs/regions.md): the lesion's place is the most frequent *labelled* (non-zero) value of the location map
inside it; a lesion with no labelled voxel takes the label of the labelled voxel nearest to it when that lies
within :data:`NEAREST_LABEL_MM` (2-3 mm, the blooming of a microbleed at 3T), else it is ``outside``. Its MARS
region is the most frequent non-zero region-map value among the same voxels that gave the location (so region and
location always agree), or unknown (a lobar lesion of a segmentation without lobes).
"""

import numpy as np
from scipy import ndimage

from ..conventions import LOCATION_NAMES
from ..regions.segmentation import region_name
from .components import locations_from_regions

#: How far (mm) a lesion with no labelled voxel may be from the labelled voxel whose label it takes.
NEAREST_LABEL_MM = 3.0


def anchor_voxels(location_map: np.ndarray, coords: np.ndarray, spacing) -> np.ndarray:
    """The voxels (N x 3) whose labels place the lesion at ``coords``: its labelled voxels, else the labelled
    voxel nearest to it within :data:`NEAREST_LABEL_MM`, else none."""
    coords = np.asarray(coords, dtype=int).reshape(-1, 3)
    labelled = coords[location_map[tuple(coords.T)] > 0]
    if len(labelled):
        return labelled
    spacing = np.asarray(spacing, dtype=float)
    pad = np.ceil(NEAREST_LABEL_MM / spacing).astype(int) + 1
    low = np.maximum(coords.min(axis=0) - pad, 0)
    high = np.minimum(coords.max(axis=0) + pad + 1, location_map.shape)
    box = location_map[tuple(slice(a, b) for a, b in zip(low, high))]
    if not (box > 0).any():
        return np.empty((0, 3), dtype=int)
    distances, nearest = ndimage.distance_transform_edt(box == 0, sampling=spacing, return_indices=True)
    local = coords - low
    closest = int(np.argmin(distances[tuple(local.T)]))
    if distances[tuple(local[closest])] > NEAREST_LABEL_MM:
        return np.empty((0, 3), dtype=int)
    return (nearest[(slice(None), *local[closest])] + low)[None]


def _majority(values: np.ndarray) -> int:
    values = np.asarray(values, dtype=np.int64)
    values = values[values > 0]
    return int(np.argmax(np.bincount(values))) if values.size else 0


def lesion_place(
    coords: np.ndarray, spacing, *, locations: np.ndarray | None = None, regions: np.ndarray | None = None
) -> tuple[str | None, tuple[str, str] | None]:
    """(location category name, (MARS region, hemisphere) or None) of the lesion at voxels ``coords`` (N x 3) on
    the grid of the maps (module docstring). Without a location map the region map gives it; without either the
    location is None."""
    if locations is None and regions is None:
        return None, None
    if locations is None:
        locations = locations_from_regions(regions)
    anchors = anchor_voxels(locations, coords, spacing)
    location = _majority(locations[tuple(anchors.T)]) if len(anchors) else 0
    if regions is None or not location:
        return LOCATION_NAMES.get(location, "unknown"), None
    same_place = anchors[locations[tuple(anchors.T)] == location]

    return LOCATION_NAMES[location], region_name(_majority(regions[tuple(same_place.T)]))
