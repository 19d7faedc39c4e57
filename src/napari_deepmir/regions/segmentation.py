"""Location and MARS region maps from a FreeSurfer (aseg, aparc+aseg, aparc.a2009s+aseg, wmparc) or SynthSeg
segmentation.

The rules work on the segmentation's own grid (distances in mm from its affine); the two maps are then
resampled onto the SWI grid with nearest neighbour. The label numbers are FreeSurfer's
(``FreeSurferColorLUT.txt``), which SynthSeg uses too. docs/regions.md has the table and the rules:

- cortex: the lobe of its Desikan-Killiany label (``aparc``, 1000s left, 2000s right) or Destrieux label
  (``aparc.a2009s``, 11100s left, 12100s right; sulci on a lobe boundary take the lobe of the nearest labelled
  gyrus); plain cortex (3/42) and the older Destrieux ``aparc.a2005s`` (1100s/2100s) have no lobe: lobar, region
  unknown (0 in the region map, 1 in the location map);
- nuclei: caudate, putamen, pallidum, accumbens -> basal ganglia; thalamus -> thalamus; ventral diencephalon
  (substantia nigra, red nucleus, cerebral peduncle: midbrain) -> brainstem; hippocampus, amygdala -> temporal;
  brainstem; cerebellum; corpus callosum (251-255);
- cerebral white matter, in this order: internal capsule (between the lentiform nucleus and the caudate or
  thalamus), external capsule (lateral to the putamen), corpus callosum where the segmentation has no label
  for it (white matter touching the other hemisphere's), deep and periventricular (near the bodies of the lateral
  ventricles, not their temporal horns, or far from the cortex), else lobar: the lobe of the nearest cortex label.

Unsided labels (brainstem, corpus callosum, white-matter hypointensities) take the side of the nearest
sided voxel.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..conventions import HEMISPHERES, REGION_LOCATION, REGION_NAMES, RIGHT_OFFSET
from ..io.nifti import voxel_sizes

FRONTAL, PARIETAL, TEMPORAL, OCCIPITAL, INSULA = 1, 2, 3, 4, 5
BASAL_GANGLIA, THALAMUS, INTERNAL_CAPSULE, EXTERNAL_CAPSULE, CORPUS_CALLOSUM = 6, 7, 8, 9, 10
DEEP_WHITE_MATTER, BRAINSTEM, CEREBELLUM = 11, 12, 13
LOBAR_LOCATION = 1

#: Desikan-Killiany cortical labels (``aparc``: 1000 + index left, 2000 + index right) -> lobe. Cingulate
#: gyri go with the lobe they adjoin: anterior cingulate frontal, posterior and isthmus parietal.
DK_LOBES: dict[int, int] = {
    **dict.fromkeys((2, 3, 12, 14, 17, 18, 19, 20, 24, 26, 27, 28, 32), FRONTAL),
    **dict.fromkeys((8, 10, 22, 23, 25, 29, 31), PARIETAL),
    **dict.fromkeys((1, 6, 7, 9, 15, 16, 30, 33, 34), TEMPORAL),
    **dict.fromkeys((5, 11, 13, 21), OCCIPITAL),
    35: INSULA,
}
#: A lobe boundary: the cortex takes the lobe of the nearest cortex whose lobe is known.
BOUNDARY = -1
#: Destrieux cortical labels (``aparc.a2009s``: 11100 + index left, 12100 + index right; Destrieux et al.,
#: NeuroImage 2010) -> lobe, grouped as the Desikan-Killiany ones above (ours). Sulci that run along a lobe
#: boundary (lateral fissure, posterior ramus; medial wall; central, marginal cingulate, parieto-occipital,
#: anterior occipital, medial occipito-temporal, posterior transverse collateral and pericallosal sulci; unknown)
#: are :data:`BOUNDARY`.
DESTRIEUX_LOBES: dict[int, int] = {
    **dict.fromkeys(
        (1, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 24, 29, 31, 32, 39, 40, 53, 54, 55, 63, 64, 65, 69, 70, 71), FRONTAL
    ),
    **dict.fromkeys((8, 9, 10, 25, 26, 27, 28, 30, 56, 57, 68, 72), PARIETAL),
    **dict.fromkeys((21, 23, 33, 34, 35, 36, 37, 38, 44, 51, 61, 73, 74, 75), TEMPORAL),
    **dict.fromkeys((2, 11, 19, 20, 22, 43, 45, 58, 59), OCCIPITAL),
    **dict.fromkeys((17, 18, 48, 49, 50), INSULA),
    **dict.fromkeys((0, 41, 42, 46, 47, 52, 60, 62, 66, 67), BOUNDARY),
}
#: Label ranges of cortex whose lobe these rules do not know: the older Destrieux parcellation (``aparc.a2005s``).
A2005S_CORTEX = (range(1100, 1182), range(2100, 2182))
#: Label ranges of white matter under a cortical label (``wmparc``: Desikan-Killiany 3000s/4000s, a2005s
#: 3100s/4100s; ``--a2009s`` 13100s/14100s).
WMPARC_WHITE_MATTER = (range(3000, 3200), range(4000, 4200), range(13100, 13176), range(14100, 14176))
#: FreeSurfer label -> (structure, side); side 0 left, 1 right, None on the midline (nearest side).
LEFT, RIGHT = 0, 1
STRUCTURES: dict[int, tuple[str, int | None]] = {
    2: ("white matter", LEFT),
    41: ("white matter", RIGHT),
    77: ("white matter", None),  # WM hypointensities
    78: ("white matter", LEFT),
    79: ("white matter", RIGHT),
    5001: ("white matter", LEFT),  # wmparc: unsegmented white matter
    5002: ("white matter", RIGHT),
    3: ("cortex", LEFT),
    42: ("cortex", RIGHT),
    4: ("lateral ventricle", LEFT),
    43: ("lateral ventricle", RIGHT),
    5: ("inferior lateral ventricle", LEFT),  # temporal horn: its white matter is temporal, not periventricular
    44: ("inferior lateral ventricle", RIGHT),
    7: ("cerebellum", LEFT),
    8: ("cerebellum", LEFT),
    46: ("cerebellum", RIGHT),
    47: ("cerebellum", RIGHT),
    9: ("thalamus", LEFT),  # older FreeSurfer
    10: ("thalamus", LEFT),
    48: ("thalamus", RIGHT),
    49: ("thalamus", RIGHT),
    11: ("caudate", LEFT),
    50: ("caudate", RIGHT),
    12: ("putamen", LEFT),
    51: ("putamen", RIGHT),
    13: ("pallidum", LEFT),
    52: ("pallidum", RIGHT),
    26: ("accumbens", LEFT),
    58: ("accumbens", RIGHT),
    28: ("ventral diencephalon", LEFT),
    60: ("ventral diencephalon", RIGHT),
    17: ("hippocampus", LEFT),
    53: ("hippocampus", RIGHT),
    18: ("amygdala", LEFT),
    54: ("amygdala", RIGHT),
    16: ("brainstem", None),
    **{label: ("corpus callosum", None) for label in range(251, 256)},
}
#: Structures whose region does not depend on geometry.
STRUCTURE_REGIONS: dict[str, int] = {
    "caudate": BASAL_GANGLIA,
    "putamen": BASAL_GANGLIA,
    "pallidum": BASAL_GANGLIA,
    "accumbens": BASAL_GANGLIA,
    "thalamus": THALAMUS,
    "ventral diencephalon": BRAINSTEM,
    "hippocampus": TEMPORAL,
    "amygdala": TEMPORAL,
    "brainstem": BRAINSTEM,
    "cerebellum": CEREBELLUM,
    "corpus callosum": CORPUS_CALLOSUM,
}

#: White matter with (distance to the lentiform nucleus + distance to the caudate or thalamus) up to this (mm)
#: lies between them: internal capsule.
INTERNAL_CAPSULE_GAP_MM = 10.0
#: White matter this close (mm) to the putamen and lateral to its centre: external capsule.
EXTERNAL_CAPSULE_MM = 4.0
#: Without corpus callosum labels (SynthSeg), white matter this close (mm) to the other hemisphere's white
#: matter: corpus callosum.
MIDLINE_CALLOSUM_MM = 3.0
#: White matter this close (mm) to a lateral ventricle: periventricular.
PERIVENTRICULAR_MM = 10.0
#: White matter farther than this (mm) from any cortex: deep.
DEEP_FROM_CORTEX_MM = 15.0


@dataclass
class RegionMaps:
    """A region map (REGION_NAMES codes, + RIGHT_OFFSET on the right) and a location map (LOCATION_NAMES) on
    one grid, and notes on what the segmentation lacked."""

    regions: np.ndarray
    locations: np.ndarray
    notes: list[str] = field(default_factory=list)


def regions_from_segmentation(labels: np.ndarray, affine: np.ndarray) -> RegionMaps:
    """Convert a FreeSurfer/SynthSeg label volume (on its grid, ``affine`` voxel -> RAS mm) into region and
    location maps on the same grid (see the module docstring for the rules). Works on the labelled box only."""
    labels = np.asarray(labels).astype(np.int32)
    found = ndimage.find_objects((labels > 0).astype(np.int8))
    if not found:
        return RegionMaps(np.zeros(labels.shape, np.uint8), np.zeros(labels.shape, np.uint8), ["no labels"])
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[0])
    shifted = np.array(affine, dtype=float)
    shifted[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box]) + affine[:3, 3]
    cropped = _regions_in_box(labels[box], shifted)
    maps = RegionMaps(np.zeros(labels.shape, np.uint8), np.zeros(labels.shape, np.uint8), cropped.notes)
    maps.regions[box], maps.locations[box] = cropped.regions, cropped.locations
    return maps


def _regions_in_box(labels: np.ndarray, affine: np.ndarray) -> RegionMaps:
    spacing = voxel_sizes(affine)
    structure = _structure_masks(labels)
    sides = _sides(labels)
    notes = []
    region = np.zeros(labels.shape, np.int16)
    lobar_unknown = np.zeros(labels.shape, bool)

    for name, code in STRUCTURE_REGIONS.items():
        region[structure[name]] = code
    cortex_lobe = _cortex_lobes(labels, spacing)
    has_lobes = bool((cortex_lobe > 0).any())
    region[cortex_lobe > 0] = cortex_lobe[cortex_lobe > 0]
    plain_cortex = structure["cortex"] & (cortex_lobe == 0)
    lobar_unknown |= plain_cortex
    if plain_cortex.any():
        notes.append(
            "cortex without Desikan-Killiany or Destrieux a2009s labels (aseg, aparc.a2005s, SynthSeg without "
            "--parc): its lobe is unknown (region 0, location lobar); use aparc+aseg, aparc.a2009s+aseg or "
            "SynthSeg --parc for lobes"
        )

    white = structure["white matter"]
    cortex = structure["cortex"] | (cortex_lobe > 0)

    def distance_to(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(labels.shape, np.inf)
        return ndimage.distance_transform_edt(~mask, sampling=spacing)

    lentiform = structure["putamen"] | structure["pallidum"]
    medial = structure["caudate"] | structure["thalamus"]
    internal = white & (distance_to(lentiform) + distance_to(medial) <= INTERNAL_CAPSULE_GAP_MM)
    external = white & ~internal & _lateral_to_putamen(labels, affine, distance_to(structure["putamen"]))
    assigned = internal | external
    if structure["corpus callosum"].any():
        callosum = np.zeros(labels.shape, bool)
    else:
        callosum = white & ~assigned & _near_other_side(white, sides, spacing)
        notes.append(
            "no corpus callosum labels (251-255): white matter within "
            f"{MIDLINE_CALLOSUM_MM:g} mm of the other hemisphere's white matter is taken as corpus callosum"
        )
    assigned |= callosum
    deep = (
        white
        & ~assigned
        & (
            (distance_to(structure["lateral ventricle"]) <= PERIVENTRICULAR_MM)
            | (distance_to(cortex) > DEEP_FROM_CORTEX_MM)
        )
    )
    region[internal], region[external] = INTERNAL_CAPSULE, EXTERNAL_CAPSULE
    region[callosum], region[deep] = CORPUS_CALLOSUM, DEEP_WHITE_MATTER
    lobar_white = white & ~assigned & ~deep
    if has_lobes:
        region[lobar_white] = _nearest_value(cortex_lobe, cortex_lobe > 0, spacing)[lobar_white]
    else:
        lobar_unknown |= lobar_white

    location = np.zeros(labels.shape, np.uint8)
    for code, category in REGION_LOCATION.items():
        location[region == code] = category
    location[lobar_unknown] = LOBAR_LOCATION
    region = np.where((sides == RIGHT) & (region > 0), region + RIGHT_OFFSET, region).astype(np.uint8)
    return RegionMaps(region, location, notes)


def _structure_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    names = {name for name, _ in STRUCTURES.values()}
    masks = {name: np.zeros(labels.shape, bool) for name in names}
    for value in np.unique(labels):
        if int(value) in STRUCTURES:
            masks[STRUCTURES[int(value)][0]] |= labels == value
        elif any(value in labels_range for labels_range in WMPARC_WHITE_MATTER):
            masks["white matter"] |= labels == value
        elif any(value in labels_range for labels_range in A2005S_CORTEX):
            masks["cortex"] |= labels == value
    return masks


def known_cortex_labels(values) -> set[int]:
    """The values among ``values`` that these rules read as cortex (plain, Desikan-Killiany, Destrieux)."""
    dk = {offset + index for offset in (1000, 2000) for index in DK_LOBES}
    destrieux = {offset + index for offset in (11100, 12100) for index in DESTRIEUX_LOBES}
    a2005s = {value for labels_range in A2005S_CORTEX for value in labels_range}
    return {int(v) for v in values} & ({3, 42} | dk | destrieux | a2005s)


def _cortex_lobes(labels: np.ndarray, spacing) -> np.ndarray:
    """The lobe of every Desikan-Killiany or Destrieux cortical voxel (0 elsewhere); Destrieux sulci on a lobe
    boundary take the lobe of the nearest cortex whose lobe is known."""
    lookup = np.zeros(max(int(labels.max()), 12200) + 1, np.int16)
    for index, lobe in DK_LOBES.items():
        lookup[[1000 + index, 2000 + index]] = lobe
    for index, lobe in DESTRIEUX_LOBES.items():
        lookup[[11100 + index, 12100 + index]] = lobe
    lobes = lookup[np.clip(labels, 0, None)]
    boundary, known = lobes == BOUNDARY, lobes > 0
    if boundary.any():
        lobes[boundary] = _nearest_value(lobes, known, spacing)[boundary] if known.any() else 0
    return lobes


def _sides(labels: np.ndarray) -> np.ndarray:
    """Per voxel: 0 left, 1 right (midline labels and background: the side of the nearest sided voxel)."""
    side = np.full(labels.shape, -1, np.int8)
    for value in np.unique(labels):
        value = int(value)
        known = STRUCTURES.get(value, (None, None))[1]
        if known is None and (1000 <= value < 5000 or 11000 <= value < 15000):
            known = LEFT if (value // 1000) % 2 == 1 else RIGHT
        if known is not None:
            side[labels == value] = known
    if (side < 0).all():
        return np.zeros(labels.shape, np.int8)
    return _nearest_value(side, side >= 0)


def _nearest_value(values: np.ndarray, known: np.ndarray, spacing=None) -> np.ndarray:
    """``values`` spread from the ``known`` voxels to every voxel (the value of the nearest known voxel)."""
    indices = ndimage.distance_transform_edt(~known, sampling=spacing, return_distances=False, return_indices=True)
    return values[tuple(indices)]


def _near_other_side(white: np.ndarray, sides: np.ndarray, spacing) -> np.ndarray:
    """White matter within :data:`MIDLINE_CALLOSUM_MM` of the other hemisphere's white matter."""
    near = np.zeros(white.shape, bool)
    for side in (LEFT, RIGHT):
        other = white & (sides != side)
        if other.any():
            near |= (sides == side) & (ndimage.distance_transform_edt(~other, sampling=spacing) <= MIDLINE_CALLOSUM_MM)
    return near


