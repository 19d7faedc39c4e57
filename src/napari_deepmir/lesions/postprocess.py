"""Post-processing of the U-Net's probabilities into lesions: the rules of docs/model.md (size, peak
probability, inside the brain, paramagnetic on QSM, not a tube), one decision per connected component."""

import numpy as np
from scipy import ndimage

from .candidates import grow_box
from .components import CONNECTIVITY_26
from .features import qsm_contrast
from .shape import TUBE_MIN_LENGTH_MM, tube_components

#: Peak probability a component needs where the QSM has no data to confirm it (model cards may override).
MIN_PROBABILITY_NO_QSM = 0.8


def apply_postprocess(
    probabilities: np.ndarray,
    subject,
    card,
    *,
    min_probability: float | None = None,
    min_qsm_ppb: float | None = None,
    min_probability_no_qsm: float | None = None,
) -> np.ndarray:
    """Labels from (3, X, Y, Z) probabilities: components of the foreground (26-connected) touching
    ``subject.whole_brain``, each given the class with the larger summed probability; components below
    ``min_volume_mm3`` or whose peak lesion probability is below ``min_probability`` are dropped.
    With QSM, a component is dropped when its susceptibility source is less than ``min_qsm_ppb`` above
    the tissue around it (:func:`.features.qsm_contrast`, the rule the labelling guidance uses):
    microbleeds and iron deposits are paramagnetic, so a diamagnetic spot (a calcification) or one
    without susceptibility (noise) is not one of them. Measured against its own surroundings, the rule is
    indifferent to the QSM's reference offset and to the iron of the nucleus a lesion sits in; voxels
    where the QSM has no data (0, e.g. beyond an eroded brain mask) do not count. A component without
    such data (a lobar microbleed at the cortex) cannot be confirmed: it is kept if its peak probability
    reaches ``min_probability_no_qsm`` (stricter), and the lesion table reports it as not confirmed by QSM.
    A component whose dark SWI structure is a tube at least ``tube_min_length_mm`` long (a vein or sinus,
    :mod:`.shape`; 0 turns the rule off) is dropped, whatever its class: microbleeds are round,
    and iron deposits sit in nuclei, not along tubes."""
    postprocess = card.postprocess
    if min_probability is None:
        min_probability = float(postprocess.get("min_probability", 0.5))
    if min_qsm_ppb is None:
        min_qsm_ppb = postprocess.get("min_qsm_ppb")
    if min_probability_no_qsm is None:
        min_probability_no_qsm = float(postprocess.get("min_probability_no_qsm", MIN_PROBABILITY_NO_QSM))
    min_voxels = float(postprocess.get("min_volume_mm3", 0.0)) / float(np.prod(subject.spacing))
    foreground = probabilities.argmax(axis=0) > 0
    components, count = ndimage.label(foreground, structure=CONNECTIVITY_26)
    labels = np.zeros(foreground.shape, np.uint8)
    if count == 0:
        return labels
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(foreground, components, index)
    peaks = np.asarray(ndimage.maximum(1.0 - probabilities[0], components, index))
    cmb = ndimage.sum_labels(probabilities[1], components, index)
    iron = ndimage.sum_labels(probabilities[2], components, index)
    in_brain = np.asarray(ndimage.maximum(subject.whole_brain, components, index)) > 0
    keep = (sizes >= min_voxels) & (peaks >= min_probability) & in_brain
    if min_qsm_ppb is not None and subject.qsm is not None:
        contrast = _qsm_contrasts(subject, components, foreground, np.flatnonzero(keep) + 1)
        confirmed = np.isfinite(contrast) & (contrast >= float(min_qsm_ppb))
        keep &= confirmed | (np.isnan(contrast) & (peaks >= min_probability_no_qsm))
    classes = np.where(iron > cmb, 2, 1).astype(np.uint8)
    tube_length = float(postprocess.get("tube_min_length_mm", TUBE_MIN_LENGTH_MM))
    if tube_length > 0:
        for number in tube_components(subject.swi, subject.spacing, components, index[keep], tube_length):
            keep[number - 1] = False
    lookup = np.concatenate([[0], classes * keep]).astype(np.uint8)
    return lookup[components]


def _qsm_contrasts(subject, components: np.ndarray, foreground: np.ndarray, numbers) -> np.ndarray:
    """QSM contrast (ppb, :func:`.features.qsm_contrast`) of the components ``numbers`` (NaN for
    the others and for those without QSM data in them or around them), other components left out of the shells.

    Each component is measured with the SWI blob it sits in, grown as the labelling guidance grows a candidate
    (:func:`.candidates.grow_region` from its darkest voxel) when that blob closes within the growing
    box: a component covering only the core of a larger bleed would otherwise have its shell inside the
    bleed and no contrast."""
    contrast = np.full(int(components.max()), np.nan)
    boxes = ndimage.find_objects(components)
    for number in numbers:
        box = boxes[number - 1]
        coords = np.argwhere(components[box] == number) + [b.start for b in box]
        own = subject.qsm[tuple(coords.T)]
        if not (np.isfinite(own) & (own != 0)).any():  # no QSM data in the component itself: not confirmable
            continue
        grown_box, grown = grow_box(subject, coords[np.argmin(subject.swi[tuple(coords.T)])])
        if not _touches_edge(grown):  # a blob closed within the box, not tissue noise spreading through it
            blob = np.argwhere(grown) + [b.start for b in grown_box]
            blob = blob[~(foreground & (components != number))[tuple(blob.T)]]
            coords = np.unique(np.concatenate([coords, blob]), axis=0)
        contrast[number - 1] = qsm_contrast(subject.qsm, coords, subject.spacing, swi=subject.swi, exclude=foreground)
    return contrast


def _touches_edge(mask: np.ndarray) -> bool:
    """Whether a box's mask reaches any face of the box."""
    return any(np.take(mask, index, axis=axis).any() for axis in range(mask.ndim) for index in (0, -1))
