"""A brain mask good enough for normalisation, unit detection and candidate search."""

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from .errors import InputError
from .nifti import Volume, load_volume
from .resample import resample_volume_to

#: A QSM or T2 must have data near at least this fraction of the head seen on SWI (see :func:`coverage`).
MIN_COVERAGE = 0.5
#: How far (mm) outside a modality's data the head still counts as covered: a QSM's brain mask is eroded
#: by 2-5 mm and the SWI head includes skull and scalp.
COVERAGE_MARGIN_MM = 10.0
#: A QSM support smaller than this fraction of the SWI-based estimate is not used as the brain mask.
MIN_SUPPORT_FRACTION = 0.25
#: How far (mm) the brain may reach beyond the QSM's support: pipelines erode the brain mask by 2-5 mm.
QSM_EROSION_REACH_MM = 5.0


def qsm_support(qsm: np.ndarray | None) -> np.ndarray | None:
    """Where the QSM has data (non-zero), if that covers 5-95% of the volume; None otherwise."""
    if qsm is None:
        return None
    nonzero = qsm != 0
    return nonzero if 0.05 < nonzero.mean() < 0.95 else None


def brain_mask(swi: np.ndarray, qsm: np.ndarray | None = None) -> np.ndarray:
    """Estimate the brain from SWI (and QSM, which is usually exactly 0 outside the brain).

    If QSM has a clear non-zero support covering 5-95% of the volume and at least
    :data:`MIN_SUPPORT_FRACTION` of the SWI-based estimate, that support is the mask; otherwise
    Otsu's threshold on smoothed SWI. Holes are filled and only the largest component kept.
    """
    smooth = ndi.gaussian_filter(np.asarray(swi, dtype=np.float32), 2.0)
    estimate = smooth > threshold_otsu(smooth) * 0.5
    support = qsm_support(qsm)
    if support is None or (support & estimate).sum() < MIN_SUPPORT_FRACTION * estimate.sum():
        support = estimate
    support = ndi.binary_closing(support, iterations=2)
    labels, n = ndi.label(support)
    if n > 1:
        sizes = ndi.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        support = labels == (1 + int(np.argmax(sizes)))
    filled = np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(support, 2, 0)], axis=2)
    return ndi.binary_fill_holes(filled)


def coverage(support: np.ndarray, region: np.ndarray, spacing, *, margin_mm: float = COVERAGE_MARGIN_MM) -> float:
    """Fraction of ``region`` within ``margin_mm`` of ``support`` (boolean arrays on one grid of ``spacing`` mm).

    Measured on blocks of about 4 mm, so it is cheap on any grid; an empty region counts as covered.
    """
    step = np.maximum(1, np.round(4.0 / np.asarray(spacing, dtype=float))).astype(int)
    support, region = _any_in_blocks(support, step), _any_in_blocks(region, step)
    if not region.any():
        return 1.0
    if not support.any():
        return 0.0
    near = ndi.distance_transform_edt(~support, sampling=step * np.asarray(spacing, dtype=float)) <= margin_mm
    return float((near & region).sum() / region.sum())


def _any_in_blocks(mask: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``mask`` reduced by blocks of ``step`` voxels: True where any voxel of the block is."""
    padded = np.pad(mask, [(0, -n % s) for n, s in zip(mask.shape, step)])
    blocks = padded.reshape([d for n, s in zip(padded.shape, step) for d in (n // s, s)])
    return blocks.any(axis=(1, 3, 5))


def whole_brain_mask(swi: np.ndarray, qsm: np.ndarray | None, spacing) -> np.ndarray:
    """The brain including its cortex where the (eroded) QSM has no data: where lesions are sought.

    The QSM's support (see :func:`brain_mask`) united with the SWI tissue (above half Otsu's threshold of
    the lightly smoothed SWI) connected to it and within :data:`QSM_EROSION_REACH_MM` of it; the dark skull
    stops it, so the scalp stays out. Without a QSM support, :func:`brain_mask`'s SWI estimate.
    """
    core = brain_mask(swi, qsm)
    if qsm_support(qsm) is None:
        return core
    near = ndi.distance_transform_edt(~core, sampling=np.asarray(spacing, float)) <= QSM_EROSION_REACH_MM
    smooth = ndi.gaussian_filter(np.asarray(swi, dtype=np.float32), 1.0)
    grown = core | (near & (smooth > threshold_otsu(smooth) * 0.5))
    labels, _ = ndi.label(grown)
    grown = np.isin(labels, np.unique(labels[core]))
    filled = np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(grown, 2, 0)], axis=2)
    return ndi.binary_fill_holes(filled)


def load_brain_mask(path, subject) -> np.ndarray:
    """A user's brain mask file (non-zero = brain) on ``subject``'s SWI grid, resampled there in world space."""
    volume = load_volume(path, check_values=False)
    mask = (
        resample_volume_to(
            Volume((volume.data != 0).astype(np.float32), volume.affine, volume.path),
            Volume(subject.swi, subject.affine, subject.paths.get("swi")),
            order=1,
        )
        > 0.5
    )
    return mask


def use_brain_mask(subject, mask: np.ndarray, source) -> None:
    """A user's brain mask (on the SWI grid, non-zero = brain) replaces ``subject``'s estimated whole brain:
    lesions are sought only inside it. Normalisation keeps to the estimated mask (the QSM's support) inside
    it, or to the user's mask where the two do not meet. ``source`` (a file or a layer name) is recorded in
    ``subject.brain_mask_source`` and names the mask in errors."""
    mask = np.asarray(mask) != 0
    if mask.shape != subject.shape:
        raise InputError(source, f"the brain mask has shape {mask.shape}, the SWI grid is {subject.shape}")
    if not mask.any():
        raise InputError(source, "the brain mask is empty on the SWI grid")
    estimated = subject.mask & mask
    subject.whole_brain = mask
    subject.mask = estimated if estimated.any() else mask
    subject.brain_mask_source = str(source)
