"""A brain mask good enough for normalisation, unit detection and candidate search."""

import numpy as np


def brain_mask(swi: np.ndarray, qsm: np.ndarray | None = None) -> np.ndarray:
    """Estimate the brain from SWI (and QSM, which is usually exactly 0 outside the brain).

    If QSM has a clear non-zero support covering 5-95% of the volume, that support is the mask;
    otherwise Otsu's threshold on smoothed SWI. Holes are filled and only the largest component kept.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    support = None
    if qsm is not None:
        nonzero = qsm != 0
        if 0.05 < nonzero.mean() < 0.95:
            support = nonzero
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
