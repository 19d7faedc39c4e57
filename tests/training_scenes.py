"""Annotated blob subjects for training tests: SWI/QSM/T2 + dseg written as real NIfTI subject folders.

Two domains on a 1 x 1 x 2 mm grid: "strong" (bright-QSM, very dark-SWI microbleeds, with faint
non-paramagnetic dark spots labelled background) and "faint" (microbleeds less contrasted,
lower SNR). A cohort may also lack iron deposits (``iron=False``), so that a model trained on it
has never seen that lesion kind.
"""

from pathlib import Path

import numpy as np
from conftest import write_nifti

SHAPE = (48, 48, 12)


def _ball(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return (
        ((grid - np.asarray(centre, float)[:, None, None, None]) / np.asarray(radii, float)[:, None, None, None]) ** 2
    ).sum(0) <= 1


def write_blob_subject(root: Path, index: int, *, domain: str = "strong", seed: int = 0, iron: bool = True) -> Path:
    """Write ``root/sub-<domain><index>/`` with SWI, QSM (ppb), T2 and labels (``iron=False``: no iron deposits)."""
    rng = np.random.default_rng(seed * 1000 + index + (0 if domain == "strong" else 500))
    spacing = (1.0, 1.0, 2.0)
    brain = _ball(SHAPE, (np.array(SHAPE) - 1) / 2, 0.46 * np.array(SHAPE))
    swi = np.where(brain, 1.0, 0.05)
    qsm = np.zeros(SHAPE)
    t2 = np.where(brain, 0.8, 0.02)
    labels = np.zeros(SHAPE, np.uint8)
    occupied = ~_ball(SHAPE, (np.array(SHAPE) - 1) / 2, 0.38 * np.array(SHAPE))

    def place(radius):
        for _ in range(200):
            centre = [rng.uniform(6, n - 7) for n in SHAPE[:2]] + [rng.uniform(2, SHAPE[2] - 3)]
            blob = _ball(SHAPE, centre, (radius, radius, max(radius / 2, 0.8)))
            if blob.any() and not (blob & occupied).any():
                occupied[_ball(SHAPE, centre, (radius + 4, radius + 4, radius + 2))] = True
                return blob
        raise RuntimeError("no room for a blob")

    faint = domain == "faint"
    for _ in range(5):  # microbleeds
        blob = place(1.6)
        swi[blob] *= 0.3 if faint else 0.15
        qsm[blob] += 250 if faint else 400
        labels[blob] = 1
    for _ in range(2 if iron else 0):  # iron deposits: larger, moderately dark, paramagnetic
        blob = place(3.2)
        swi[blob] *= 0.55
        qsm[blob] += 150
        labels[blob] = 2
    if not faint:
        for _ in range(4):  # faint dark spots that are not lesions (no susceptibility)
            swi[place(1.6)] *= 0.75
    noise = 0.08 if faint else 0.03
    swi = swi + rng.normal(0, noise, SHAPE)
    qsm = qsm + rng.normal(0, 8, SHAPE) * brain
    t2 = t2 + rng.normal(0, noise, SHAPE)
    affine = np.diag([*spacing, 1.0])
    folder = root / f"sub-{domain}{index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    name = folder.name
    write_nifti(folder / f"{name}_swi.nii.gz", swi.astype(np.float32), affine)
    write_nifti(folder / f"{name}_Chimap.nii.gz", qsm.astype(np.float32), affine)
    write_nifti(folder / f"{name}_T2w.nii.gz", t2.astype(np.float32), affine)
    write_nifti(folder / f"{name}_dseg.nii.gz", labels, affine)
    return folder


#: A tiny real network and its training settings, for tests that train.
TINY = {
    "base_filters": 4,
    "depth": 3,
    "context_slices": 1,
    "spacing_mm": (1.0, 1.0, 2.0),
    "patch_size": 32,
    "batch_size": 4,
}
