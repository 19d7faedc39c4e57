"""Wide-world tissue that is not a lesion: textured iron-rich nuclei with punctate pallidal iron, pulvinar and
dentate iron; air-filled sinuses and mastoid cells and bone with their real susceptibilities.
"""

import numpy as np
from scipy import ndimage

from .anatomy import BRAIN_RADII_MM, BY_NAME, Head, _ellipsoid

IRON_NUCLEI = ("caudate", "putamen", "globus pallidus", "thalamus", "substantia nigra", "red nucleus")
#: Air relative to tissue (ppb): +9.4 ppm; bone: about -2 ppm (domain brief).
AIR_CHI_PPB = 9400.0
BONE_CHI_PPB = (-2500.0, -1500.0)


def _ball(maps, centre, radii, within=None):
    """(slices, mask) of an ellipsoid in a box of the fine maps, optionally restricted to tissue codes."""
    slices, world = maps.box(centre, float(np.max(radii)))
    inside = _ellipsoid(world, centre, radii) <= 1
    if within is not None:
        inside &= np.isin(maps.tissue[slices], within)
    return slices, inside


def physiological_iron(maps, head: Head, rng: np.random.Generator) -> None:
    """Heterogeneous iron in the deep nuclei (+-30 % texture at ~1 mm), punctate pallidal iron, pulvinar and
    dentate nucleus iron: unlabelled, what a detector must leave alone."""
    codes = [BY_NAME[name].code for name in IRON_NUCLEI]
    nuclei = np.isin(maps.tissue, codes)
    if not nuclei.any():
        return
    box = ndimage.find_objects(nuclei.astype(np.uint8))[0]
    texture = ndimage.gaussian_filter(
        rng.standard_normal(maps.chi[box].shape).astype(np.float32), 1.0 / np.asarray(maps.voxel_mm)
    )
    texture /= texture.std() + 1e-6
    tissue_chi = np.abs(maps.chi[box])
    maps.chi[box] += np.where(nuclei[box], 0.3 * tissue_chi * texture, 0).astype(np.float32)
    maps.r2star[box] += np.where(nuclei[box], 5.0 * texture, 0).astype(np.float32)

    s = head.scale / np.array(BRAIN_RADII_MM)
    pallidum = [BY_NAME["globus pallidus"].code]
    for side in (-1, 1):
        m = np.array([side, 1, 1]) * s
        slices, inside = _ball(maps, m * (12, -22, 4), s * (5, 5, 5), [BY_NAME["thalamus"].code])
        maps.chi[slices][inside] += rng.uniform(30, 80)  # pulvinar
        slices, inside = _ball(maps, m * (14, -52, -30), s * (5, 8, 4), [BY_NAME["cerebellum"].code])
        maps.chi[slices][inside] += rng.uniform(80, 180)  # dentate nucleus
        maps.r2star[slices][inside] += 15.0
        centre = m * (18.5, 0, 0)
        for _ in range(rng.integers(5, 20)):  # punctate pallidal iron
            point = centre + rng.normal(0, 1, 3) * s * (2.5, 5, 3)
            slices, inside = _ball(maps, point, np.full(3, rng.uniform(0.3, 0.8)), pallidum)
            maps.chi[slices][inside] += rng.uniform(150, 400)
            maps.r2star[slices][inside] += 40.0


def air_and_bone(maps, head: Head, rng: np.random.Generator) -> None:
    """Bone at about -2 ppm; frontal and sphenoid sinuses and mastoid air cells at +9.4 ppm, outside the brain.
    (The air around the head stays at 0: the head is cut by the field of view, and its smooth field is part
    of the background field.)"""
    skull = maps.tissue == BY_NAME["skull"].code
    maps.chi[skull] = rng.uniform(*BONE_CHI_PPB)
    cavities = [
        (head.shell_point((0, 1, -0.3), 1.1), np.array([rng.uniform(8, 14), 6, rng.uniform(6, 10)])),
        (head.shell_point((0, 0.4, -1), 1.08), np.array([9, 9, 7.0]) * rng.uniform(0.8, 1.2)),
    ]
    for side in (-1, 1):
        mastoid = head.shell_point((side * 0.8, -0.35, -0.6), 1.1)
        cells = rng.integers(10, 25)
        cavities += [(mastoid + rng.normal(0, 4, 3), np.full(3, rng.uniform(1, 3))) for _ in range(cells)]
    outside_brain = [BY_NAME[name].code for name in ("scalp", "skull", "csf")]
    for centre, radii in cavities:
        slices, inside = _ball(maps, centre, radii, outside_brain)
        maps.tissue[slices][inside] = BY_NAME["air"].code
        maps.chi[slices][inside] = AIR_CHI_PPB
        maps.proton_density[slices][inside] = 0.0
        maps.t2w[slices][inside] = 0.0
