"""Anatomical vasculature and other tubes of the wide world: pial, medullary and deep veins, dural sinuses,
arterial flow voids and cortical superficial siderosis.

Tubes are painted on the fine grid with partial volume: a voxel takes the fraction of it the tube fills
(a soft edge of one voxel); a tube thinner than a voxel keeps its susceptibility per unit length
(chi x cross-section), so sub-voxel veins still shift the field and bloom.
"""

import numpy as np

from ..conventions import LOCATION_NAMES
from .anatomy import Head

#: Venous blood (ppb, relative to CSF): domain brief.
VENOUS_CHI_PPB = (300.0, 450.0)


def _resample(points: np.ndarray, step_mm: float) -> np.ndarray:
    """The polyline ``points`` (N, 3) resampled at ``step_mm``."""
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    samples = np.linspace(0.0, lengths[-1], max(2, int(np.ceil(lengths[-1] / step_mm)) + 1))
    return np.stack([np.interp(samples, lengths, points[:, i]) for i in range(3)], axis=1)


def tube_fraction(maps, points: np.ndarray, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(flat fine-grid indices, volume fraction in (0, 1]) of a tube of ``radius_mm`` around the polyline."""
    half_voxel = 0.5 * float(np.prod(maps.voxel_mm)) ** (1 / 3)
    points = _resample(points, max(half_voxel, radius_mm / 2))
    to_index = np.linalg.inv(maps.affine)
    continuous = points @ to_index[:3, :3].T + to_index[:3, 3]
    reach = max(radius_mm, half_voxel) + half_voxel
    span = np.ceil(reach / np.asarray(maps.voxel_mm)).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-s, s + 1) for s in span], indexing="ij")).reshape(3, -1).T
    nearest = np.round(continuous).astype(int)
    candidates = (nearest[:, None, :] + offsets[None]).reshape(-1, 3)
    delta = candidates - np.repeat(continuous, len(offsets), axis=0)
    distance = np.linalg.norm(delta @ maps.affine[:3, :3].T, axis=1)
    shape = np.array(maps.tissue.shape)
    keep = (distance < reach) & np.all(candidates >= 0, axis=1) & np.all(candidates < shape, axis=1)
    flat = np.ravel_multi_index(candidates[keep].T, shape)
    distance = distance[keep]
    order = np.argsort(distance, kind="stable")
    flat, first = np.unique(flat[order], return_index=True)  # each voxel's nearest sample
    distance = distance[order][first]
    if radius_mm >= half_voxel:
        fraction = np.clip((radius_mm - distance) / (2 * half_voxel) + 0.5, 0, 1)
    else:  # sub-voxel: a one-voxel triangle profile carrying pi r^2 per unit length
        fraction = np.clip(1 - distance / (2 * half_voxel), 0, 1) * 3 * radius_mm**2 / (4 * half_voxel**2)
    inside = (fraction > 0) & (maps.tissue.ravel()[flat] > 0)  # not in the air around the head
    return flat[inside], np.minimum(fraction[inside], 1.0).astype(np.float32)


def paint_tube(maps, points, radius_mm, *, chi=None, chi_add=0.0, pd_scale=1.0, r2_add=0.0, t2_scale=1.0) -> bool:
    """Blend a tube's properties into the fine maps by its volume fraction; False if it missed the head."""
    flat, fraction = tube_fraction(maps, np.asarray(points, float), radius_mm)
    if flat.size == 0:
        return False
    chi_map = maps.chi.reshape(-1)
    if chi is not None:
        chi_map[flat] += fraction * (np.float32(chi) - chi_map[flat])
    chi_map[flat] += fraction * np.float32(chi_add)
    for array, scale in ((maps.proton_density, pd_scale), (maps.t2w, t2_scale)):
        values = array.reshape(-1)
        values[flat] *= 1 + fraction * np.float32(scale - 1)
    maps.r2star.reshape(-1)[flat] += fraction * np.float32(r2_add)
    return True


def _smooth_path(anchors, n: int = 40) -> np.ndarray:
    """A smooth curve through ``anchors`` (Catmull-Rom), ``n`` points per segment."""
    anchors = np.asarray(anchors, float)
    if len(anchors) == 2:
        return np.linspace(anchors[0], anchors[1], n)
    padded = np.vstack([2 * anchors[0] - anchors[1], anchors, 2 * anchors[-1] - anchors[-2]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    pieces = []
    for p0, p1, p2, p3 in zip(padded[:-3], padded[1:-2], padded[2:-1], padded[3:]):
        pieces.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    return np.vstack([*pieces, anchors[-1:]])


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class Vasculature:
    """Draws a subject's vessels into the fine maps and records them as label-0 objects."""

    def __init__(self, maps, head: Head, rng: np.random.Generator, objects: list[dict]):
        self.maps, self.head, self.rng, self.objects = maps, head, rng, objects
        self.scale = head.scale / np.array([68.0, 84.0, 58.0])

    def _record(self, kind: str, vessel: str, points, radius_mm: float, chi: float) -> None:
        points = np.asarray(points, float)
        centre = points[len(points) // 2]
        index = np.clip(self.maps.index_of(centre), 0, np.array(self.maps.tissue.shape) - 1)
        span = points[-1] - points[0]
        self.objects.append(
            {
                "id": len(self.objects) + 1,
                "kind": kind,
                "label": 0,
                "vessel": vessel,
                "centre_mm": [round(float(c), 3) for c in centre],
                "diameter_mm": round(2 * radius_mm, 3),
                "length_mm": round(float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()), 1),
                "direction": [round(float(c), 3) for c in span / (np.linalg.norm(span) + 1e-9)],
                "susceptibility_ppb": round(float(chi), 1),
                "location": LOCATION_NAMES[int(self.maps.location[tuple(index)])],
            }
        )

    def vein(self, vessel: str, points, radius_mm: float) -> None:
        chi = float(self.rng.uniform(*VENOUS_CHI_PPB))
        if paint_tube(self.maps, points, radius_mm, chi=chi, r2_add=20.0):
            self._record("vein", vessel, points, radius_mm, chi)

    def _on_shell(self, start_direction, level: float, length_mm: float, upward_bias: float) -> np.ndarray:
        """A curved path on the brain shell at ``level``, starting along ``start_direction``."""
        point = self.head.shell_point(start_direction, level)
        radial = point - np.array([0, 0, 4.0])
        tangent = np.cross(radial, _random_unit(self.rng))
        tangent /= np.linalg.norm(tangent)
        points = [point]
        for _ in range(int(length_mm)):
            radial = points[-1] - np.array([0, 0, 4.0])
            radial /= np.linalg.norm(radial)
            turn = 0.15 * self.rng.standard_normal(3) + upward_bias * np.array([0, 0, 1.0])
            tangent = tangent + turn - np.dot(tangent + turn, radial) * radial
            tangent /= np.linalg.norm(tangent)
            points.append(self.head.shell_point(points[-1] + tangent - np.array([0, 0, 4.0]), level))
        return np.array(points)

    def pial_veins(self, count: int) -> None:
        """Veins on the cortical surface and in sulci (tangential; many drain upwards)."""
        for _ in range(count):
            direction = _random_unit(self.rng) * [1, 1, 0.7] + [0, 0, 0.2]
            path = self._on_shell(
                direction, self.rng.uniform(0.975, 1.01), self.rng.uniform(15, 60), 0.15 * (self.rng.random() < 0.5)
            )
            self.vein("pial", path, _log_uniform(self.rng, 0.3, 1.5))

    def medullary_veins(self, count: int) -> None:
        """Thin veins running radially from the cortex towards the ventricles, some branching."""
        for _ in range(count):
            direction = _random_unit(self.rng) * [1, 1, 0.8] + [0, 0, 0.25]
            outer = self.head.shell_point(direction, self.rng.uniform(0.86, 0.95))
            inner = self.head.shell_point(direction + self.rng.normal(0, 0.15, 3), self.rng.uniform(0.3, 0.7))
            middle = (outer + inner) / 2 + self.rng.normal(0, 2.0, 3)
            path = _smooth_path([outer, middle, inner], 20)
            radius = _log_uniform(self.rng, 0.1, 0.5)
            self.vein("medullary", path, radius)
            if self.rng.random() < 0.4:  # a tributary from another cortical point
                joint = path[self.rng.integers(len(path) // 4, 3 * len(path) // 4)]
                tip = self.head.shell_point(direction + self.rng.normal(0, 0.2, 3), self.rng.uniform(0.86, 0.95))
                self.vein(
                    "medullary",
                    _smooth_path([tip, (tip + joint) / 2 + self.rng.normal(0, 1.5, 3), joint], 15),
                    0.7 * radius,
                )

    def deep_veins(self) -> None:
        """Thalamostriate, internal cerebral and basal veins (both sides) into the great vein of Galen."""
        s, jitter = self.scale, lambda: self.rng.normal(0, 1.0, 3)
        for side in (-1, 1):
            m = np.array([side, 1, 1]) * s
            self.vein(
                "thalamostriate",
                _smooth_path([m * (13, -4, 15) + jitter(), m * (8, 2, 15), m * (3, 6, 13)]),
                self.rng.uniform(0.5, 0.9),
            )
            self.vein(
                "internal cerebral",
                _smooth_path([m * (3, 6, 13), m * (2.5, -10, 14) + jitter(), m * (1.5, -26, 12), s * (0, -36, 8)]),
                self.rng.uniform(0.7, 1.2),
            )
            self.vein(
                "basal",
                _smooth_path([m * (19, 4, -8) + jitter(), m * (17, -14, -6), m * (10, -28, 0), s * (0, -36, 8)]),
                self.rng.uniform(0.6, 1.1),
            )
        self.vein(
            "galen", _smooth_path([s * (0, -36, 8), s * (0, -42, 12), s * (0, -48, 16)]), self.rng.uniform(1.2, 2)
        )

    def dural_sinuses(self) -> None:
        """Superior sagittal, straight and transverse sinuses at the brain's edge (radius 1.5-4 mm)."""
        level = self.rng.uniform(1.02, 1.05)
        angles = np.deg2rad(np.linspace(15, 205, 60))
        sagittal = np.array([self.head.shell_point((0, np.cos(a), np.sin(a)), level) for a in angles])
        self.vein("superior sagittal sinus", sagittal, self.rng.uniform(2.0, 3.5))
        torcula = sagittal[-1]
        self.vein("straight sinus", _smooth_path([self.scale * (0, -48, 16), torcula]), self.rng.uniform(1.5, 2.5))
        for side in (-1, 1):
            turn = np.deg2rad(np.linspace(0, 100, 30))
            path = [self.head.shell_point((side * np.sin(a), -np.cos(a), -0.45), level) for a in turn]
            self.vein("transverse sinus", np.vstack([torcula, *path]), self.rng.uniform(2.0, 3.5))

    def flow_voids(self) -> None:
        """Arteries with fast flow: a dark lumen without a susceptibility shift (carotid siphons, basilar, MCAs)."""
        s = self.scale
        paths = [_smooth_path([s * (0, -14, -50), s * (0, -12, -32)])]
        for side in (-1, 1):
            m = np.array([side, 1, 1]) * s
            paths.append(_smooth_path([m * (14, 8, -52), m * (12, 6, -34), m * (10, 4, -22)]))
            paths.append(_smooth_path([m * (10, 4, -22), m * (28, 6, -18) + self.rng.normal(0, 2, 3), m * (44, 2, -8)]))
        for path in paths:
            radius = self.rng.uniform(1.0, 2.0)
            if paint_tube(self.maps, path, radius, pd_scale=0.1, t2_scale=0.2):
                self._record("flow void", "artery", path, radius, 0.0)

    def superficial_siderosis(self) -> None:
        """Haemosiderin lining the cortex: a ribbon of two parallel tubes along the surface (label 0)."""
        direction = _random_unit(self.rng) * [1, 1, 0.5] + [0, 0, 0.4]
        path = self._on_shell(direction, 0.99, self.rng.uniform(20, 50), 0.0)
        chi = float(self.rng.uniform(600, 1500))
        offset = np.cross(np.diff(path, axis=0).mean(axis=0), path.mean(axis=0) - [0, 0, 4.0])
        offset = 0.6 * offset / np.linalg.norm(offset)
        for shift in (-offset, offset):
            paint_tube(self.maps, path + shift, 0.5, chi_add=chi, pd_scale=0.7, r2_add=120.0, t2_scale=0.5)
        self._record("siderosis", "cortical surface", path, 1.1, chi)


def draw_vasculature(
    maps, head: Head, rng: np.random.Generator, objects: list[dict], density: float, mimics: bool
) -> None:
    """The anatomical venous tree of the wide world (tens to hundreds of vessels); with ``mimics`` also arterial
    flow voids and, in one subject in ten, cortical superficial siderosis."""
    vessels = Vasculature(maps, head, rng, objects)
    vessels.dural_sinuses()
    vessels.deep_veins()
    vessels.pial_veins(round(rng.uniform(40, 100) * density))
    vessels.medullary_veins(round(rng.uniform(60, 150) * density))
    if mimics:
        vessels.flow_voids()
        if rng.random() < 0.1:
            vessels.superficial_siderosis()
