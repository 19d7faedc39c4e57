"""Which lesion of one label map is which lesion of another: the matching rules of evaluation and agreement.

Lesions are 26-connected components of one class. Two lesions *may pair* when, by rule:

- ``overlap``: they share at least one voxel;
- ``adjacent``: they share a voxel or touch within one voxel (a voxel of one is in the 26-neighbourhood of a
  voxel of the other), for one-voxel microbleeds drawn a voxel apart;
- ``distance``: their centroids (world mm, through the affine) are at most ``max_distance_mm`` apart.

Pairs are then made **one to one** by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``):
as many pairs as possible, ties broken by the smallest total centroid distance. So a lesion split into two
pieces pairs with one piece only; the other piece is unmatched.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .components import CONNECTIVITY_26, class_components

MATCH_RULES: tuple[str, ...] = ("overlap", "adjacent", "distance")
#: Largest ``max_distance_mm`` of the distance rule: twice the largest microbleed (10 mm, Greenberg et al.,
#: Lancet Neurol 2009). Farther apart, any two lesions of a brain would pair and every score would be 1.
MAX_DISTANCE_MM = 20.0


@dataclass
class Lesions:
    """The lesions of one class in a label map: component ids (1..count) and world centroids (count, 3)."""

    ids: np.ndarray
    count: int
    centroids_mm: np.ndarray

    @classmethod
    def of_class(cls, labels: np.ndarray, value: int, affine: np.ndarray | None = None) -> "Lesions":
        return cls.of_mask(np.asarray(labels) == value, affine)

    @classmethod
    def of_mask(cls, mask: np.ndarray, affine: np.ndarray | None = None) -> "Lesions":
        ids, count = class_components(mask, 1)
        affine = np.eye(4) if affine is None else np.asarray(affine, float)
        return cls(ids, count, _centroids(ids, count) @ affine[:3, :3].T + affine[:3, 3])

    def subset(self, keep: np.ndarray) -> "Lesions":
        """The lesions where ``keep`` (a bool per lesion) is True, numbered 1..n again in their order."""
        keep = np.asarray(keep, bool)
        numbers = np.zeros(self.count + 1, dtype=np.int32)
        numbers[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        return Lesions(numbers[self.ids], int(keep.sum()), self.centroids_mm[keep])


def _centroids(ids: np.ndarray, count: int) -> np.ndarray:
    """Voxel centroid (count, 3) of each id 1..count, from the lesion voxels only."""
    where = np.nonzero(ids)
    numbers = ids[where]
    sizes = np.bincount(numbers, minlength=count + 1)[1:]
    sums = [np.bincount(numbers, weights=axis, minlength=count + 1)[1:] for axis in where]
    return np.stack(sums, axis=1) / np.maximum(sizes, 1)[:, None] if count else np.zeros((0, ids.ndim))


def check_rule(rule: str, max_distance_mm: float | None) -> None:
    """ValueError for an unknown rule, or the distance rule without a ``max_distance_mm`` in 0..MAX_DISTANCE_MM."""
    if rule not in MATCH_RULES:
        raise ValueError(f"unknown matching rule {rule!r}; expected one of {', '.join(MATCH_RULES)}")
    if rule == "distance" and distance_problem(max_distance_mm):
        raise ValueError(f"the distance rule needs max_distance_mm {distance_problem(max_distance_mm)}")


def distance_problem(max_distance_mm) -> str | None:
    """What is wrong with a distance rule's ``max_distance_mm`` (NaN, infinite, 0 or less, over
    :data:`MAX_DISTANCE_MM`), or None."""
    if max_distance_mm is not None and 0 < max_distance_mm <= MAX_DISTANCE_MM:  # False for NaN
        return None
    return f"above 0 and at most {MAX_DISTANCE_MM:g} mm (got {max_distance_mm}); farther apart is not one lesion"


def allowed_pairs(a: Lesions, b: Lesions, rule: str, max_distance_mm: float | None = None) -> np.ndarray:
    """(a.count, b.count) booleans: which lesion of ``a`` may pair with which of ``b`` under ``rule``."""
    check_rule(rule, max_distance_mm)
    allowed = np.zeros((a.count, b.count), dtype=bool)
    if not a.count or not b.count:
        return allowed
    if rule == "distance":
        return _distances(a, b) <= max_distance_mm
    if rule == "adjacent":
        _mark_within_one_voxel(allowed, a, b)
        return allowed
    both = (a.ids > 0) & (b.ids > 0)
    allowed[a.ids[both] - 1, b.ids[both] - 1] = True
    return allowed


def _mark_within_one_voxel(allowed: np.ndarray, a: Lesions, b: Lesions) -> None:
    """Mark pairs where a lesion of ``b`` has a voxel in the 26-neighbourhood of (or in) a lesion of ``a``."""
    for number, box in enumerate(ndimage.find_objects(a.ids, max_label=a.count), start=1):
        grown_box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        grown = ndimage.binary_dilation(a.ids[grown_box] == number, CONNECTIVITY_26)
        reached = b.ids[grown_box][grown]
        allowed[number - 1, np.unique(reached[reached > 0]) - 1] = True


def _distances(a: Lesions, b: Lesions) -> np.ndarray:
    return np.linalg.norm(a.centroids_mm[:, None, :] - b.centroids_mm[None, :, :], axis=-1)


def one_to_one(a: Lesions, b: Lesions, allowed: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (a id, b id), each lesion in at most one: a maximum matching over ``allowed``, the nearest centroids
    among equally large matchings."""
    if not allowed.any():
        return []
    distances = _distances(a, b)
    forbidden = float(distances[allowed].sum()) + 1.0  # dearer than every allowed pair together
    cost = np.where(allowed, distances, forbidden)
    rows, columns = linear_sum_assignment(cost)
    return [(int(r) + 1, int(c) + 1) for r, c in zip(rows, columns) if allowed[r, c]]
