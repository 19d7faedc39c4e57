"""Lesions and mimics placed in the head: microbleeds, iron deposits, veins, calcifications and cavernomas.

Each is drawn on the fine grid into the tissue property maps (susceptibility, proton density, R2*,
T2w brightness); microbleeds and iron deposits also into the truth map. Every object is described
in the subject's lesion list (kind, label value, centre, true diameter, susceptibility, location).
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..conventions import CMB, IRON, LOCATION_NAMES
from .anatomy import BRAIN_RADII_MM, BY_NAME
from .vessels import draw_vasculature

#: Where microbleeds go (MARS categories) and how often.
CMB_SITES = {
    "lobar": (("cortex", "white matter"), 0.5),
    "deep": (("thalamus", "deep white matter", "putamen", "caudate"), 0.3),
    "infratentorial": (("brainstem", "cerebellum"), 0.2),
}
#: Minimum distance (mm) between the centres of two placed objects.
MIN_SEPARATION_MM = 7.0
#: Where physiological calcifications sit (wide world): share, and a centre (mm, before scaling; x mirrored).
CALCIFICATION_SITES = {
    "pineal": (0.25, (0, -30, 8)),
    "choroid plexus": (0.3, (8, -14, 12)),
    "globus pallidus": (0.3, None),
    "dentate": (0.15, (14, -52, -30)),
}


@dataclass
class Maps:
    """Fine-grid property maps that lesions modify, with the fine grid's affine."""

    affine: np.ndarray
    voxel_mm: np.ndarray
    tissue: np.ndarray
    location: np.ndarray
    chi: np.ndarray
    proton_density: np.ndarray
    r2star: np.ndarray
    t2w: np.ndarray
    truth: np.ndarray  # uint8 0/1/2

    def index_of(self, xyz_mm) -> np.ndarray:
        return np.round((np.linalg.inv(self.affine) @ np.append(xyz_mm, 1.0))[:3]).astype(int)

    def world_of(self, index) -> np.ndarray:
        return (self.affine @ np.append(np.asarray(index, float), 1.0))[:3]

    def box(self, centre_mm, radius_mm):
        """(slices, world coordinates (3, ...) of the voxels in them) around a world point; the box is cut
        to the grid, and is empty for a point too far outside it."""
        centre = self.index_of(centre_mm)
        span = np.ceil((radius_mm + 1.0) / self.voxel_mm).astype(int)
        starts = [min(max(0, c - s), n) for c, s, n in zip(centre, span, self.tissue.shape)]
        slices = tuple(
            slice(start, max(start, min(n, c + s + 1)))
            for start, c, s, n in zip(starts, centre, span, self.tissue.shape)
        )
        grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in slices], indexing="ij")).reshape(3, -1)
        world = (self.affine[:3, :3] @ grid + self.affine[:3, 3:4]).reshape(3, *[s.stop - s.start for s in slices])
        return slices, world


