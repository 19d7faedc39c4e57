"""The lesion table: one row per lesion (26-connected component of one class) with physical measurements.

Columns and units are described in :data:`COLUMNS` (and docs/lesion-tables.md); the same
descriptions go into the BIDS JSON sidecar written next to a table.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from ..conventions import CLASS_NAMES, CMB, HEMISPHERES, IRON, LOCATION_NAMES, REGION_NAMES
from ..io.nifti import voxel_sizes
from .components import class_components
from .features import region_features
from .guidance import FLAG_DIAMAGNETIC, FLAG_NO_QSM, FLAG_NOT_PARAMAGNETIC, MAX_CMB_DIAMETER_MM, judge
from .placement import lesion_place

#: Column -> (description, units) for the lesion table and its sidecar.
COLUMNS: dict[str, tuple[str, str | None]] = {
    "lesion_id": ("Lesion number (1..N in scan order); the value of the lesion in the lesion-id map", None),
    "label": ("Label value: 1 cerebral microbleed, 2 iron deposit", None),
    "class": ("Class name: cmb or iron", None),
    "voxels": ("Number of voxels", None),
    "volume_mm3": ("Volume", "mm^3"),
    "diameter_mm": ("Diameter of the sphere of equal volume", "mm"),
    "axial_diameter_mm": (
        "Largest in-plane diameter on an axial slice (MARS, BOMBS, Greenberg 2009): the size of the 10 mm rule",
        "mm",
    ),
    "macrobleed": ("A microbleed-class lesion over 10 mm across (axial_diameter_mm): left out of CMB counts", None),
    "extent_mm": ("Largest physical extent (farthest voxel centres plus the voxel width)", "mm"),
    "elongation": ("Longest over middle principal axis (1 round, large for tubes)", None),
    "i": ("Centroid, first array axis", "voxel"),
    "j": ("Centroid, second array axis", "voxel"),
    "k": ("Centroid, third array axis", "voxel"),
    "x_mm": ("Centroid, scanner RAS x (through the SWI affine)", "mm"),
    "y_mm": ("Centroid, scanner RAS y", "mm"),
    "z_mm": ("Centroid, scanner RAS z", "mm"),
    "qsm_mean_ppb": ("Mean magnetic susceptibility in the lesion", "ppb"),
    "qsm_peak_ppb": ("Extreme susceptibility on the side of the mean (maximum when paramagnetic)", "ppb"),
    "qsm_core_ppb": ("Mean susceptibility in the darkest quarter of the lesion on SWI (its source)", "ppb"),
    "qsm_contrast_ppb": (
        (
            "Susceptibility of the lesion's source (its core or mean; its peak without SWI) above the median of a 2 mm "
            "tissue shell around it: the susceptibility rule of the guidance and the post-processing"
        ),
        "ppb",
    ),
    "qsm_tissue_ppb": ("Median susceptibility of a 2 mm tissue shell around the lesion (its local tissue)", "ppb"),
    "susceptibility_moment_ppb_mm3": (
        "Sum over the lesion of (susceptibility - qsm_tissue_ppb) x voxel volume (Liu et al., MRM 2012): does not "
        + "depend on echo time or field strength",
        "ppb*mm^3",
    ),
    "qsm_coverage": (
        "Share of the lesion's voxels where the QSM has data (an eroded QSM mask leaves the cortex out)",
        None,
    ),
    "qsm_confirmed": ("Whether QSM shows the lesion paramagnetic: yes, no, or no QSM data (not confirmed)", None),
    "swi_contrast": ("1 - mean SWI in the lesion / mean SWI in a 2 mm shell around it (0 none, 1 black)", None),
    "probability_mean": ("Mean model probability of the lesion's class inside it", None),
    "location": (
        "Location category: the majority of the lesion's labelled voxels, else the nearest label within 3 mm "
        "(docs/regions.md): " + ", ".join(LOCATION_NAMES.values()),
        None,
    ),
    "region": (
        "MARS region: the majority of the region-map values of the voxels that gave the location: "
        + ", ".join(REGION_NAMES.values()),
        None,
    ),
    "hemisphere": ("Side of that region: " + ", ".join(HEMISPHERES), None),
    "flags": ("Labelling-protocol contradictions, ';'-separated (docs/labelling-protocol.md)", None),
    "suggested_class": ("Class the labelling protocol suggests from the evidence (cmb, iron or reject)", None),
    "certainty": ("The rater's certainty when accepting the lesion in labelling: definite or possible (MARS)", None),
}


def label_lesions(labels: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Number every lesion: (int32 lesion-id map, {lesion id: label value}).

    Lesions are 26-connected components of one class; ids run 1..N in scan (C) order of each
    lesion's first voxel, so the same label map always gives the same ids."""
    labels = np.asarray(labels)
    combined = np.zeros(labels.shape, dtype=np.int32)
    classes: dict[int, int] = {}
    offset = 0
    for value in CLASS_NAMES:
        components, count = class_components(labels, value)
        combined[components > 0] = components[components > 0] + offset
        classes.update({offset + n: value for n in range(1, count + 1)})
        offset += count
    if offset == 0:
        return combined, {}
    ids, first = np.unique(combined.ravel(), return_index=True)
    order = ids[ids > 0][np.argsort(first[ids > 0], kind="stable")]
    renumber = np.zeros(offset + 1, dtype=np.int32)
    renumber[order] = np.arange(1, offset + 1, dtype=np.int32)
    return renumber[combined], dict(sorted((int(renumber[old]), value) for old, value in classes.items()))


