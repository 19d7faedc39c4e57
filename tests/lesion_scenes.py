"""Small synthetic scenes with known lesions (spheres, tubes) written as real NIfTI files, for lesion tests."""

import numpy as np
from conftest import oblique_affine, sphere_world, write_nifti

SHAPE = (64, 64, 24)
SPACING = (0.8, 0.8, 2.0)
TISSUE_SWI = 100.0
LESION_SWI = 30.0


def brain_box(shape=SHAPE) -> np.ndarray:
    """An ellipsoidal 'brain' filling most of the grid."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    return (((grid - centre[:, None, None, None]) / (0.47 * np.array(shape))[:, None, None, None]) ** 2).sum(0) <= 1


def scene(lesions, *, tubes=(), seed=0, shape=SHAPE, affine=None):
    """SWI (arbitrary units) and QSM (ppb) with the given lesions.

    ``lesions``: (centre_mm, radius_mm, susceptibility_ppb); ``tubes``: (i, j, radius_vox, ppb) running along k.
    Returns swi, qsm, labels (1 per lesion), affine."""
    affine = oblique_affine(SPACING) if affine is None else affine
    rng = np.random.default_rng(seed)
    brain = brain_box(shape)
    swi = np.where(brain, TISSUE_SWI + rng.normal(0, 2, shape), 0).astype(np.float32)
    qsm = np.where(brain, rng.normal(0, 5, shape), 0).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    for centre, radius, chi in lesions:
        inside = sphere_world(shape, affine, centre, radius)
        swi[inside], qsm[inside], labels[inside] = LESION_SWI, chi, 1
    grid = np.indices(shape[:2])
    for i, j, radius, chi in tubes:
        disc = ((grid[0] - i) ** 2 + (grid[1] - j) ** 2) <= radius**2
        tube = np.repeat(disc[:, :, None], shape[2], axis=2) & brain
        swi[tube], qsm[tube] = LESION_SWI + 10, chi
    return swi, qsm, labels, affine


def world_of(affine, ijk) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(ijk, float) + affine[:3, 3]


def write_scene(folder, swi, qsm, labels, affine, *, name="sub-01", qsm_ppm=True):
    """Write BIDS-like files; QSM in ppm by default (as many QSM tools do)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "swi": write_nifti(folder / f"{name}_swi.nii.gz", swi, affine),
        "qsm": write_nifti(folder / f"{name}_Chimap.nii.gz", qsm / 1000 if qsm_ppm else qsm, affine),
        "labels": write_nifti(folder / f"{name}_dseg.nii.gz", labels, affine),
    }