class Placer:
    """Draws objects into :class:`Maps`, keeping them apart, and records them."""

    def __init__(self, maps: Maps, rng: np.random.Generator, objects: list[dict] | None = None):
        """``objects``: those already in the maps (a lesion list), kept apart from and numbered after."""
        self.maps, self.rng = maps, rng
        self.objects: list[dict] = [dict(o) for o in objects or ()]
        self._centres: list[np.ndarray] = [np.asarray(o["centre_mm"], float) for o in self.objects]
        self._voxels_of: dict[tuple[str, ...], np.ndarray] = {}

    def random_point(self, tissues: tuple[str, ...], tries: int = 200) -> np.ndarray | None:
        """A world point in one of ``tissues``, away from objects already placed; None if there is none."""
        if tissues not in self._voxels_of:
            codes = [BY_NAME[t].code for t in tissues]
            self._voxels_of[tissues] = np.flatnonzero(np.isin(self.maps.tissue, codes))
        candidates = self._voxels_of[tissues]
        if candidates.size == 0:
            return None
        for _ in range(tries):
            index = np.unravel_index(self.rng.choice(candidates), self.maps.tissue.shape)
            point = self.maps.world_of(index) + self.rng.uniform(-0.25, 0.25, 3) * self.maps.voxel_mm
            if all(np.linalg.norm(point - c) >= MIN_SEPARATION_MM for c in self._centres):
                return point
        return None

    def _record(self, kind: str, label: int, centre, diameter_mm: float, chi_ppb: float) -> None:
        index = np.clip(self.maps.index_of(centre), 0, np.array(self.maps.tissue.shape) - 1)
        self._centres.append(np.asarray(centre))
        self.objects.append(
            {
                "id": len(self.objects) + 1,
                "kind": kind,
                "label": int(label),
                "centre_mm": [round(float(c), 3) for c in centre],
                "diameter_mm": round(float(diameter_mm), 3),
                "susceptibility_ppb": round(float(chi_ppb), 1),
                "location": LOCATION_NAMES[int(self.maps.location[tuple(index)])],
            }
        )

    def _paint(
        self, inside: np.ndarray, slices, *, chi=None, chi_add=None, pd_scale=1.0, r2_add=0.0, t2_scale=1.0, label=0
    ):
        m = self.maps
        if chi is not None:
            m.chi[slices][inside] = chi
        if chi_add is not None:
            m.chi[slices][inside] += chi_add
        m.proton_density[slices][inside] *= pd_scale
        m.r2star[slices][inside] += r2_add
        m.t2w[slices][inside] *= t2_scale
        if label:
            m.truth[slices][inside] = label

    def sphere(self, kind: str, centre, diameter_mm: float, **properties) -> None:
        slices, world = self.maps.box(centre, diameter_mm / 2)
        inside = np.linalg.norm(world - np.asarray(centre)[:, None, None, None], axis=0) <= diameter_mm / 2
        if not inside.any():  # smaller than a fine voxel: its nearest voxel
            inside[tuple(np.array(inside.shape) // 2)] = True
        self._paint(inside, slices, **properties)
        chi = properties.get("chi", properties.get("chi_add"))
        self._record(kind, properties.get("label", 0), centre, diameter_mm, chi)

    def microbleed(self) -> bool:
        names = list(CMB_SITES)
        site = names[self.rng.choice(len(names), p=[CMB_SITES[n][1] for n in names])]
        point = self.random_point(CMB_SITES[site][0])
        if point is None:  # that region is outside the field of view
            point = self.random_point(CMB_SITES["lobar"][0])
        if point is None:
            return False
        diameter = float(np.exp(self.rng.uniform(np.log(1.2), np.log(5.0))))
        chi = float(self.rng.uniform(400, 1600))
        self.sphere("cmb", point, diameter, chi=chi, pd_scale=0.8, r2_add=150.0, t2_scale=0.45, label=CMB)
        return True

    def iron_deposit(self) -> bool:
        point = self.random_point(("putamen", "globus pallidus"))
        if point is None:
            return False
        extra = float(self.rng.uniform(100, 300))
        blobs = self.rng.integers(2, 6)
        slices, world = self.maps.box(point, 7.0)
        inside = np.zeros(world.shape[1:], bool)
        for _ in range(blobs):  # irregular: a union of blobs around the centre
            offset = self.rng.normal(0, 2.0, 3)
            radius = self.rng.uniform(1.2, 3.5)
            inside |= np.linalg.norm(world - (point + offset)[:, None, None, None], axis=0) <= radius
        inside &= np.isin(self.maps.tissue[slices], [BY_NAME["putamen"].code, BY_NAME["globus pallidus"].code])
        if inside.sum() < 4:
            return False
        self._paint(inside, slices, chi_add=extra, pd_scale=0.95, r2_add=35.0, t2_scale=0.75, label=IRON)
        diameter = 2 * (3 * inside.sum() * np.prod(self.maps.voxel_mm) / (4 * np.pi)) ** (1 / 3)
        self._record("iron", IRON, point, diameter, extra)
        return True

    def calcification(self) -> bool:
        site = self.rng.choice(["globus pallidus", "ventricle", "cortex", "white matter"], p=[0.35, 0.25, 0.2, 0.2])
        point = self.random_point((str(site),))
        if point is None:
            return False
        diameter = float(self.rng.uniform(1.5, 5.0))
        chi = -float(self.rng.uniform(100, 600))
        self.sphere("calcification", point, diameter, chi=chi, pd_scale=0.15, r2_add=80.0, t2_scale=0.3)
        return True

    def typical_calcification(self, scale: np.ndarray) -> bool:
        """A calcification where they usually are (pineal, choroid plexus, pallidum, dentate); a third mixed
        with iron (a paramagnetic rim around the diamagnetic core)."""
        names = list(CALCIFICATION_SITES)
        site = names[self.rng.choice(len(names), p=[CALCIFICATION_SITES[n][0] for n in names])]
        anchor = CALCIFICATION_SITES[site][1]
        if anchor is None:
            point = self.random_point((site,))
        else:
            point = np.array(anchor) * scale * [self.rng.choice([-1, 1]), 1, 1] + self.rng.normal(0, 1.0, 3)
        if point is None:
            return False
        diameter = float(self.rng.uniform(1.5, 7.0 if site == "choroid plexus" else 5.0))
        chi = -float(self.rng.uniform(100, 600))
        if self.rng.random() < 1 / 3:
            slices, world = self.maps.box(point, diameter / 2 + 1.0)
            distance = np.linalg.norm(world - np.asarray(point)[:, None, None, None], axis=0)
            rim = (distance > diameter / 2) & (distance <= diameter / 2 + 1.0)
            self._paint(rim, slices, chi_add=float(self.rng.uniform(100, 400)), r2_add=40.0, t2_scale=0.7)
        self.sphere("calcification", point, diameter, chi=chi, pd_scale=0.15, r2_add=80.0, t2_scale=0.3)
        return True

    def cavernoma(self) -> bool:
        """A cavernous malformation: CMB-like but larger (6-15 mm), a mixed 'popcorn' core and a haemosiderin rim."""
        point = self.random_point(("white matter", "cortex", "thalamus", "brainstem", "cerebellum"))
        if point is None:
            return False
        diameter = float(self.rng.uniform(6, 15))
        slices, world = self.maps.box(point, diameter / 2)
        distance = np.linalg.norm(world - np.asarray(point)[:, None, None, None], axis=0)
        core = distance <= diameter / 2 - 1.2
        rim = (distance <= diameter / 2) & ~core
        popcorn = ndimage.gaussian_filter(self.rng.standard_normal(core.shape).astype(np.float32), 1.0)
        self.maps.chi[slices][core] += (self.rng.uniform(150, 500) * (1 + 2 * popcorn[core])).astype(np.float32)
        self.maps.t2w[slices][core] *= (1.2 + popcorn[core]).clip(0.4, 2.0)
        rim_chi = float(self.rng.uniform(800, 2000))
        self._paint(rim, slices, chi_add=rim_chi, pd_scale=0.7, r2_add=150.0, t2_scale=0.3)
        self._record("cavernoma", 0, point, diameter, rim_chi)
        return True

    def vein(self) -> bool:
        """A paramagnetic tube; most run through-plane (they look like dots on axial slices)."""
        start = self.random_point(("white matter", "cortex", "deep white matter"))
        if start is None:
            return False
        through_plane = self.rng.random() < 0.7
        direction = np.array([0, 0, 1.0]) if through_plane else np.array([0, 1.0, 0])
        direction = direction + self.rng.normal(0, 0.3, 3)
        length = float(self.rng.uniform(20, 60))
        radius = float(self.rng.uniform(0.3, 1.0))
        bend = self.rng.normal(0, 0.01, 3)
        points = [start]
        for _ in range(int(length / 0.3)):
            direction = direction / np.linalg.norm(direction) + bend
            points.append(points[-1] + 0.3 * direction / np.linalg.norm(direction))
        points = np.array(points)

        centre = points.mean(axis=0)
        slices, world = self.maps.box(centre, length / 2 + radius + 1)
        distance, _ = cKDTree(points).query(world.reshape(3, -1).T, distance_upper_bound=radius + 0.5)
        inside = (distance <= radius).reshape(world.shape[1:]) & (self.maps.tissue[slices] >= BY_NAME["cortex"].code)
        if not inside.any():
            return False
        chi = float(self.rng.uniform(300, 450))
        self.maps.chi[slices][inside] = chi
        self.maps.r2star[slices][inside] += 20.0
        self.objects.append(
            {
                "id": len(self.objects) + 1,
                "kind": "vein",
                "label": 0,
                "centre_mm": [round(float(c), 3) for c in centre],
                "diameter_mm": round(2 * radius, 3),
                "length_mm": round(length, 1),
                "susceptibility_ppb": round(chi, 1),
                "location": "lobar",
            }
        )
        return True


def cohort_counts(rng: np.random.Generator) -> tuple[int, int]:
    """(microbleeds, iron deposits) as in a community cohort: 60 % without CMBs, 25 % with 1-4, 15 % with
    5-40; iron deposits 0-4."""
    draw = rng.random()
    if draw < 0.6:
        cmbs = 0
    elif draw < 0.85:
        cmbs = int(rng.integers(1, 5))
    else:
        cmbs = int(np.exp(rng.uniform(np.log(5), np.log(40))))
    return cmbs, int(rng.integers(0, 5))


def place_all(maps: Maps, rng: np.random.Generator, world=None, head=None, world_rng=None) -> list[dict]:
    """Draw a subject's lesions and mimics; counts vary between subjects.

    ``world`` (a :class:`World`, needs the ``head`` and a ``world_rng``) adds the anatomical vasculature,
    cohort-like or no lesions and the wide world's mimics; without it the draws are the default world's."""
    placer = Placer(maps, rng)
    if world is None or world.veins == "parenchymal":
        for _ in range(round(rng.integers(12, 26) * (1.0 if world is None else world.vein_density))):
            placer.vein()
    else:
        draw_vasculature(maps, head, world_rng, placer.objects, world.vein_density, world.mimics)
    burden = "default" if world is None else world.lesion_burden
    if burden == "default":
        n_cmb = rng.integers(3, 13)
    else:
        n_cmb, n_iron = cohort_counts(world_rng) if burden == "cohort" else (0, 0)
    for _ in range(n_cmb):
        placer.microbleed()
    for _ in range(rng.integers(1, 5) if burden == "default" else n_iron):
        placer.iron_deposit()
    if world is not None and world.mimics:
        scale = head.scale / np.array(BRAIN_RADII_MM)
        for _ in range(world_rng.integers(1, 6)):
            placer.typical_calcification(scale)
        if world_rng.random() < 0.15:
            placer.cavernoma()
    else:
        for _ in range(rng.integers(1, 5)):
            placer.calcification()
    return placer.objects
