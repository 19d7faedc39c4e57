"""Physical measurements of labelled regions: size, extent, shape, QSM and SWI contrast, in mm and ppb.

Shared by the lesion table (:mod:`.measure`) and the labelling guidance (:mod:`.guidance`), so a
painted lesion and a table row always show the same numbers.
"""

import math

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist
from skimage.measure import regionprops

from ..io.nifti import voxel_sizes

#: Width of the tissue shell around a lesion that SWI contrast is measured against.
SHELL_MM = 2.0

FEATURE_COLUMNS = (
    "voxels",
    "volume_mm3",
    "diameter_mm",
    "axial_diameter_mm",
    "extent_mm",
    "elongation",
    "i",
    "j",
    "k",
    "x_mm",
    "y_mm",
    "z_mm",
    "qsm_mean_ppb",
    "qsm_peak_ppb",
    "qsm_core_ppb",
    "qsm_contrast_ppb",
    "qsm_tissue_ppb",
    "susceptibility_moment_ppb_mm3",
    "swi_contrast",
)
#: Share of a region's voxels, the darkest on SWI, that make its core.
CORE_SHARE = 0.25


def equivalent_diameter_mm(volume_mm3: float) -> float:
    """Diameter of the sphere with this volume."""
    return (6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0)


def _world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return voxels @ affine[:3, :3].T + affine[:3, 3]


def max_extent_mm(points_mm: np.ndarray, edges: np.ndarray) -> float:
    """Largest physical extent of a set of voxels: the farthest pair of voxel centres plus the voxel's
    own width along that direction (a single voxel: its longest edge)."""
    if len(points_mm) == 1:
        return float(np.linalg.norm(edges, axis=0).max())
    if len(points_mm) > 500:
        try:
            points_mm = points_mm[ConvexHull(points_mm).vertices]
        except QhullError:  # flat or collinear sets: all points are extreme enough
            pass
    distances = pdist(points_mm)
    first, second = np.triu_indices(len(points_mm), k=1)
    best = int(np.argmax(distances))
    direction = (points_mm[second[best]] - points_mm[first[best]]) / distances[best]
    return float(distances[best] + np.abs(edges.T @ direction).sum())


def axial_axis(affine: np.ndarray) -> int:
    """The array axis that runs most nearly along scanner z (head-foot): its slices are the axial ones."""
    edges = np.asarray(affine, dtype=float)[:3, :3]
    return int(np.argmax(np.abs(edges[2]) / np.linalg.norm(edges, axis=0)))


def axial_diameter_mm(coords: np.ndarray, affine: np.ndarray) -> float:
    """Largest in-plane diameter of the voxels ``coords`` (N x 3) on any axial slice (:func:`axial_axis`), as MARS,
    BOMBS and Greenberg et al. 2009 measure a microbleed: :func:`max_extent_mm` within each slice."""
    affine = np.asarray(affine, dtype=float)
    axis = axial_axis(affine)
    in_plane = [a for a in range(3) if a != axis]
    edges = affine[:3, in_plane]
    largest = 0.0
    for index in np.unique(coords[:, axis]):
        points = _world(affine, coords[coords[:, axis] == index].astype(float))
        largest = max(largest, max_extent_mm(points, edges))
    return largest


def elongation(points_mm: np.ndarray, edges: np.ndarray) -> float:
    """Ratio of the longest to the middle principal axis (inertia of the voxel boxes, in mm).

    About 1 for spheres and discs, large for tubes (vessels)."""
    covariance = np.cov(points_mm.T, bias=True) if len(points_mm) > 1 else np.zeros((3, 3))
    covariance = covariance + edges @ edges.T / 12.0  # a voxel is a box, not a point
    eigenvalues = np.sort(np.linalg.eigvalsh(covariance))[::-1]
    return float(np.sqrt(eigenvalues[0] / max(eigenvalues[1], 1e-12)))


def signed_peak(values: np.ndarray) -> float:
    """The extreme value on the side of the mean: the maximum of a paramagnetic region, the minimum otherwise."""
    return float(values.max() if values.mean() >= 0 else values.min())


