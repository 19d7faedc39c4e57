"""Lesion-centred 2.5D patch sampling with class balancing and hard negatives.

Lesions fill a tiny fraction of the voxels, so each patch is centred on a voxel drawn from one of four
pools with fixed shares: CMB voxels, iron-deposit voxels, *hard negatives* (dark SWI voxels that are not
lesions: veins, calcifications, edges) and anywhere. Each patch is an axial slice with ``context``
slices either side, cut large enough (2x) for the augmentation to rotate and zoom without running out.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..conventions import CMB, IRON

#: Share of patches centred on each pool; a pool that is empty in a subject falls back to "anywhere".
POOL_SHARES: dict[str, float] = {"cmb": 0.35, "iron": 0.25, "hard_negative": 0.2, "anywhere": 0.2}
#: A voxel this many standard deviations below the brain's mean SWI counts as "dark".
DARK_SWI_Z = -1.5
_MAX_POOL = 50_000


def hard_negative_voxels(swi: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coordinates (N, 3) of dark SWI voxels at least 2 voxels away from any lesion (at most 50 000)."""
    near_lesion = ndimage.binary_dilation(labels > 0, iterations=2)
    found = np.argwhere((swi < DARK_SWI_Z) & ~near_lesion)
    if len(found) > _MAX_POOL:
        found = found[rng.choice(len(found), _MAX_POOL, replace=False)]
    return found


@dataclass
class _Pools:
    channels: np.ndarray  # (C, X+2h, Y+2h, Z+2k), edge-padded
    labels: np.ndarray  # (X+2h, Y+2h, Z+2k), zero-padded
    voxels: dict[str, np.ndarray]  # pool name -> (N, 3) unpadded coordinates
    shape: tuple[int, int, int]


class PatchSampler:
    """Draws (image (C, 2k+1, 2P, 2P), labels (2P, 2P)) crops from annotated subjects.

    ``swi_channel`` is the index of SWI among the channels (for hard negatives).
    """

    def __init__(self, subjects, patch_size: int, context: int, swi_channel: int = 0):
        self.patch_size, self.context = patch_size, context
        self.half = patch_size  # crops are 2P wide
        self._subjects = []
        rng = np.random.default_rng(0)  # pool subsampling only; drawing uses the caller's generator
        for s in subjects:
            h, k = self.half, context
            channels = np.pad(s.channels, ((0, 0), (h, h), (h, h), (k, k)), mode="edge")
            labels = np.pad(s.labels, ((h, h), (h, h), (k, k)))
            voxels = {
                "cmb": np.argwhere(s.labels == CMB),
                "iron": np.argwhere(s.labels == IRON),
                "hard_negative": hard_negative_voxels(s.channels[swi_channel], s.labels, rng),
            }
            self._subjects.append(_Pools(channels, labels, voxels, tuple(s.labels.shape)))
        if not self._subjects:
            raise ValueError("no training subjects")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One crop centred on a voxel from a pool chosen by :data:`POOL_SHARES`."""
        pools = self._subjects[rng.integers(len(self._subjects))]
        names = list(POOL_SHARES)
        pool = names[rng.choice(len(names), p=list(POOL_SHARES.values()))]
        voxels = pools.voxels.get(pool)
        if voxels is None or len(voxels) == 0:
            centre = np.array([rng.integers(n) for n in pools.shape])
        else:
            centre = voxels[rng.integers(len(voxels))] + rng.integers(
                -self.patch_size // 4, self.patch_size // 4 + 1, size=3
            ) * [1, 1, 0]
            centre = np.clip(centre, 0, np.array(pools.shape) - 1)
        x, y, z = centre
        h, k = self.half, self.context
        # padded coordinates: x + h is the centre, the crop spans [x, x + 2h)
        image = pools.channels[:, x : x + 2 * h, y : y + 2 * h, z : z + 2 * k + 1]
        labels = pools.labels[x : x + 2 * h, y : y + 2 * h, z + k]
        return np.moveaxis(image, -1, 1).copy(), labels.copy()
