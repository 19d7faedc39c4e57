"""Detection on an independent world: anatomy from the MNI152 2009 template (nilearn), physics from qsm-forward.

Nothing here comes from the project's phantom: tissue classes and deep grey nuclei come from the grey/white-matter
probability maps of the ICBM 2009a symmetric template that nilearn ships (no download); the field, the GRE signal,
the noise and the k-space cropping (1 mm simulation -> 1 x 1 x 2 mm acquisition) are qsm-forward's (Stewart et al.,
after the QSM reconstruction challenge 2.0 forward model, Marques et al., MRM 2021); the QSM pipeline (Laplacian
unwrapping, V-SHARP, TV-ADMM inversion) is written here and is none of the phantom's. SWI is
``napari_deepmir.swi``. Lesions: microbleeds (lobar, deep, infratentorial), iron deposits in putamen and
pallidum, and as mimics calcifications, medullary and cortical veins. Subjects are cached in ``--cache``.

Benchmark-only packages (not project dependencies): ``pip install nilearn qsm-forward``.

    python benchmarks/bench_template_world.py --cache tw/ [--subjects 4] [--normal 3] [--model default swi-qsm swi]
    python benchmarks/bench_template_world.py --cache tw/ --generate-only
    python benchmarks/bench_template_world.py --cache tw/ --figure docs/images/template-world.png
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import fft, ndimage

FIELD_T, TE_S, TR_S, FLIP_DEG = 3.0, 0.025, 0.035, 15.0
GAMMA_MHZ = 42.58
SIM_VOXEL_MM, SWI_VOXEL_MM, T2_VOXEL_MM = (1.0, 1.0, 1.0), (1.0, 1.0, 2.0), (1.0, 1.0, 4.0)
PEAK_SNR = (40.0, 80.0)
QSM_MASK_EROSION_MM = 2.0

#: Susceptibility (ppm, relative to CSF) drawn per subject from these ranges (docs: domain brief, 3 T).
TISSUE_CHI = {
    "gm": (0.010, 0.020),
    "wm": (-0.035, -0.025),
    "caudate": (0.050, 0.070),
    "putamen": (0.050, 0.090),
    "pallidum": (0.150, 0.190),
    "thalamus": (0.010, 0.070),
    "nigra": (0.130, 0.200),
    "red_nucleus": (0.090, 0.110),
    "dentate": (0.100, 0.160),
    "vein": (0.300, 0.450),
}
#: Typical 3 T relaxation and proton density per tissue: (R2* 1/s, R1 1/s, M0).
TISSUE_RELAXATION = {
    "csf": (4.0, 0.25, 1.0),
    "gm": (17.0, 0.70, 0.82),
    "wm": (21.0, 1.10, 0.70),
    "caudate": (22.0, 0.80, 0.80),
    "putamen": (26.0, 0.85, 0.78),
    "pallidum": (38.0, 1.00, 0.74),
    "thalamus": (22.0, 0.90, 0.76),
    "nigra": (40.0, 1.00, 0.74),
    "red_nucleus": (35.0, 1.00, 0.74),
    "dentate": (35.0, 1.00, 0.74),
}
#: Deep nuclei: MNI-coordinate box (|x|, y, z ranges in mm) and the template's own maps that pick the nucleus
#: inside it (grey-matter probability range, T1 intensity range), checked on axial slices of the template.
NUCLEI = {
    "putamen": {"box": ((17, 31), (-18, 20), (-8, 14)), "gm": (0.40, 1.01), "t1": (0.66, 0.80)},
    "pallidum": {"box": ((11, 23), (-13, 5), (-7, 7)), "gm": (0.10, 0.45), "t1": (0.70, 0.82)},
    "caudate": {"box": ((7, 22), (-8, 26), (-2, 24)), "gm": (0.50, 1.01), "t1": (0.62, 0.80)},
    "thalamus": {"box": ((2, 21), (-34, -4), (-4, 18)), "gm": (0.40, 1.01), "t1": (0.62, 0.80)},
}
#: Small brainstem and cerebellar nuclei as MNI ellipsoids: (centre |x|, y, z; semi-axes), in mm.
ELLIPSOID_NUCLEI = {
    "nigra": ((10.0, -16.0, -10.0), (3.0, 6.0, 3.0)),
    "red_nucleus": ((5.0, -20.0, -8.0), (3.0, 3.5, 3.0)),
    "dentate": ((14.0, -58.0, -33.0), (5.0, 7.0, 4.0)),
}
#: Where lesions of each location are placed (MNI boxes: |x|, y, z, plus the tissue wanted there).
INFRATENTORIAL_ZONES = (((0, 8), (-34, -18), (-40, -18)), ((14, 40), (-80, -50), (-45, -25)))
DEEP_ZONE = ((2, 30), (-30, 22), (-6, 20))
POSTERIOR_FOSSA = ((0, 90), (-120, -32), (-90, -12))
#: Air-like spheres outside the brain (frontal sinus, ear canals): centre (MNI mm), radius mm, chi ppm.
AIR = (((0.0, 66.0, -58.0), 9.0, 9.4), ((62.0, -22.0, -62.0), 7.0, 9.4), ((-62.0, -22.0, -62.0), 7.0, 9.4))
#: qsm-forward's susceptibility -> R2' relaxivity (Hz/ppm, Shin et al. 2021), used for lesions, veins, calcium.
DR_HZ_PER_PPM = 137.0


# --- anatomy -------------------------------------------------------------------------------------------------------


def load_template():
    """(T1, GM, WM, brain mask, affine) of the MNI152 2009a symmetric template, cropped to the brain, 1 mm."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    t1_data = t1.get_fdata(dtype=np.float32)
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(t1_data > 0.05, iterations=1))
    margin = 8
    low = np.argwhere(mask).min(0) - 3
    shape = (np.argwhere(mask).max(0) + 4 - low + 3) // 4 * 4
    box = tuple(slice(a + margin, a + margin + n) for a, n in zip(low, shape))
    affine = t1.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ low
    out = [np.pad(a, margin)[box] for a in (t1_data, gm, wm, mask.astype(np.float32))]
    return (*out, affine)


