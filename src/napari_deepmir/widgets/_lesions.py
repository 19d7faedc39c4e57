"""Lesion tables and detections of napari layers, without Qt: the logic the Detect and Lesion table widgets wire.

A class Labels layer (0/1/2) is measured with the images on its grid (SWI, QSM, probabilities,
locations, regions); the table also goes, as ``features``, on a hidden Labels layer of lesion ids (one
label per lesion), which is where napari's Features table and other plugins read per-object tables.
"""

import zlib
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from napari.layers import Image

from ..conventions import CLASS_NAMES, CMB, IRON
from ..detection.pipeline import DetectionResult, iter_detect
from ..io import InputError, Subject
from ..io.display import DisplayGeometry
from ..io.mask import use_brain_mask
from ..layer_data import labels_layer_data, layer_name, lesion_ids_layer_data, probability_layer_data
from ..lesions.measure import label_lesions, lesion_table_features, measure_lesions
from ._layers import add_layer, geometry_of, modality_of, subject_from_layers


def on_same_grid(layer, reference) -> bool:
    """Whether two layers hold data on the same source grid (shape and affine)."""
    if tuple(layer.data.shape) != tuple(reference.data.shape):
        return False
    return bool(np.allclose(geometry_of(layer).affine, geometry_of(reference).affine, atol=1e-3))


def kind_of(layer) -> str | None:
    """This plugin's layer kind from metadata: ``lesions``, ``lesion_ids``, ``locations``, ``regions``,
    ``probability`` or None."""
    return layer.metadata.get("deepmir", {}).get("kind")


@dataclass
class CompanionLayers:
    """Layers on a label map's grid that add columns to its lesion table."""

    swi: object = None
    qsm: object = None
    locations: object = None
    regions: object = None
    probabilities: dict | None = None  # {class value: layer} when both classes are present


def companion_layers(layers, labels_layer) -> CompanionLayers:
    """SWI, QSM, location, region and probability layers among ``layers`` on the grid of ``labels_layer``."""
    found = CompanionLayers()
    probabilities = {}
    for layer in layers:
        if layer == labels_layer or layer.data.ndim != 3 or not on_same_grid(layer, labels_layer):
            continue
        kind = kind_of(layer)
        if kind in ("locations", "regions") and getattr(found, kind) is None:
            setattr(found, kind, layer)
        elif kind == "probability":
            probabilities[int(layer.metadata["deepmir"]["class"])] = layer
        elif isinstance(layer, Image) and kind is None:
            modality = modality_of(layer)
            if modality in ("swi", "qsm") and getattr(found, modality) is None:
                setattr(found, modality, layer)
    if set(probabilities) == set(CLASS_NAMES):
        found.probabilities = probabilities
    return found


def class_probabilities(layers: dict | None, geometry: DisplayGeometry) -> np.ndarray | None:
    """The (background, CMB, iron) probabilities on the source grid from the two class probability layers
    (``{class value: layer}``, see :class:`CompanionLayers`), background the rest; None without them."""
    if not layers:
        return None
    maps = [geometry.from_display(np.asarray(layers[value].data)) for value in sorted(CLASS_NAMES)]
    return np.stack([np.clip(1.0 - maps[0] - maps[1], 0.0, 1.0), *maps])


@dataclass
class LesionMeasurement:
    """A label map's lesion table and lesion-id map (on the source grid)."""

    table: pd.DataFrame
    lesion_ids: np.ndarray
    geometry: DisplayGeometry


def measure_labels_layer(
    labels_layer, companions: CompanionLayers | None = None, *, subject: Subject | None = None
) -> LesionMeasurement:
    """Measure every lesion of a class Labels layer; images from ``subject`` (SWI grid) or ``companions``.

    Without an SWI layer the image columns are NaN and the geometry comes from the layer itself."""
    companions = companions or CompanionLayers()
    geometry = geometry_of(labels_layer)
    labels = geometry.from_display(np.asarray(labels_layer.data))
    if subject is None and companions.swi is not None:
        subject = subject_from_layers(companions.swi, companions.qsm)
    probabilities = class_probabilities(companions.probabilities, geometry)
    locations, regions = (_source_data(layer, geometry) for layer in (companions.locations, companions.regions))
    table = measure_lesions(
        labels, subject, affine=geometry.affine, probabilities=probabilities, locations=locations, regions=regions
    )
    lesion_ids, _ = label_lesions(labels)
    return LesionMeasurement(table, lesion_ids, geometry)


def _source_data(layer, geometry: DisplayGeometry) -> np.ndarray | None:
    """A layer's data on the source grid, or None without a layer."""
    return None if layer is None else geometry.from_display(np.asarray(layer.data))