def core_mean(qsm_values: np.ndarray, swi_values: np.ndarray) -> float:
    """Mean QSM over the darkest quarter (at least one voxel) of a region on SWI: the susceptibility
    source itself, not the blooming rim or the tissue it sits in (a calcification inside the iron-rich
    pallidum is negative at its core while its SWI blob is mostly positive tissue)."""
    n = max(1, round(CORE_SHARE * len(swi_values)))
    darkest = np.argpartition(swi_values, n - 1)[:n]
    return float(qsm_values[darkest].mean())


def _shell(region_mask: np.ndarray, spacing: np.ndarray, shell_mm: float) -> np.ndarray:
    radius = np.maximum(np.round(shell_mm / spacing), 1).astype(int)
    grid = np.indices(2 * radius + 1).reshape(3, -1).T - radius
    ball = ((grid * spacing) ** 2).sum(axis=1) <= max(shell_mm, spacing.max()) ** 2
    structure = ball.reshape(tuple(2 * radius + 1))
    return ndimage.binary_dilation(region_mask, structure=structure) & ~region_mask


def local_shell(
    shape: tuple[int, ...], coords: np.ndarray, spacing: np.ndarray, shell_mm: float = SHELL_MM
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """A box around the voxels ``coords`` (N x 3) in a grid of ``shape``, with the region and the
    ``shell_mm`` thick shell of voxels around it as masks of that box."""
    pad = np.ceil(shell_mm / spacing).astype(int) + 1
    low = np.maximum(coords.min(axis=0) - pad, 0)
    high = np.minimum(coords.max(axis=0) + pad + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    region = np.zeros(high - low, dtype=bool)
    region[tuple((coords - low).T)] = True
    return box, region, _shell(region, spacing, shell_mm)


def swi_contrast(
    swi: np.ndarray,
    coords: np.ndarray,
    spacing: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    shell_mm: float = SHELL_MM,
) -> float:
    """How much darker the voxels ``coords`` (N x 3) are than a tissue shell around them.

    Contrast = 1 - mean(region) / mean(shell).
    0 means no contrast, 0.5 half as bright, negative brighter. Shell voxels in ``exclude`` (other
    lesions) or at 0 (outside the image) are left out; NaN without a usable shell."""
    box, region, shell = local_shell(swi.shape, coords, spacing, shell_mm)
    shell &= swi[box] > 0
    if exclude is not None:
        shell &= ~exclude[box]
    if not shell.any():
        return math.nan
    background = float(swi[box][shell].mean())
    return 1.0 - float(swi[box][region].mean()) / background if background > 0 else math.nan


def _measured_shell(
    qsm: np.ndarray, coords: np.ndarray, spacing: np.ndarray, exclude: np.ndarray | None, shell_mm: float
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """(box, region voxels with QSM data, shell voxels with QSM data and not in ``exclude``) around ``coords``."""
    box, region, shell = local_shell(qsm.shape, coords, spacing, shell_mm)
    values = qsm[box]
    measured = np.isfinite(values) & (values != 0)
    shell &= measured
    if exclude is not None:
        shell &= ~exclude[box]
    return box, region & measured, shell


def tissue_susceptibility(
    qsm: np.ndarray,
    coords: np.ndarray,
    spacing: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    shell_mm: float = SHELL_MM,
) -> float:
    """The local tissue's susceptibility around the voxels ``coords``: the median of a ``shell_mm`` shell with
    QSM data, leaving ``exclude`` (other lesions) out; NaN without one."""
    box, _, shell = _measured_shell(qsm, coords, spacing, exclude, shell_mm)
    return float(np.median(qsm[box][shell])) if shell.any() else math.nan


def susceptibility_moment(qsm: np.ndarray, coords: np.ndarray, voxel_mm3: float, tissue: float) -> float:
    """Liu et al. (MRM 2012): the sum over the lesion's voxels with QSM data of (chi - local tissue chi) x voxel
    volume, which does not depend on echo time or field strength (the raw mean x volume does)."""
    values = qsm[tuple(coords.T)]
    values = values[np.isfinite(values) & (values != 0)]
    return float((values - tissue).sum() * voxel_mm3) if values.size and math.isfinite(tissue) else math.nan


def qsm_contrast(
    qsm: np.ndarray,
    coords: np.ndarray,
    spacing: np.ndarray,
    *,
    swi: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    shell_mm: float = SHELL_MM,
) -> float:
    """The susceptibility rule: a region's QSM source against the tissue right around it, in the units of ``qsm``.

    The source is the region's core (:func:`core_mean`, its darkest quarter on ``swi``) or its mean,
    whichever departs more from the tissue (the darkest SWI voxels of a small calcification can lie in its
    dipole's lobes, not on it), or, without SWI, its signed peak; the tissue is the median of a
    ``shell_mm`` shell around the region. Positive
    for a bleed or an iron deposit, negative for a calcification, about 0 for no source, whatever the
    QSM's reference offset or the iron content of the nucleus the region sits in. Voxels where the QSM
    has no data (0 or NaN, e.g. beyond an eroded mask) and shell voxels in ``exclude`` (other lesions)
    are left out; NaN when the region or its shell has no data."""
    box, inside, shell = _measured_shell(qsm, coords, spacing, exclude, shell_mm)
    values = qsm[box]
    if not inside.any() or not shell.any():
        return math.nan
    tissue = float(np.median(values[shell]))
    if swi is None:
        return signed_peak(values[inside]) - tissue
    departures = (core_mean(values[inside], swi[box][inside]) - tissue, float(values[inside].mean()) - tissue)
    return max(departures, key=abs)


def region_features(
    lesion_ids: np.ndarray,
    affine: np.ndarray,
    *,
    swi: np.ndarray | None = None,
    qsm: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per id of ``lesion_ids`` (index ``lesion_id``) with :data:`FEATURE_COLUMNS`.

    Centroids in voxels (i, j, k) and world mm (scanner RAS through ``affine``); QSM in the units of
    ``qsm`` (ppb on a Subject); SWI and QSM contrast against a 2 mm shell, leaving ``exclude`` out of the shell."""
    affine = np.asarray(affine, dtype=float)
    edges = affine[:3, :3]
    spacing = voxel_sizes(affine)
    voxel_mm3 = float(abs(np.linalg.det(edges)))
    exclude = lesion_ids > 0 if exclude is None else exclude
    rows = []
    for region in regionprops(lesion_ids):
        coords = region.coords
        points = _world(affine, coords.astype(float))
        centroid = np.asarray(region.centroid)
        volume = region.area * voxel_mm3
        row = {
            "lesion_id": region.label,
            "voxels": int(region.area),
            "volume_mm3": volume,
            "diameter_mm": equivalent_diameter_mm(volume),
            "axial_diameter_mm": axial_diameter_mm(coords, affine),
            "extent_mm": max_extent_mm(points, edges),
            "elongation": elongation(points, edges),
            "i": centroid[0],
            "j": centroid[1],
            "k": centroid[2],
        }
        row.update(zip(("x_mm", "y_mm", "z_mm"), _world(affine, centroid[None])[0]))
        values = None if qsm is None else qsm[tuple(coords.T)]
        if values is not None and not np.any(values):  # NaNs in a QSM file are read as 0: no data here
            values = None
        row["qsm_mean_ppb"] = math.nan if values is None else float(values.mean())
        row["qsm_peak_ppb"] = math.nan if values is None else signed_peak(values)
        row["qsm_core_ppb"] = math.nan if values is None or swi is None else core_mean(values, swi[tuple(coords.T)])
        row["qsm_contrast_ppb"] = (
            math.nan if values is None else qsm_contrast(qsm, coords, spacing, swi=swi, exclude=exclude)
        )
        tissue = math.nan if values is None else tissue_susceptibility(qsm, coords, spacing, exclude=exclude)
        row["qsm_tissue_ppb"] = tissue
        row["susceptibility_moment_ppb_mm3"] = (
            math.nan if values is None else susceptibility_moment(qsm, coords, voxel_mm3, tissue)
        )
        row["swi_contrast"] = math.nan if swi is None else swi_contrast(swi, coords, spacing, exclude=exclude)
        rows.append(row)
    return pd.DataFrame(rows, columns=("lesion_id", *FEATURE_COLUMNS)).set_index("lesion_id")