def _in_box(coords, box) -> np.ndarray:
    (x0, x1), (y0, y1), (z0, z1) = box
    x, y, z = coords
    return (np.abs(x) >= x0) & (np.abs(x) <= x1) & (y >= y0) & (y <= y1) & (z >= z0) & (z <= z1)


def _largest_per_side(mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    keep = np.zeros_like(mask)
    for side in (x < 0, x >= 0):
        ids, n = ndimage.label(mask & side)
        if n:
            keep |= ids == 1 + np.argmax(ndimage.sum_labels(mask, ids, range(1, n + 1)))
    return keep


def nucleus_masks(t1, gm, coords) -> dict[str, np.ndarray]:
    """Deep grey nuclei in template space: MNI box x grey-matter range x T1 ceiling, largest piece per side."""
    masks = {}
    for name, rule in NUCLEI.items():
        inside = _in_box(coords, rule["box"]) & (gm >= rule["gm"][0]) & (gm < rule["gm"][1])
        inside &= (t1 >= rule["t1"][0]) & (t1 < rule["t1"][1])
        masks[name] = _largest_per_side(ndimage.binary_opening(inside, iterations=2 - (name == "pallidum")), coords[0])
    masks["putamen"] &= ~masks["pallidum"]
    for name, (centre, axes) in ELLIPSOID_NUCLEI.items():
        cx, cy, cz = centre
        r = ((np.abs(coords[0]) - cx) / axes[0]) ** 2 + ((coords[1] - cy) / axes[1]) ** 2
        masks[name] = r + ((coords[2] - cz) / axes[2]) ** 2 <= 1
    return masks


def random_warp(shape, affine, rng) -> np.ndarray:
    """Template MNI coordinates (3, *shape) of each subject voxel: a flip, a rotation of up to 4 degrees, a scale of
    0.95-1.05 and a smooth random displacement of ~2 mm."""
    from scipy.spatial.transform import Rotation

    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    centre = np.array([0.0, -18.0, 10.0])[:, None]
    matrix = Rotation.from_rotvec(rng.normal(0, 1, 3) * np.deg2rad(4) / np.sqrt(3)).as_matrix()
    matrix = matrix * rng.uniform(0.95, 1.05, 3)[None, :]
    if rng.random() < 0.5:
        matrix[:, 0] *= -1
    coords = (matrix @ (world - centre) + centre).reshape(3, *shape)
    coarse = rng.normal(0, 2.0, (3, *[max(2, n // 16) for n in shape])).astype(np.float32)
    for axis in range(3):
        zoom = [n / c for n, c in zip(shape, coarse.shape[1:])]
        coords[axis] += ndimage.zoom(ndimage.gaussian_filter(coarse[axis], 0.7), zoom, order=3)[
            tuple(map(slice, shape))
        ]
    return coords.astype(np.float32)


def warp(volume, coords, affine, order=1) -> np.ndarray:
    """``volume`` (template grid ``affine``) sampled at template MNI ``coords``."""
    inverse = np.linalg.inv(affine)
    index = np.tensordot(inverse[:3, :3], coords, 1) + inverse[:3, 3][:, None, None, None]
    return ndimage.map_coordinates(volume.astype(np.float32), index, order=order, mode="constant").astype(np.float32)


# --- lesions and veins ---------------------------------------------------------------------------------------------


def _sphere_occupancy(shape, centre_vox, axes_mm, rotation, supersample=4):
    """Partial-volume occupancy (box slices, values) of an ellipsoid on the 1 mm grid, supersampled."""
    reach = int(np.ceil(max(axes_mm))) + 1
    low = np.maximum(np.floor(centre_vox).astype(int) - reach, 0)
    high = np.minimum(np.floor(centre_vox).astype(int) + reach + 2, shape)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    axes = [np.add.outer(np.arange(a, b), offsets).ravel() for a, b in zip(low, high)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1) - centre_vox
    local = points @ rotation
    inside = (((local / np.asarray(axes_mm)) ** 2).sum(-1) <= 1).astype(np.float32)
    n = [b - a for a, b in zip(low, high)]
    occupancy = inside.reshape(n[0], supersample, n[1], supersample, n[2], supersample).mean((1, 3, 5))
    return tuple(slice(a, b) for a, b in zip(low, high)), occupancy


def _add(volume, box, values):
    volume[box] = np.maximum(volume[box], values)


def _pick(candidates: np.ndarray, rng, taken, min_gap):
    """A random voxel of ``candidates`` at least ``min_gap`` voxels from every point in ``taken``."""
    points = np.argwhere(candidates)
    for index in rng.permutation(len(points))[:200]:
        p = points[index]
        if all(np.linalg.norm(p - q) >= min_gap for q in taken):
            return p.astype(float) + rng.uniform(-0.5, 0.5, 3)
    return None


def place_lesions(maps, coords, affine, rng, n_cmb, n_iron, n_calc):
    """Occupancy volumes (cmb, iron, calcification) and the lesion records (MNI-free subject-space centres)."""
    shape = maps["brain"].shape
    occ = {k: np.zeros(shape, np.float32) for k in ("cmb", "iron", "calcification")}
    chi_add = np.zeros(shape, np.float32)
    records, taken = [], []
    interior = ndimage.binary_erosion(maps["brain"], iterations=4)
    fossa = _in_box(coords, POSTERIOR_FOSSA)
    deep_nuclei = maps["putamen"] | maps["pallidum"] | maps["caudate"] | maps["thalamus"]
    zones = {
        "lobar": interior & ~fossa & ~_in_box(coords, DEEP_ZONE) & (maps["gm"] > 0.3) & (maps["wm"] > 0.25),
        "deep": interior & _in_box(coords, DEEP_ZONE) & (deep_nuclei | (maps["wm"] > 0.8)),
        "infratentorial": interior
        & (_in_box(coords, INFRATENTORIAL_ZONES[0]) | _in_box(coords, INFRATENTORIAL_ZONES[1])),
    }
    locations = rng.choice(["lobar", "lobar", "lobar", "deep", "deep", "infratentorial"], n_cmb)
    if n_cmb >= 3:
        locations[:3] = ["lobar", "deep", "infratentorial"]
    for location in locations:
        centre = _pick(zones[location], rng, taken, 10)
        if centre is None:
            continue
        radius = rng.uniform(0.5, 2.5)
        axes = radius * np.array([1.0, 1.0, rng.uniform(1.0, 1.3)])
        from scipy.spatial.transform import Rotation

        box, values = _sphere_occupancy(shape, centre, axes, Rotation.random(random_state=rng).as_matrix())
        chi = rng.uniform(0.2, 2.0)
        _add(occ["cmb"], box, values)
        chi_add[box] += values * chi
        taken.append(centre)
        records.append(
            {
                "kind": "cmb",
                "location": str(location),
                "diameter_mm": float(2 * axes.max()),
                "chi_ppm": float(chi),
                "centre_vox": centre.tolist(),
            }
        )
    for _ in range(n_iron):
        nucleus = rng.choice(["putamen", "pallidum"])
        centre = _pick(ndimage.binary_erosion(maps[nucleus], iterations=2), rng, taken, 10)
        if centre is None:
            continue
        size = rng.uniform(3.0, 8.0)
        blob = np.zeros(shape, np.float32)
        for _ in range(rng.integers(2, 5)):
            offset = rng.normal(0, size / 5, 3)
            r = rng.uniform(0.8, size / 3)
            box, values = _sphere_occupancy(shape, centre + offset, [r, r, r * rng.uniform(0.7, 1.3)], np.eye(3), 2)
            _add(blob, box, values)
        blob *= ndimage.binary_dilation(maps[nucleus], iterations=1)
        chi = rng.uniform(0.05, 0.15)
        occ["iron"] = np.maximum(occ["iron"], blob)
        chi_add += blob * chi
        taken.append(centre)
        records.append(
            {
                "kind": "iron",
                "location": str(nucleus),
                "diameter_mm": float(size),
                "chi_ppm": float(chi),
                "centre_vox": centre.tolist(),
            }
        )
    for _ in range(n_calc):
        site = maps["pallidum"] if rng.random() < 0.5 else _in_box(coords, ((22, 32), (-46, -36), (10, 20)))
        centre = _pick(site & maps["brain"], rng, taken, 10)
        if centre is None:
            continue
        r = rng.uniform(1.0, 2.5)
        box, values = _sphere_occupancy(shape, centre, [r, r, r], np.eye(3))
        chi = -rng.uniform(0.1, 0.4)
        _add(occ["calcification"], box, values)
        chi_add[box] += values * chi
        taken.append(centre)
        records.append(
            {
                "kind": "calcification",
                "location": "pallidum/choroid plexus",
                "diameter_mm": float(2 * r),
                "chi_ppm": float(chi),
                "centre_vox": centre.tolist(),
            }
        )
    for record in records:
        record["centre_mm"] = (affine[:3, :3] @ record["centre_vox"] + affine[:3, 3]).tolist()
    return occ, chi_add, records, taken


def _trace(start, direction, length, rng, surface=None):
    """Points (every 0.5 mm) of a curved tube axis; ``surface`` (depth map, its gradient, depth) keeps it there."""
    points, d = [np.asarray(start, float)], np.asarray(direction, float) / np.linalg.norm(direction)
    for _ in range(int(length / 0.5)):
        d = d + rng.normal(0, 0.06, 3)
        if surface is not None:
            depth, gradient, wanted = surface
            i = tuple(np.clip(np.round(points[-1]).astype(int), 0, np.array(depth.shape) - 1))
            normal = gradient[(slice(None), *i)]
            n = normal / (np.linalg.norm(normal) + 1e-6)
            d = d - (d @ n) * n + 0.3 * (depth[i] - wanted) * n * -1
        d /= np.linalg.norm(d)
        points.append(points[-1] + 0.5 * d)
    return np.array(points)


def add_veins(maps, coords, rng, taken, n_medullary=10, n_cortical=10):
    """Vein occupancy: medullary veins running from below the cortex toward the ventricles and pial veins along the
    brain surface, diameters 1-3 mm, partial volume as a one-voxel ramp; none within 6 mm of a lesion."""
    from scipy.spatial import cKDTree

    shape = maps["brain"].shape
    occ = np.zeros(shape, np.float32)
    depth = ndimage.distance_transform_edt(maps["brain"]).astype(np.float32)
    gradient = np.stack(np.gradient(depth))
    supratentorial = ~_in_box(coords, POSTERIOR_FOSSA) & (coords[2] > 0)
    starts = {
        "medullary": supratentorial & (maps["wm"] > 0.5) & (depth > 6) & (depth < 12),
        "cortical": supratentorial & (depth > 1) & (depth < 2.5),
    }
    ventricle = np.array([15.0, -10.0, 18.0])
    lesions = cKDTree(np.array(taken)) if taken else None
    for kind, count in (("medullary", n_medullary), ("cortical", n_cortical)):
        for _ in range(count):
            start = _pick(starts[kind], rng, [], 0)
            i = tuple(np.round(start).astype(int))
            if kind == "medullary":
                target = ventricle * [np.sign(coords[0][i]) or 1, 1, 1]
                direction = target - coords[:, i[0], i[1], i[2]]
                points = _trace(start, direction, rng.uniform(15, 35), rng)
                radius = rng.uniform(0.5, 1.0)
            else:
                normal = gradient[(slice(None), *i)]
                direction = np.cross(normal, rng.normal(size=3))
                points = _trace(start, direction, rng.uniform(25, 60), rng, (depth, gradient, 1.5))
                radius = rng.uniform(0.75, 1.5)
            if lesions is not None and np.min(lesions.query(points)[0]) < radius + 6:
                continue
            low = np.maximum(np.floor(points.min(0) - radius - 2).astype(int), 0)
            high = np.minimum(np.ceil(points.max(0) + radius + 3).astype(int), shape)
            box = tuple(slice(a, b) for a, b in zip(low, high))
            grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij"), -1)
            distance = cKDTree(points).query(grid.reshape(-1, 3))[0].reshape(grid.shape[:3])
            _add(occ, box, np.clip(radius - distance + 0.5, 0, 1) * maps["brain"][box])
    return occ


# --- physics -------------------------------------------------------------------------------------------------------


def air_field(shape, affine) -> np.ndarray:
    """Field (ppm) inside the box of the air-like spheres of :data:`AIR` outside it (a uniformly magnetised sphere:
    chi R^3 / 3 (3 cos^2 - 1) / r^3, B0 along z)."""
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = (affine[:3, :3] @ grid + affine[:3, 3:4]).astype(np.float32)
    field = np.zeros(world.shape[1], np.float32)
    for centre, radius, chi in AIR:
        r = world - np.asarray(centre, np.float32)[:, None]
        distance = np.maximum(np.linalg.norm(r, axis=0), radius)
        cos2 = (r[2] / distance) ** 2
        field += chi * radius**3 / 3 * (3 * cos2 - 1) / distance**3
    return field.reshape(shape)


def relaxation_maps(maps, occ_lesions, chi_add, vein_occ):
    """(R2*, R1, M0) on the 1 mm grid: tissue values blended by the template's probabilities, nuclei on top, then
    R2' = 137 Hz/ppm x |chi| (qsm-forward's relaxivity) for lesions and veins."""
    csf = np.clip(maps["brain"] - maps["gm"] - maps["wm"], 0, 1)
    out = []
    for column in range(3):
        value = (
            sum(maps[t] * TISSUE_RELAXATION[t][column] for t in ("gm", "wm")) + csf * TISSUE_RELAXATION["csf"][column]
        )
        for nucleus in ("caudate", "putamen", "pallidum", "thalamus", "nigra", "red_nucleus", "dentate"):
            value = np.where(maps[nucleus], TISSUE_RELAXATION[nucleus][column], value)
        out.append(value.astype(np.float32) * maps["brain"])
    r2s, r1, m0 = out
    r2s = r2s + DR_HZ_PER_PPM * (np.abs(chi_add) + vein_occ * 0.35)
    return r2s, np.maximum(r1, 0.2), m0


def susceptibility(maps, rng, chi_add, vein_occ) -> tuple[np.ndarray, dict]:
    """Chi (ppm) on the 1 mm grid: per-tissue values drawn from :data:`TISSUE_CHI`, blended by GM/WM probability
    (CSF 0), nuclei replacing them, a little smooth texture, then veins and lesions."""
    drawn = {name: float(rng.uniform(*span)) for name, span in TISSUE_CHI.items()}
    chi = maps["gm"] * drawn["gm"] + maps["wm"] * drawn["wm"]
    for nucleus in ("caudate", "putamen", "pallidum", "thalamus", "nigra", "red_nucleus", "dentate"):
        chi = np.where(maps[nucleus], drawn[nucleus], chi)
    chi = ndimage.gaussian_filter(chi, 0.6) + ndimage.gaussian_filter(rng.normal(0, 0.02, chi.shape), 2.0)
    chi = chi * maps["brain"]
    chi = chi * (1 - vein_occ) + vein_occ * drawn["vein"] + chi_add
    return chi.astype(np.float32), drawn


def acquire(chi, r2s, r1, m0, brain, affine, rng):
    """qsm-forward: field (its dipole convolution) + the air spheres' field, GRE signal at 3 T / TE 25 ms, k-space crop
    to 1 x 1 x 2 mm, complex noise. Returns the complex signal on the 1 x 1 x 2 mm grid."""
    import qsm_forward

    field = qsm_forward.generate_field(chi, mask=brain, voxel_size=list(SIM_VOXEL_MM), B0_dir=[0, 0, 1])
    field = field.astype(np.float32) + air_field(chi.shape, affine)
    signal = qsm_forward.generate_signal(
        field, B0=FIELD_T, TR=TR_S, TE=TE_S, flip_angle=FLIP_DEG, R1=r1, R2star=r2s, M0=m0
    )
    del field
    coarse = (chi.shape[0], chi.shape[1], chi.shape[2] // 2)
    signal = qsm_forward.crop_kspace(signal, coarse)
    return qsm_forward.add_noise(signal, peak_snr=rng.uniform(*PEAK_SNR), rng=rng).astype(np.complex64)


def _kspace(shape, voxel_mm):
    return np.meshgrid(*[fft.fftfreq(n, d) for n, d in zip(shape, voxel_mm)], indexing="ij", sparse=True)


def laplacian_unwrap(phase, voxel_mm) -> np.ndarray:
    """Laplacian phase unwrapping (Schofield & Zhu 2003): del^-2 [cos del^2 sin - sin del^2 cos]."""
    k = _kspace(phase.shape, voxel_mm)
    k2 = -4 * np.pi**2 * sum(ki**2 for ki in k)
    inverse = np.where(k2 == 0, 0, 1 / np.where(k2 == 0, 1, k2))

    def lap(x):
        return fft.ifftn(fft.fftn(x, workers=-1) * k2, workers=-1).real

    s, c = np.sin(phase), np.cos(phase)
    return fft.ifftn(fft.fftn(c * lap(s) - s * lap(c), workers=-1) * inverse, workers=-1).real.astype(np.float32)


def vsharp(field, mask, voxel_mm, radii_mm=(10, 8, 6, 4, 2), threshold=0.05):
    """V-SHARP (Wu et al., MRM 2012): spherical-mean high-pass with the largest sphere that fits at each voxel,
    deconvolved with the largest kernel; returns (local field, mask eroded by the smallest radius)."""
    k_shape = field.shape
    grid = np.meshgrid(*[fft.fftfreq(n, 1 / n) * d for n, d in zip(k_shape, voxel_mm)], indexing="ij", sparse=True)
    distance = ndimage.distance_transform_edt(mask, sampling=voxel_mm)
    spectrum = fft.fftn(field * mask, workers=-1)
    high_pass, done = np.zeros(k_shape, np.float32), np.zeros(k_shape, bool)
    first = None
    for radius in radii_mm:
        sphere = (sum(g**2 for g in grid) <= radius**2).astype(np.float32)
        kernel = 1 - fft.fftn(sphere / sphere.sum(), workers=-1).real
        first = kernel if first is None else first
        valid = (distance > radius) & ~done
        high_pass[valid] = fft.ifftn(spectrum * kernel, workers=-1).real[valid]
        done |= valid
    inverse = np.where(np.abs(first) > threshold, 1 / np.where(first == 0, 1, first), 0)
    local = fft.ifftn(fft.fftn(high_pass, workers=-1) * inverse, workers=-1).real
    return (local * done).astype(np.float32), done


def tv_admm(local_field, mask, voxel_mm, alpha=4e-4, rho=None, iterations=30):
    """Total-variation dipole inversion by ADMM with closed-form k-space updates (Bilgic et al., MRM 2014)."""
    k = _kspace(local_field.shape, voxel_mm)
    k2 = sum(ki**2 for ki in k)
    dipole = 1 / 3 - np.where(k2 == 0, 0, k[2] ** 2 / np.where(k2 == 0, 1, k2))
    grads = [np.exp(2j * np.pi * ki * d) - 1 for ki, d in zip(k, voxel_mm)]  # forward differences
    rho = 10 * alpha if rho is None else rho
    denominator = dipole**2 + rho * sum(np.abs(g) ** 2 for g in grads)
    data = dipole * fft.fftn(local_field * mask, workers=-1)
    z = [np.zeros(local_field.shape, np.float32) for _ in grads]
    u = [np.zeros(local_field.shape, np.float32) for _ in grads]
    for _ in range(iterations):
        rhs = data + rho * sum(np.conj(g) * fft.fftn(zi - ui, workers=-1) for g, zi, ui in zip(grads, z, u))
        chi_k = rhs / denominator
        for i, g in enumerate(grads):
            gx = fft.ifftn(g * chi_k, workers=-1).real
            v = gx + u[i]
            z[i] = np.sign(v) * np.maximum(np.abs(v) - alpha / rho, 0)
            u[i] = v - z[i]
    return fft.ifftn(chi_k, workers=-1).real.astype(np.float32)


def reconstruct(signal, brain_coarse):
    """(SWI, QSM ppm, QSM mask) from the complex signal on the 1 x 1 x 2 mm grid."""
    from napari_deepmir.swi import swi_from_signal

    swi = swi_from_signal(signal, phase_sign=-1)  # qsm-forward: positive field -> positive phase (left-handed)
    phase = np.angle(signal) * brain_coarse
    field_ppm = laplacian_unwrap(phase, SWI_VOXEL_MM) / (2 * np.pi * GAMMA_MHZ * FIELD_T * TE_S)
    local, mask = vsharp(field_ppm, brain_coarse, SWI_VOXEL_MM, radii_mm=(10, 8, 6, 4, QSM_MASK_EROSION_MM))
    qsm = tv_admm(local, mask, SWI_VOXEL_MM) * mask
    qsm = (qsm - qsm[mask].mean()) * mask
    return swi, qsm.astype(np.float32), mask


def _z_triangle(volume):
    """1 mm -> 2 mm slices by the weights of the k-space crop's sampling (0.25, 0.5, 0.25 around even slices)."""
    padded = np.pad(volume, ((0, 0), (0, 0), (1, 1)))
    return 0.25 * padded[:, :, 0:-2:2] + 0.5 * padded[:, :, 1:-1:2] + 0.25 * padded[:, :, 2::2]


def t2_image(t1, maps, occ, vein_occ, affine, rng):
    """A T2-like contrast (the template T1 inverted: CSF bright, WM dark), lesions and veins slightly dark, averaged
    to 1 x 1 x 4 mm slices on its own grid; returns (image, affine)."""
    t2 = np.clip(1.15 - t1, 0, None) * maps["brain"]
    t2 = t2 * (1 - 0.3 * occ["cmb"] - 0.2 * occ["iron"] - 0.3 * occ["calcification"] - 0.3 * vein_occ)
    nz = t2.shape[2] // 4 * 4
    blocks = t2[:, :, :nz].reshape(t2.shape[0], t2.shape[1], nz // 4, 4).mean(-1)
    blocks = np.abs(blocks + rng.normal(0, 0.015, blocks.shape) + 1j * rng.normal(0, 0.015, blocks.shape))
    t2_affine = affine @ np.diag([1.0, 1.0, 4.0, 1.0])
    t2_affine[:3, 3] = affine[:3, :3] @ [0.0, 0.0, 1.5] + affine[:3, 3]
    return (blocks * 1000).astype(np.float32), t2_affine


# --- subjects ------------------------------------------------------------------------------------------------------


def prepare_template() -> dict:
    """The cropped template and its nuclei (template space), computed once per run."""
    t1, gm, wm, brain, affine = load_template()
    grid = np.indices(t1.shape, dtype=np.float32).reshape(3, -1)
    coords = (affine[:3, :3] @ grid + affine[:3, 3:4]).reshape(3, *t1.shape)
    volumes = {"t1": t1, "gm": gm, "wm": wm, "brain": brain}
    volumes.update({k: v.astype(np.float32) for k, v in nucleus_masks(t1, gm, coords).items()})
    return {"volumes": volumes, "affine": affine}


def subject_maps(template: dict, rng) -> tuple[dict, np.ndarray]:
    """The template warped into one subject: probability maps, binary brain and nuclei, and the MNI coordinates."""
    volumes, affine = template["volumes"], template["affine"]
    coords = random_warp(volumes["t1"].shape, affine, rng)
    maps = {}
    for name, volume in volumes.items():
        binary = name not in ("t1", "gm", "wm")
        warped = warp(volume, coords, affine, order=1)
        maps[name] = warped > 0.5 if binary else warped
    for name in ("gm", "wm", "t1"):
        maps[name] = maps[name] * maps["brain"]
    return maps, coords


def _coarse_index(centre_vox) -> tuple[int, int, int]:
    x, y, z = np.round(np.asarray(centre_vox) / SWI_VOXEL_MM).astype(int)
    return int(x), int(y), int(z)


def truth_labels(occ, records, shape) -> np.ndarray:
    """Labels on the 1 x 1 x 2 mm grid: where a lesion fills >= 30 % of a voxel (CMB over iron), and each
    lesion's centre voxel at least, so the smallest microbleeds stay in the truth."""
    cmb, iron = _z_triangle(occ["cmb"]), _z_triangle(occ["iron"])
    labels = np.zeros(cmb.shape, np.uint8)
    labels[iron >= 0.3] = 2
    labels[cmb >= 0.3] = 1
    for record in records:
        value = {"cmb": 1, "iron": 2}.get(record["kind"])
        index = _coarse_index(record["centre_vox"])
        if value == 1:
            labels[index] = 1
        elif value == 2 and not (labels[tuple(slice(max(i - 2, 0), i + 3) for i in index)] == 2).any():
            labels[index] = 2
    return labels


def make_subject(template: dict, seed: int, with_lesions: bool) -> dict:
    """Every image of one subject (arrays and affines) and its lesion records."""
    rng = np.random.default_rng(seed)
    affine = template["affine"]
    maps, coords = subject_maps(template, rng)
    counts = (rng.integers(5, 9), rng.integers(2, 5), rng.integers(1, 3)) if with_lesions else (0, 0, 0)
    occ, chi_add, records, taken = place_lesions(maps, coords, affine, rng, *counts)
    vein_occ = add_veins(maps, coords, rng, taken)
    chi, drawn = susceptibility(maps, rng, chi_add, vein_occ)
    r2s, r1, m0 = relaxation_maps(maps, occ, chi_add, vein_occ)
    signal = acquire(chi, r2s, r1, m0, maps["brain"], affine, rng)
    del chi, r2s, r1, m0
    brain_coarse = _z_triangle(maps["brain"].astype(np.float32)) > 0.5
    swi, qsm, _ = reconstruct(signal, brain_coarse)
    swi *= brain_coarse
    t2, t2_affine = t2_image(maps["t1"], maps, occ, vein_occ, affine, rng)
    swi_affine = affine @ np.diag([*SWI_VOXEL_MM, 1.0])
    return {
        "swi": (swi / max(float(np.percentile(swi[brain_coarse], 99)), 1e-6) * 1000).astype(np.float32),
        "qsm": qsm,
        "t2": t2,
        "labels": truth_labels(occ, records, swi.shape),
        "affine": swi_affine,
        "t2_affine": t2_affine,
        "record": {"seed": seed, "susceptibility_ppm": drawn, "lesions": records},
    }


def write_subject(subject: dict, folder: Path) -> None:
    """``folder/sub-X_{swi,Chimap,T2w,dseg}.nii.gz`` and ``sub-X_lesions.json``, written whole or not at all."""
    import shutil

    import nibabel as nib

    name = folder.name
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for key, suffix in (("swi", "swi"), ("qsm", "Chimap"), ("t2", "T2w"), ("labels", "dseg")):
        grid = subject["t2_affine"] if key == "t2" else subject["affine"]
        nib.save(nib.Nifti1Image(subject[key], grid), partial / f"{name}_{suffix}.nii.gz")
    (partial / f"{name}_lesions.json").write_text(json.dumps(subject["record"], indent=1))
    partial.rename(folder)


def generate_set(cache: Path, template_cache: dict, name: str, count: int, seed: int, with_lesions: bool) -> Path:
    """``cache/name/sub-twNNN`` subjects, generated when missing."""
    folder = cache / name
    for index in range(count):
        subject_folder = folder / f"sub-tw{seed + index:04d}"
        if subject_folder.exists():
            continue
        if "template" not in template_cache:
            template_cache["template"] = prepare_template()
        start = time.perf_counter()
        write_subject(make_subject(template_cache["template"], seed + index, with_lesions), subject_folder)
        print(f"generated {subject_folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return folder


# --- scoring -------------------------------------------------------------------------------------------------------


def predict_options(no_rules: bool) -> dict:
    """``rules=False`` for ``predict_subject`` when asked and when this version has the keyword, else nothing."""
    import inspect

    from napari_deepmir.inference import predict_subject

    if not no_rules:
        return {}
    if "rules" not in inspect.signature(predict_subject).parameters:
        print("predict_subject has no 'rules' keyword here: --no-rules ignored", file=sys.stderr)
        return {}
    return {"rules": False}


def evaluate_set(model, folder: Path, options: dict) -> dict:
    """Pooled lesion-wise metrics over the subjects of ``folder``, CMB sensitivity by size and location,
    calcifications predicted as lesions and the mean predict time."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_detection import calcifications_predicted

    from napari_deepmir.conventions import CLASS_NAMES
    from napari_deepmir.inference import predict_subject
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.io.bids import find_subject_files, find_subject_folders
    from napari_deepmir.lesions.components import load_label_map
    from napari_deepmir.lesions.evaluate import compare_maps, lesion_metrics
    from napari_deepmir.training.trainer import pooled_metrics

    scores, seconds, calcified, groups = [], [], np.zeros(2, int), {}
    for subject_dir in find_subject_folders(folder):
        subject = load_subject_dir(subject_dir, only=tuple(model.card.modalities))
        truth = load_label_map(find_subject_files(subject_dir)["labels"]).data
        start = time.perf_counter()
        labels = predict_subject(subject, model, device="cpu", **options).labels
        seconds.append(time.perf_counter() - start)
        comparisons = compare_maps(truth, labels)
        scores.append({CLASS_NAMES[v]: lesion_metrics(**c.counts()) for v, c in comparisons.items()})
        calcified += calcifications_predicted(subject_dir, subject.affine, labels, truth)
        record = json.loads(next(subject_dir.glob("*_lesions.json")).read_text())
        for lesion in (m for m in record["lesions"] if m["kind"] == "cmb"):
            number = comparisons[1].truth.ids[_coarse_index(lesion["centre_vox"])]
            found = bool(number and comparisons[1].found[number - 1])
            size = "CMB < 3 mm" if lesion["diameter_mm"] < 3 else "CMB >= 3 mm"
            for group in (size, lesion["location"]):
                groups.setdefault(group, [0, 0])[0] += found
                groups[group][1] += 1
    return {
        "metrics": pooled_metrics(scores),
        "groups": groups,
        "calcified": tuple(int(n) for n in calcified),
        "seconds": float(np.mean(seconds)) if seconds else math.nan,
        "subjects": len(scores),
    }


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _group(groups: dict, name: str) -> str:
    found, count = groups.get(name, (0, 0))
    return f"{found}/{count}" if count else "n/a"


def table_row(model_name: str, set_name: str, result: dict) -> str:
    c, i = result["metrics"]["cmb"], result["metrics"]["iron"]
    groups = result["groups"]
    cells = [
        model_name,
        set_name,
        str(result["subjects"]),
        _cell(c["sensitivity"]),
        _cell(c["precision"]),
        f"{c['fp_per_subject']:.2f}",
        _cell(i["sensitivity"]),
        _cell(i["precision"]),
        f"{i['fp_per_subject']:.2f}",
        "{}/{}".format(*result["calcified"]),
        *(_group(groups, g) for g in ("CMB < 3 mm", "CMB >= 3 mm", "lobar", "deep", "infratentorial")),
        f"{result['seconds']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| model | set | subjects | CMB sens | CMB prec | CMB FP/subj | iron sens | iron prec | iron FP/subj "
    "| calcifications predicted | CMB < 3 mm | CMB >= 3 mm | lobar | deep | infratentorial | s/subject |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


# --- figure --------------------------------------------------------------------------------------------------------


def save_figure(subject_dir: Path, out: Path) -> None:
    """Axial SWI, QSM and T2 through the basal ganglia of one subject, truth outlined (red CMB, blue iron)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib

    name = subject_dir.name
    images = {k: nib.load(subject_dir / f"{name}_{k}.nii.gz") for k in ("swi", "Chimap", "T2w", "dseg")}
    labels = np.asarray(images["dseg"].dataobj)
    affine = images["swi"].affine
    z_of = [(affine @ [0, 0, k, 1])[2] for k in range(labels.shape[2])]
    candidates = [k for k, z in enumerate(z_of) if -4 <= z <= 12]
    k = max(
        candidates, key=lambda k: ((labels[:, :, k] == 2).sum() * 10 + (labels[:, :, k] == 1).sum(), -abs(z_of[k] - 4))
    )
    t2_img = images["T2w"]
    t2_k = int(np.clip(round(np.linalg.solve(t2_img.affine, [0, 0, z_of[k], 1])[2]), 0, t2_img.shape[2] - 1))
    panels = [
        ("SWI", np.asarray(images["swi"].dataobj)[:, :, k], "gray", None),
        ("QSM (ppm)", np.asarray(images["Chimap"].dataobj)[:, :, k], "gray", (-0.15, 0.25)),
        ("T2 (1 x 1 x 4 mm)", np.asarray(t2_img.dataobj)[:, :, t2_k], "gray", None),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(13, 5.2))
    for axis, (title, image, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits or np.percentile(image[image > 0], [1, 99.5])
        axis.imshow(image.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        if title != panels[2][0]:
            for value, colour in ((1, "red"), (2, "deepskyblue")):
                if (labels[:, :, k] == value).any():
                    axis.contour((labels[:, :, k] == value).T, levels=[0.5], colors=colour, linewidths=1.0)
        axis.set_title(title)
        axis.axis("off")
    figure.suptitle(f"{name}: MNI152 2009 anatomy, qsm-forward physics, slice z = {z_of[k]:.0f} mm (MNI)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)


# --- main ----------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="generated subjects are kept here and reused")
    parser.add_argument("--subjects", type=int, default=4, help="subjects with lesions")
    parser.add_argument("--normal", type=int, default=3, help="lesion-free subjects")
    parser.add_argument("--seed", type=int, default=7100)
    parser.add_argument("--model", nargs="+", default=["default"], help="shipped names or model folders")
    parser.add_argument("--no-rules", action="store_true", help="predict with rules=False (when the code has it)")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--figure", type=Path, default=None, help="save a PNG of the first subject with lesions")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    template_cache: dict = {}
    start = time.perf_counter()
    sets = {
        "with lesions": generate_set(args.cache, template_cache, "lesions", args.subjects, args.seed, True),
        "lesion-free": generate_set(args.cache, template_cache, "normal", args.normal, args.seed + 500, False),
    }
    print(f"subjects ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.figure:
        save_figure(min(sets["with lesions"].glob("sub-*")), args.figure)
    if args.generate_only:
        return 0

    from napari_deepmir.model.files import load_model
    from napari_deepmir.model.registry import resolve_model

    options = predict_options(args.no_rules)
    print(TABLE_HEADER)
    for choice in args.model:
        model = load_model(resolve_model(choice), "cpu")
        label = f"{model.card.name}{' (rules off)' if options else ''}"
        for set_name, folder in sets.items():
            print(table_row(label, set_name, evaluate_set(model, folder, options)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