@dataclass
class Lesions:
    """A label map's lesions numbered (:func:`label_lesions`: the id map and {id: label value}) and measured
    against their surroundings (:func:`.features.region_features`, by lesion id): the work the protocol's
    rules and the lesion table share, done once."""

    ids: np.ndarray
    classes: dict[int, int]
    features: pd.DataFrame


def find_lesions(
    labels: np.ndarray, affine: np.ndarray, *, swi: np.ndarray | None = None, qsm: np.ndarray | None = None
) -> Lesions:
    """The :class:`Lesions` of ``labels``, each measured with the other lesions left out of its shell."""
    lesion_ids, classes = label_lesions(labels)
    return Lesions(lesion_ids, classes, region_features(lesion_ids, affine, swi=swi, qsm=qsm, exclude=labels > 0))


def measure_lesions(
    labels: np.ndarray,
    subject=None,
    *,
    lesions: Lesions | None = None,
    affine: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    locations: np.ndarray | None = None,
    certainty: list[tuple[tuple[float, float, float], str]] | None = None,
    regions: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per lesion of ``labels`` (on the SWI grid) with the columns of :data:`COLUMNS`.

    ``subject`` (a :class:`~napari_deepmir.io.Subject`) gives the affine, SWI and QSM (ppb); without it
    ``affine`` is used (identity if None: voxels are then reported as mm) and the image columns are NaN.
    ``probabilities`` (3, *grid): class probabilities; ``locations``: a location map, ``regions``: a region map
    (conventions; without a location map the region map gives the ``location`` column too); ``certainty``: a
    labelling session's (centre mm, definite/possible) marks (:func:`lesion_certainty`); ``lesions``: those
    of ``labels`` already found (:func:`find_lesions` with the subject's images), found here when None."""
    labels = np.asarray(labels)
    if subject is not None:
        if labels.shape != tuple(subject.shape):
            raise ValueError(f"label map {labels.shape} is not on the subject's SWI grid {tuple(subject.shape)}")
        affine = subject.affine
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    if lesions is None:
        images = {} if subject is None else {"swi": subject.swi, "qsm": subject.qsm}
        lesions = find_lesions(labels, affine, **images)
    lesion_ids, classes = lesions.ids, lesions.classes
    table = lesions.features.reset_index()
    table.insert(1, "label", [classes[i] for i in table["lesion_id"]])
    table.insert(2, "class", [CLASS_NAMES[v] for v in table["label"]])
    table["label"] = table["label"].astype(int)
    table.insert(
        table.columns.get_loc("axial_diameter_mm") + 1,
        "macrobleed",
        (table["label"] == CMB) & (table["axial_diameter_mm"] > MAX_CMB_DIAMETER_MM),
    )
    objects = _slices(lesion_ids, len(classes))
    if probabilities is not None:
        table["probability_mean"] = [
            float(probabilities[value][box][lesion_ids[box] == lesion].mean())
            for lesion, value, box in zip(table["lesion_id"], table["label"], objects)
        ]
    if locations is not None or regions is not None:
        _add_places(table, lesion_ids, objects, voxel_sizes(affine), locations, regions)
    verdicts = [judge(row, row.get("location"), labelled_as=row["class"]) for _, row in table.iterrows()]
    qsm = None if subject is None else subject.qsm
    table.insert(
        table.columns.get_loc("swi_contrast"),
        "qsm_coverage",
        [
            np.nan if qsm is None else float(np.count_nonzero(qsm[box][lesion_ids[box] == lesion])) / voxels
            for lesion, voxels, box in zip(table["lesion_id"], table["voxels"], objects)
        ],
    )
    table.insert(
        table.columns.get_loc("swi_contrast"), "qsm_confirmed", [qsm_verdict(flags) for flags, _, _ in verdicts]
    )
    table["flags"] = [";".join(flags) for flags, _, _ in verdicts]
    table["suggested_class"] = [suggestion for _, suggestion, _ in verdicts]
    if certainty is not None:
        marked = lesion_certainty(lesion_ids, affine, certainty)
        table["certainty"] = [marked.get(int(lesion)) for lesion in table["lesion_id"]]
    return table


def _add_places(table: pd.DataFrame, lesion_ids, objects, spacing, locations, regions) -> None:
    """The ``location`` column, and ``region`` and ``hemisphere`` with a region map (:mod:`.placement`)."""
    places = [
        lesion_place(
            np.argwhere(lesion_ids[box] == lesion) + [b.start for b in box],
            spacing,
            locations=locations,
            regions=regions,
        )
        for lesion, box in zip(table["lesion_id"], objects)
    ]
    table["location"] = [location for location, _ in places]
    if regions is not None:
        table["region"] = [None if region is None else region[0] for _, region in places]
        table["hemisphere"] = [None if region is None else region[1] for _, region in places]


def lesion_certainty(
    lesion_ids: np.ndarray, affine: np.ndarray, marks: list[tuple[tuple[float, float, float], str]]
) -> dict[int, str]:
    """{lesion id: certainty} from (centre mm, ``definite``/``possible``) marks: a mark belongs to the
    lesion at its voxel, else to the lesion most of the voxels next to it hold. A lesion marked
    definite at least once is definite (two accepted candidates painted into one lesion)."""
    to_voxel = np.linalg.inv(np.asarray(affine, dtype=float))
    found: dict[int, str] = {}
    for centre, certainty in marks:
        voxel = np.round(to_voxel[:3, :3] @ np.asarray(centre, float) + to_voxel[:3, 3]).astype(int)
        if np.any(voxel < 0) or np.any(voxel >= lesion_ids.shape):
            continue
        lesion = int(lesion_ids[tuple(voxel)])
        if not lesion:
            near = tuple(slice(max(c - 1, 0), c + 2) for c in voxel)
            ids = lesion_ids[near][lesion_ids[near] > 0]
            lesion = int(np.bincount(ids).argmax()) if ids.size else 0
        if lesion and found.get(lesion) != "definite":
            found[lesion] = certainty
    return found


def qsm_verdict(flags: list[str]) -> str:
    """``yes`` when the protocol finds the lesion paramagnetic on QSM, ``no`` when QSM contradicts it,
    ``no QSM data`` when the QSM has none in the lesion (beyond an eroded mask, or no QSM at all)."""
    if FLAG_NO_QSM in flags:
        return "no QSM data"
    return "no" if FLAG_DIAMAGNETIC in flags or FLAG_NOT_PARAMAGNETIC in flags else "yes"


def _slices(lesion_ids: np.ndarray, count: int) -> list[tuple[slice, ...]]:
    return ndimage.find_objects(lesion_ids, max_label=count)


def lesion_table_features(table: pd.DataFrame) -> pd.DataFrame:
    """The table shaped for a napari Labels layer of lesion ids: one row per label value 0..max id,
    with an ``index`` column (row 0 is the background, NaN/empty)."""
    size = int(table["lesion_id"].max()) + 1 if len(table) else 1
    features = pd.DataFrame({"index": np.arange(size)})
    features = features.merge(table, how="left", left_on="index", right_on="lesion_id")
    return features.drop(columns="lesion_id")


#: Singular and plural nouns of each class for the one-line count summary.
_COUNT_NOUNS = {CMB: ("CMB", "CMBs"), IRON: ("iron deposit", "iron deposits")}


def count_summary(table: pd.DataFrame) -> str:
    """One line such as ``7 CMBs, 2 iron deposits``."""
    counts = table["label"].value_counts() if len(table) else {}
    parts = []
    for value, (one, many) in _COUNT_NOUNS.items():
        n = int(counts.get(value, 0))
        parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts)