def show_lesion_ids(viewer, measurement: LesionMeasurement, *, name: str):
    """Add (or update) the hidden lesion-id layer whose ``features`` is the lesion table."""
    features = lesion_table_features(measurement.table)
    return add_layer(viewer, lesion_ids_layer_data(measurement.lesion_ids, measurement.geometry, features, name=name))


@dataclass
class Detection:
    """A detection (the core pipeline's result) on a subject made from layers, with its display geometry."""

    result: DetectionResult
    geometry: DisplayGeometry

    @property
    def subject(self) -> Subject:
        return self.result.subject

    @property
    def measurement(self) -> LesionMeasurement:
        return LesionMeasurement(self.result.table, self.result.lesion_ids, self.geometry)


def detect_in_layers(
    swi_layer,
    qsm_layer=None,
    t2_layer=None,
    *,
    locations_layer=None,
    regions_layer=None,
    mask_layer=None,
    model=None,
    device: str = "auto",
    qsm_units: str = "auto",
) -> Generator[tuple[int, int], None, Detection]:
    """Detect lesions on the subject shown by these layers (on the SWI layer's grid) with :mod:`...pipeline`.

    A generator: yields ``(done, total)`` slices while predicting (closing it stops the prediction)
    and returns a :class:`Detection`. ``model``: None (the default model), a path or a loaded model;
    ``qsm_units``: see :func:`._layers.subject_from_layers`; ``mask_layer``: the user's brain mask on the
    SWI layer's grid (:func:`...io.mask.use_brain_mask`), None to estimate it."""
    subject = subject_from_layers(swi_layer, qsm_layer, t2_layer, qsm_units=qsm_units)
    geometry = geometry_of(swi_layer)
    if mask_layer is not None:
        if mask_layer.data.shape != swi_layer.data.shape:
            raise InputError(
                f"layer {mask_layer.name!r}",
                f"the brain mask ({mask_layer.data.shape}) is not on the grid of the SWI layer {swi_layer.name!r} "
                f"({swi_layer.data.shape})",
            )
        use_brain_mask(subject, _source_data(mask_layer, geometry), f"layer {mask_layer.name!r}")
    locations, regions = (_source_data(layer, geometry) for layer in (locations_layer, regions_layer))
    result = yield from iter_detect(subject, model, device=device, locations=locations, regions=regions)
    return Detection(result, geometry)


def lesions_layer_name(subject_name: str) -> str:
    return layer_name(subject_name, "detection")


def data_checksum(data) -> int:
    """A checksum of a layer's data (to tell whether it was edited)."""
    return zlib.crc32(np.ascontiguousarray(data))


def edited_since_detection(layer) -> bool:
    """Whether a detection's labels layer was painted since the detection put it there."""
    info = layer.metadata.get("deepmir", {})
    return info.get("origin") == "detection" and info.get("checksum") != data_checksum(layer.data)


def _free_lesions_name(layers, name: str) -> str:
    """``name`` unless a layer of that name holds anything but an unedited detection, else ``name [2]``, ..."""
    candidate, n = name, 2
    while candidate in layers and not (
        layers[candidate].metadata.get("deepmir", {}).get("origin") == "detection"
        and not edited_since_detection(layers[candidate])
    ):
        candidate, n = f"{name} [{n}]", n + 1
    return candidate


def show_detection(viewer, detection: Detection, *, probabilities: bool = False) -> list:
    """Add the detection's layers: class labels, hidden lesion ids with the table, probabilities if asked.

    An unedited earlier detection of the subject is replaced; a layer with corrections is never
    overwritten: the new labels go to a new layer (``sub-X lesions [2]``), the last of the list."""
    name = _free_lesions_name(viewer.layers, lesions_layer_name(detection.subject.name))
    added = []
    if probabilities:
        for value in (CMB, IRON):
            probability = detection.result.probabilities[value]
            data, kwargs, kind = probability_layer_data(probability, detection.geometry, class_value=value)
            kwargs["name"] = layer_name(detection.subject.name, kwargs["name"])
            added.append(add_layer(viewer, (data, kwargs, kind)))
    added.append(show_lesion_ids(viewer, detection.measurement, name=f"{name} ids"))
    data, kwargs, kind = labels_layer_data(
        detection.result.labels, detection.geometry, name=name, metadata={"origin": "detection"}
    )
    kwargs["metadata"]["deepmir"]["checksum"] = data_checksum(data)
    added.append(add_layer(viewer, (data, kwargs, kind)))
    return added
