"""A deformable head: tissues from ellipsoids with subject-specific size, shape and texture.

Tissues are drawn in world millimetres (RAS, origin near the brain centre) so any acquisition grid,
voxel size or obliquity images the same head. Each tissue has a susceptibility (ppb, relative to CSF),
a proton density, an R2* (1/s) and a T2-weighted brightness (values after domain.md).
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..conventions import LOCATION_NAMES

LOBAR, DEEP, BASAL_GANGLIA, BRAINSTEM, CEREBELLUM = 1, 2, 3, 5, 6
assert LOCATION_NAMES[BASAL_GANGLIA] == "basal ganglia" and LOCATION_NAMES[BRAINSTEM] == "brainstem"
assert LOCATION_NAMES[CEREBELLUM] == "cerebellum"


@dataclass(frozen=True)
class Tissue:
    code: int
    name: str
    chi_ppb: tuple[float, float]  # range, drawn per subject
    proton_density: float
    r2star: float  # 1/s at 3 T
    t2w: float  # T2-weighted brightness
    location: int  # location category (conventions.LOCATION_NAMES)


TISSUES = [
    Tissue(0, "air", (0, 0), 0.0, 0.0, 0.0, 0),
    Tissue(1, "scalp", (-10, 0), 0.55, 30, 0.5, 0),
    Tissue(2, "skull", (-20, 0), 0.05, 200, 0.05, 0),
    Tissue(3, "csf", (0, 0), 1.0, 2, 1.0, 0),
    Tissue(4, "cortex", (10, 20), 0.86, 17, 0.62, LOBAR),
    Tissue(5, "white matter", (-35, -25), 0.72, 21, 0.42, LOBAR),
    Tissue(6, "deep white matter", (-35, -25), 0.72, 21, 0.42, DEEP),
    Tissue(7, "caudate", (50, 70), 0.82, 24, 0.55, BASAL_GANGLIA),
    Tissue(8, "putamen", (50, 90), 0.8, 28, 0.5, BASAL_GANGLIA),
    Tissue(9, "globus pallidus", (150, 190), 0.76, 45, 0.34, BASAL_GANGLIA),
    Tissue(10, "thalamus", (10, 70), 0.78, 23, 0.5, DEEP),
    Tissue(11, "substantia nigra", (130, 200), 0.76, 45, 0.32, BRAINSTEM),
    Tissue(12, "red nucleus", (90, 110), 0.76, 38, 0.36, BRAINSTEM),
    Tissue(13, "brainstem", (-20, -5), 0.73, 21, 0.45, BRAINSTEM),
    Tissue(14, "cerebellum", (5, 15), 0.84, 18, 0.6, CEREBELLUM),
    Tissue(15, "ventricle", (0, 0), 1.0, 2, 1.0, 0),
]
BY_NAME = {t.name: t for t in TISSUES}


#: Brain centre (mm) and radii before a subject's scaling.
BRAIN_CENTRE_MM = (0.0, 0.0, 4.0)
BRAIN_RADII_MM = (68.0, 84.0, 58.0)
#: Head-shape families: radius factors (x, y, z) and the superquadric power of the outline.
HEAD_SHAPE_FAMILIES = {
    "ellipsoid": ((1.0, 1.0, 1.0), 2.0),
    "long": ((0.92, 1.08, 0.97), 2.0),
    "round": ((1.07, 0.93, 1.03), 2.0),
    "boxy": ((1.0, 0.97, 0.97), 3.0),
}


def _ellipsoid(xyz: np.ndarray, centre, radii, power: float = 2.0) -> np.ndarray:
    """Normalised radius of ``xyz`` (3, ...) in an axis-aligned ellipsoid (<= 1 inside; a superquadric when
    ``power`` is not 2)."""
    if power == 2.0:
        return np.sqrt(sum(((xyz[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    return sum(np.abs((xyz[i] - centre[i]) / radii[i]) ** power for i in range(3)) ** (1 / power)


def _smooth_noise(shape, rng: np.random.Generator, sigma_vox) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-smoothed noise (texture, deformation)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
    return field / (field.std() + 1e-6)


@dataclass
class Head:
    tissue: np.ndarray  # uint8 tissue codes on the grid it was drawn on
    chi_ppb: np.ndarray  # float32 susceptibility per tissue for this subject (indexed by code)
    scale: np.ndarray  # brain radii (mm)
    texture: np.ndarray  # float32 smooth texture (unit std) on the grid
    shape_power: float = 2.0  # superquadric power of the brain outline

    def shell_point(self, direction, level: float) -> np.ndarray:
        """The world point at normalised brain radius ``level`` (1: the brain surface) along ``direction``."""
        u = np.asarray(direction, float) / np.linalg.norm(direction)
        norm = np.sum(np.abs(u / self.scale) ** self.shape_power) ** (1 / self.shape_power)
        return np.asarray(BRAIN_CENTRE_MM) + u * level / norm


def _upsampled_noise(shape, rng: np.random.Generator, factor: int, sigma_vox: float) -> np.ndarray:
    """Smooth noise drawn on a grid ``factor`` times coarser and interpolated (cheap on a fine grid)."""
    coarse = _smooth_noise(tuple(max(4, n // factor) for n in shape), rng, sigma_vox)
    return ndimage.zoom(coarse, np.array(shape) / np.array(coarse.shape), order=1)[tuple(slice(0, n) for n in shape)]


def _carve_sulci(tissue, r, rng: np.random.Generator, voxel_mm) -> None:
    """Gyri: CSF clefts 5-10 mm deep along the zero sheets of smooth noise, lined with cortex."""
    coarse_mm = 2.0
    factor = max(1, round(coarse_mm / float(np.min(voxel_mm))))
    sheets = _upsampled_noise(tissue.shape, rng, factor, 3.5 * float(np.min(voxel_mm)) * factor / coarse_mm)
    depth = rng.uniform(0.08, 0.14)
    outer = (r > 0.99 - depth) & (r < 0.99)
    cortex, white = BY_NAME["cortex"].code, BY_NAME["white matter"].code
    tissue[outer & (np.abs(sheets) < 0.25) & (tissue == white)] = cortex  # grey matter lines the sulci
    tissue[outer & (np.abs(sheets) < 0.07) & (tissue == cortex)] = BY_NAME["csf"].code


def _index_box(xyz: np.ndarray, centre, radii) -> tuple[slice, slice, slice]:
    """Index slices of the grid ``xyz`` (world points, affine in the indices) that hold the box around an
    ellipsoid: shapes are evaluated there only."""
    origin = xyz[:, 0, 0, 0].astype(float)
    steps = np.stack([xyz[(slice(None), *np.eye(3, dtype=int)[i])].astype(float) - origin for i in range(3)], axis=1)
    corners = np.array(np.meshgrid(*[(-1, 1)] * 3, indexing="ij")).reshape(3, -1).T * radii + centre
    index = np.linalg.solve(steps, (corners - origin).T)
    low = np.clip(np.floor(index.min(axis=1)).astype(int) - 1, 0, xyz.shape[1:])
    high = np.clip(np.ceil(index.max(axis=1)).astype(int) + 2, 0, xyz.shape[1:])
    return tuple(slice(a, b) for a, b in zip(low, high))


def draw_head(
    xyz: np.ndarray, rng: np.random.Generator, voxel_mm, world=None, world_rng: np.random.Generator | None = None
) -> Head:
    """Tissue codes for world points ``xyz`` (3, X, Y, Z) of a grid with spacing ``voxel_mm``.

    ``world`` (a :class:`World`) picks the head-shape family and gyri, drawn from ``world_rng`` so the
    default world's draws stay as they were.
    """
    shape = xyz.shape[1:]
    radii = np.array(BRAIN_RADII_MM) * rng.uniform(0.9, 1.08) * rng.uniform(0.95, 1.05, 3)
    factors, power = HEAD_SHAPE_FAMILIES[world.head_shape if world is not None else "ellipsoid"]
    radii = radii * np.array(factors)
    coarse = _smooth_noise(tuple(max(4, n // 8) for n in shape), rng, 2.0)

    wobble = ndimage.zoom(coarse, np.array(shape) / np.array(coarse.shape), order=1)[tuple(slice(0, n) for n in shape)]
    r = _ellipsoid(xyz, BRAIN_CENTRE_MM, radii, power) * (1 + 0.03 * wobble)
    angle = np.arctan2(xyz[1], xyz[0])
    elevation = np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1]))
    folds = np.sin(angle * rng.integers(14, 22) + rng.uniform(0, 6)) * np.sin(
        elevation * rng.integers(9, 15) + rng.uniform(0, 6)
    )
    tissue = np.zeros(shape, np.uint8)
    tissue[r < 1.16] = BY_NAME["scalp"].code
    tissue[r < 1.08] = BY_NAME["skull"].code
    tissue[r < 1.02] = BY_NAME["csf"].code
    brain = r < 0.99 - 0.025 * (folds > 0.4)  # sulci reach the surface
    tissue[brain] = BY_NAME["cortex"].code
    tissue[r < 0.90 + 0.035 * folds] = BY_NAME["white matter"].code
    if world is not None and world.gyri:
        _carve_sulci(tissue, r, world_rng, voxel_mm)
    s = radii / np.array(BRAIN_RADII_MM) / np.array(factors)  # structures scale with the brain, not its shape

    def put(name, centre, size, mirror=True):
        for side in (-1, 1) if mirror else (1,):
            c = np.array(centre, float) * s * [side, 1, 1]
            box = _index_box(xyz, c, np.array(size) * s)
            tissue[box][_ellipsoid(xyz[(slice(None), *box)], c, np.array(size) * s) <= 1] = BY_NAME[name].code

    # deep white matter first (periventricular band and capsules), then the nuclei on top of it
    put("deep white matter", (0, 0, 10), (30, 40, 20), mirror=False)
    put("thalamus", (10, -14, 4), (8, 12, 8))
    put("caudate", (13, 12, 12), (4.5, 11, 7))
    put("putamen", (25, 3, 2), (5.5, 14, 9))
    put("globus pallidus", (18.5, 0, 0), (3.5, 8, 5.5))
    put("brainstem", (0, -20, -34), (11, 11, 26), mirror=False)
    put("substantia nigra", (9, -15, -14), (3, 6, 2.5))
    put("red nucleus", (5, -17, -10), (3, 3, 3))
    centre, size = np.array([0, -50, -38]) * s, np.array([48, 26, 20]) * s
    box = _index_box(xyz, centre, size)
    cerebellum = (_ellipsoid(xyz[(slice(None), *box)], centre, size) <= 1) & (tissue[box] != BY_NAME["brainstem"].code)
    tissue[box][cerebellum & (r[box] < 0.99)] = BY_NAME["cerebellum"].code
    ventricle_size = rng.uniform(0.7, 1.5)  # atrophy varies between subjects
    put("ventricle", (8, 2, 12), (4 * ventricle_size, 22, 6 * ventricle_size))
    put("ventricle", (0, -6, 2), (1.5 * ventricle_size, 9, 5), mirror=False)
    chi = np.zeros(len(TISSUES), np.float32)
    for t in TISSUES:
        chi[t.code] = rng.uniform(*t.chi_ppb) if t.chi_ppb[0] != t.chi_ppb[1] else t.chi_ppb[0]
    texture = _smooth_noise(shape, rng, 1.5 / np.asarray(voxel_mm))
    return Head(tissue, chi, radii, texture, power)


def property_map(tissue: np.ndarray, attribute: str) -> np.ndarray:
    """A per-voxel map of a tissue attribute (proton_density, r2star, t2w, location)."""
    table = np.array([getattr(t, attribute) for t in sorted(TISSUES, key=lambda t: t.code)], np.float32)
    return table[tissue]


def brain_mask(tissue: np.ndarray) -> np.ndarray:
    """Brain parenchyma and ventricles (what a brain mask holds)."""
    return tissue >= BY_NAME["cortex"].code