def _lateral_to_putamen(labels: np.ndarray, affine: np.ndarray, distance_to_putamen: np.ndarray) -> np.ndarray:
    """Voxels within :data:`EXTERNAL_CAPSULE_MM` of a putamen and farther from the midline than its centre
    (in world x: the rule assumes a head roughly aligned with the scanner's left-right axis)."""
    near = distance_to_putamen <= EXTERNAL_CAPSULE_MM
    lateral = np.zeros(labels.shape, bool)
    for value, direction in ((12, -1.0), (51, 1.0)):  # left putamen: lateral is -x (RAS); right: +x
        putamen = labels == value
        if not putamen.any():
            continue
        world_x = affine[0, :3] @ np.argwhere(putamen).T.astype(float) + affine[0, 3]
        centre_x = float(world_x.mean())
        candidates = np.argwhere(near)
        x = affine[0, :3] @ candidates.T.astype(float) + affine[0, 3]
        chosen = candidates[direction * (x - centre_x) > 0]
        lateral[tuple(chosen.T)] = True
    return near & lateral


def region_name(code: int) -> tuple[str, str] | None:
    """(region, hemisphere) of a region-map value, or None for 0 and unknown values."""
    right = int(code) > RIGHT_OFFSET
    name = REGION_NAMES.get(int(code) - RIGHT_OFFSET * right)
    return None if name is None else (name, HEMISPHERES[right])
