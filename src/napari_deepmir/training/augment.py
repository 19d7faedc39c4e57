"""Augmentation of 2.5D crops, aimed at acquisitions the training data did not cover.

Geometry: flips, small in-plane rotations and an in-plane zoom (other voxel sizes), done in one
interpolation. Through-plane: mixing of neighbouring slices (thicker slices). Intensity, per modality:
scale, shift, gamma, Gaussian noise (lower SNR) and in-plane blur (lower resolution), each drawn
independently per modality. Modality dropout (off unless asked for): with a probability, one modality of
the sample (T2 most often, never all of them) becomes a flat channel, so that the network cannot hang on
one input, least of all its weakest (issue 21: a default given a flat or foreign T2 lost its iron deposits).
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Relative odds of a modality being the one dropped: T2 is the input most often missing, of another
#: resolution or contrast, or of another scanner session in practice.
DROPOUT_ODDS = {"t2": 3.0}


@dataclass(frozen=True)
class Augmentation:
    """Ranges and probabilities of each augmentation (``enabled=False`` only crops the centre)."""

    enabled: bool = True
    max_rotation_deg: float = 15.0
    zoom_range: tuple[float, float] = (0.7, 1.4)
    p_thick_slices: float = 0.2
    scale_range: tuple[float, float] = (0.8, 1.25)
    max_shift: float = 0.2
    p_gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    p_noise: float = 0.3
    max_noise: float = 0.2
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.4, 1.0)
    #: Probability that one modality of a sample is replaced by a flat (zero: the normalised brain mean) channel.
    modality_dropout: float = 0.0
    #: Relative odds of each modality (channel order) being the one dropped; empty: equal odds.
    dropout_weights: tuple[float, ...] = ()

    @classmethod
    def for_training(cls, enabled: bool, modality_dropout: float, modalities) -> "Augmentation":
        """The trainer's augmentation for a model reading ``modalities`` (T2 dropped 3x as often as another)."""
        weights = tuple(DROPOUT_ODDS.get(m, 1.0) for m in modalities)
        return cls(enabled=enabled, modality_dropout=modality_dropout, dropout_weights=weights)


def _crop_transform(size: int, crop: int, rotation: float, zoom: tuple[float, float], flips: tuple[bool, bool]):
    """Matrix and offset mapping output pixels of a ``size`` patch onto a ``crop``-wide input, about the centres."""
    cos, sin = np.cos(rotation), np.sin(rotation)
    matrix = np.array([[cos, -sin], [sin, cos]]) @ np.diag(
        [(-1 if flips[0] else 1) / zoom[0], (-1 if flips[1] else 1) / zoom[1]]
    )
    centre_out = (size - 1) / 2
    centre_in = (crop - 1) / 2
    offset = centre_in - matrix @ np.array([centre_out, centre_out])
    return matrix, offset


def augment_patch(
    image: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator, aug: Augmentation = Augmentation()
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (C, S, 2P, 2P) + labels (2P, 2P) -> network input (C*S, P, P) float32 and targets (P, P) int64."""
    n_mod, n_slices, crop, _ = image.shape
    if aug.enabled:
        rotation = np.deg2rad(rng.uniform(-aug.max_rotation_deg, aug.max_rotation_deg))
        zoom = tuple(np.exp(rng.uniform(*np.log(aug.zoom_range), size=2)))
        flips = tuple(bool(f) for f in rng.integers(0, 2, size=2))
    else:
        rotation, zoom, flips = 0.0, (1.0, 1.0), (False, False)
    matrix, offset = _crop_transform(size, crop, rotation, zoom, flips)
    shape = (size, size)
    out = np.empty((n_mod, n_slices, size, size), np.float32)
    for m in range(n_mod):
        for s in range(n_slices):
            out[m, s] = ndimage.affine_transform(
                image[m, s], matrix, offset, output_shape=shape, order=1, mode="nearest"
            )
    target = ndimage.affine_transform(labels, matrix, offset, output_shape=shape, order=0, mode="constant")
    if aug.enabled:
        out = _augment_intensity(out, rng, aug)
        if aug.modality_dropout > 0 and n_mod > 1 and rng.random() < aug.modality_dropout:
            out[_dropped_modality(n_mod, rng, aug.dropout_weights)] = 0.0
    return out.reshape(n_mod * n_slices, size, size), target.astype(np.int64)


def _dropped_modality(n_mod: int, rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    odds = np.asarray(weights if weights else [1.0] * n_mod, float)
    return int(rng.choice(n_mod, p=odds / odds.sum()))


def _augment_intensity(out: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    n_slices = out.shape[1]
    if n_slices >= 3 and rng.random() < aug.p_thick_slices:
        weight = rng.uniform(0.15, 0.35)
        mixed = out.copy()
        mixed[:, 1:-1] = (1 - 2 * weight) * out[:, 1:-1] + weight * (out[:, :-2] + out[:, 2:])
        out = mixed
    for m in range(out.shape[0]):
        x = out[m]
        if rng.random() < aug.p_blur:
            x = ndimage.gaussian_filter(x, sigma=(0, *[rng.uniform(*aug.blur_sigma)] * 2))
        if rng.random() < aug.p_gamma:
            low, high = x.min(), x.max()
            if high > low:
                x = low + (high - low) * ((x - low) / (high - low)) ** rng.uniform(*aug.gamma_range)
        x = x * rng.uniform(*aug.scale_range) + rng.uniform(-aug.max_shift, aug.max_shift)
        if rng.random() < aug.p_noise:
            x = x + rng.normal(0, rng.uniform(0, aug.max_noise), size=x.shape)
        out[m] = x
    return out.astype(np.float32)
