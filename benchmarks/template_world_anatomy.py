"""Anatomy of the template world (``bench_template_world.py``): the MNI152 2009a template as nilearn ships it,
its deep nuclei, a random warp per subject, and the lesions and veins placed in it."""

import numpy as np
from scipy import ndimage

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


def _cmb_zones(maps, coords) -> dict[str, np.ndarray]:
    """Where microbleeds of each location go: the grey/white junction outside the deep zone and the posterior
    fossa (lobar), the deep nuclei and deep white matter (deep), the pons and cerebellar hemispheres."""
    interior = ndimage.binary_erosion(maps["brain"], iterations=4)
    fossa = _in_box(coords, POSTERIOR_FOSSA)
    deep_nuclei = maps["putamen"] | maps["pallidum"] | maps["caudate"] | maps["thalamus"]
    return {
        "lobar": interior & ~fossa & ~_in_box(coords, DEEP_ZONE) & (maps["gm"] > 0.3) & (maps["wm"] > 0.25),
        "deep": interior & _in_box(coords, DEEP_ZONE) & (deep_nuclei | (maps["wm"] > 0.8)),
        "infratentorial": interior
        & (_in_box(coords, INFRATENTORIAL_ZONES[0]) | _in_box(coords, INFRATENTORIAL_ZONES[1])),
    }


def _keep(state: dict, kind: str, location: str, centre, diameter_mm: float, chi: float, box, values) -> None:
    """Add one lesion's occupancy and susceptibility to ``state`` and record it."""
    _add(state["occ"][kind], box, values)
    state["chi_add"][box] += values * chi
    state["taken"].append(centre)
    record = {"kind": kind, "location": location, "diameter_mm": float(diameter_mm), "chi_ppm": float(chi)}
    state["records"].append({**record, "centre_vox": centre.tolist()})


def _place_cmbs(state: dict, maps, coords, rng, count: int) -> None:
    """Microbleeds: ellipsoids of radius 0.5-2.5 mm (up to 1.3:1), +0.2..2 ppm; the first three lobar, deep and
    infratentorial, the rest 3:2:1."""
    from scipy.spatial.transform import Rotation

    zones = _cmb_zones(maps, coords)
    locations = rng.choice(["lobar", "lobar", "lobar", "deep", "deep", "infratentorial"], count)
    if count >= 3:
        locations[:3] = ["lobar", "deep", "infratentorial"]
    for location in locations:
        centre = _pick(zones[location], rng, state["taken"], 10)
        if centre is None:
            continue
        radius = rng.uniform(0.5, 2.5)
        axes = radius * np.array([1.0, 1.0, rng.uniform(1.0, 1.3)])
        rotation = Rotation.random(random_state=rng).as_matrix()
        box, values = _sphere_occupancy(maps["brain"].shape, centre, axes, rotation)
        _keep(state, "cmb", str(location), centre, 2 * axes.max(), rng.uniform(0.2, 2.0), box, values)


def _place_iron(state: dict, maps, rng, count: int) -> None:
    """Iron deposits: unions of 2-4 spheres 3-8 mm across, +50..150 ppb, inside the putamen or pallidum."""
    shape = maps["brain"].shape
    for _ in range(count):
        nucleus = rng.choice(["putamen", "pallidum"])
        centre = _pick(ndimage.binary_erosion(maps[nucleus], iterations=2), rng, state["taken"], 10)
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
        everywhere = (slice(None),) * 3
        _keep(state, "iron", str(nucleus), centre, size, rng.uniform(0.05, 0.15), everywhere, blob)


def _place_calcifications(state: dict, maps, coords, rng, count: int) -> None:
    """Calcifications (mimics, not labelled): spheres of radius 1-2.5 mm, -0.1..-0.4 ppm, in the pallidum or
    the choroid plexus of the atrium."""
    for _ in range(count):
        site = maps["pallidum"] if rng.random() < 0.5 else _in_box(coords, ((22, 32), (-46, -36), (10, 20)))
        centre = _pick(site & maps["brain"], rng, state["taken"], 10)
        if centre is None:
            continue
        r = rng.uniform(1.0, 2.5)
        box, values = _sphere_occupancy(maps["brain"].shape, centre, [r, r, r], np.eye(3))
        _keep(state, "calcification", "pallidum/choroid plexus", centre, 2 * r, -rng.uniform(0.1, 0.4), box, values)


def place_lesions(maps, coords, affine, rng, n_cmb, n_iron, n_calc):
    """(occupancy per kind, added susceptibility, lesion records, lesion centres) on the 1 mm grid."""
    shape = maps["brain"].shape
    state = {
        "occ": {k: np.zeros(shape, np.float32) for k in ("cmb", "iron", "calcification")},
        "chi_add": np.zeros(shape, np.float32),
        "records": [],
        "taken": [],
    }
    _place_cmbs(state, maps, coords, rng, n_cmb)
    _place_iron(state, maps, rng, n_iron)
    _place_calcifications(state, maps, coords, rng, n_calc)
    for record in state["records"]:
        record["centre_mm"] = (affine[:3, :3] @ record["centre_vox"] + affine[:3, 3]).tolist()
    return state["occ"], state["chi_add"], state["records"], state["taken"]


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
