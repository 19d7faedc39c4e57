"""A brain mask good enough for normalisation, unit detection and candidate search."""

import numpy as np

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

    If QSM has a clear non-zero support covering 5-95% of the volume, that support is the mask;
    otherwise Otsu's threshold on smoothed SWI. Holes are filled and only the largest component kept.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    support = qsm_support(qsm)
    if support is None:
        smooth = ndi.gaussian_filter(np.asarray(swi, dtype=np.float32), 2.0)
        support = smooth > threshold_otsu(smooth) * 0.5
    support = ndi.binary_closing(support, iterations=2)
    labels, n = ndi.label(support)
    if n > 1:
        sizes = ndi.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        support = labels == (1 + int(np.argmax(sizes)))
    filled = np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(support, 2, 0)], axis=2)
    return ndi.binary_fill_holes(filled)


def whole_brain_mask(swi: np.ndarray, qsm: np.ndarray | None, spacing) -> np.ndarray:
    """The brain including its cortex where the (eroded) QSM has no data: where lesions are sought.

    The QSM's support (see :func:`brain_mask`) united with the SWI tissue (above half Otsu's threshold of
    the lightly smoothed SWI) connected to it and within :data:`QSM_EROSION_REACH_MM` of it; the dark skull
    stops it, so the scalp stays out. Without a QSM support, :func:`brain_mask`'s SWI estimate.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

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
    from .errors import InputError
    from .nifti import Volume, load_volume
    from .resample import resample_volume_to

    volume = load_volume(path, check_values=False)
    mask = resample_volume_to(Volume((volume.data != 0).astype(np.float32), volume.affine, volume.path),
                              Volume(subject.swi, subject.affine, subject.paths.get("swi")), order=1) > 0.5
    if not mask.any():
        raise InputError(path, "the brain mask is empty on the SWI grid")
    return mask
