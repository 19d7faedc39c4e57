"""Between napari layers and the core: geometry, subjects from layers, adding layers, moving the camera."""

import math

import numpy as np

from ..io import Subject, Volume, assemble_subject
from ..io.bids import suffixes_read
from ..io.display import DisplayGeometry
from ..io.qsm_units import from_ppb
from ..layer_data import apply_role_contour

#: Words in a layer name that tell its modality, when its metadata does not.
_NAME_HINTS = {"swi": ("swi",), "qsm": ("qsm", "chimap", "chi"), "t2": ("t2",)}


def geometry_of(layer) -> DisplayGeometry:
    """The source grid of a layer: from this plugin's metadata, else from the layer's own affine."""
    if "deepmir" in layer.metadata:
        return DisplayGeometry.from_metadata(layer.metadata)
    reverse = np.eye(4)[[2, 1, 0, 3]]
    affine = np.asarray(layer.affine.affine_matrix) @ np.diag([*layer.scale, 1.0])
    affine[:3, 3] = np.asarray(layer.affine.affine_matrix)[:3, 3] + np.asarray(layer.translate)
    return DisplayGeometry(tuple(layer.data.shape[::-1]), reverse @ affine @ reverse)


def modality_of(layer) -> str | None:
    """``swi``, ``qsm``, ``t2`` from layer metadata or name, else None."""
    modality = layer.metadata.get("deepmir", {}).get("modality")
    if modality:
        return modality
    name = layer.name.lower()
    return next((m for m, hints in _NAME_HINTS.items() if any(h in name for h in hints)), None)


def volume_of(layer) -> Volume:
    """A layer's data back on its source grid, with its source affine."""
    geometry = geometry_of(layer)
    data = geometry.from_display(np.asarray(layer.data))
    path = layer.metadata.get("deepmir", {}).get("path")
    return Volume(data=np.asarray(data, dtype=np.float32), affine=geometry.affine, path=path)


def _subject_name(swi_layer_name: str) -> str:
    """``sub-01`` from an SWI layer named ``sub-01 SWI``, ``sub-01_rec-swi_T2starw`` or ``sub-01_swi``."""
    name = swi_layer_name.replace(" SWI", "")
    for suffix in suffixes_read("swi"):
        name = name.replace(f"_{suffix}", "")
    return name


def subject_from_layers(
    swi_layer, qsm_layer=None, t2_layer=None, *, name: str | None = None, qsm_units: str = "auto"
) -> Subject:
    """A Subject on the SWI layer's grid, with the scan parameters the reader found in the SWI's sidecar.

    ``qsm_units``: ``auto`` takes the QSM as read (this plugin's QSM layers are in ppb already; other layers'
    units are detected); ``ppm``, ``ppb`` or ``si`` say what the QSM *file* held, overriding what the reader
    took (its values are converted back first) or, for other layers, what the values shown are."""
    qsm, units = None, qsm_units
    if qsm_layer is not None:
        qsm = volume_of(qsm_layer)
        info = qsm_layer.metadata.get("deepmir")
        if info is not None and qsm_units == "auto":
            units = "ppb"
        elif info is not None and info.get("qsm_units_in_file"):
            qsm.data = from_ppb(qsm.data, info["qsm_units_in_file"])
    subject = assemble_subject(
        volume_of(swi_layer),
        qsm=qsm,
        t2=None if t2_layer is None else volume_of(t2_layer),
        qsm_units=units,
        name=name or _subject_name(swi_layer.name),
    )
    subject.scan = dict(swi_layer.metadata.get("deepmir", {}).get("scan", {}))
    return subject


def add_layer(viewer, layer_data: tuple, *, replace: bool = True):
    """Add a (data, kwargs, type) tuple from :mod:`napari_deepmir.layer_data`; reuse a layer of that name."""
    data, kwargs, layer_type = layer_data
    name = kwargs["name"]
    if replace and name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata = kwargs["metadata"]
        if "features" in kwargs:
            layer.features = kwargs["features"]
        return layer
    layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    apply_role_contour(layer)
    return layer


def camera_of(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def centre_on(viewer, xyz_mm, *, zoom: float | None = 4.0) -> None:
    """Move the viewer to a scanner RAS point: the axial slice through it, camera centred, zoomed."""
    zyx = np.asarray(xyz_mm, dtype=float)[::-1]
    viewer.dims.set_point(0, zyx[0])
    camera = camera_of(viewer)
    camera.center = tuple(zyx[-2:]) if viewer.dims.ndisplay == 2 else tuple(zyx)
    if zoom is not None:
        camera.zoom = zoom


#: Name of the Points layer that rings the lesion or candidate under review.
MARKER_LAYER = "current lesion"
#: The ring leaves this gap around the lesion on each side: MARKER_GAP_SHARE of its diameter, at least
#: MARKER_GAP_MM; its line is MARKER_LINE_SHARE of the ring's diameter (thin: the lesion's rim stays in view).
MARKER_GAP_MM = 1.5
MARKER_GAP_SHARE = 0.3
MARKER_LINE_SHARE = 0.06


def marker_diameter_mm(lesion_diameter_mm: float) -> float:
    """The ring's outer diameter (mm) around a lesion of this diameter (NaN: a point)."""
    lesion = float(lesion_diameter_mm) if math.isfinite(lesion_diameter_mm) else 0.0
    return lesion + 2 * max(MARKER_GAP_MM, MARKER_GAP_SHARE * lesion)


def show_marker(viewer, xyz_mm, *, grid, lesion_diameter_mm: float = math.nan) -> None:
    """Ring a scanner RAS point with a thin yellow circle sized to the lesion, on the axial slice shown (call after
    :func:`centre_on`): a Points layer whose steps are those of the layer ``grid`` (napari's ``extent.step``), so
    the slice slider keeps the grid's slices; added once; the active layer stays active."""
    zyx = np.asarray(xyz_mm, dtype=float)[::-1].copy()
    zyx[0] = viewer.dims.point[0]  # on the shown slice (the dims snap to slices), so the ring is drawn
    step = np.abs(np.asarray(grid.extent.step, dtype=float)[-3:])
    point = zyx / step  # no rotation: the ring lies exactly where it is asked, on the slice shown
    size = marker_diameter_mm(lesion_diameter_mm) / float(np.mean(step[-2:]))
    if MARKER_LAYER in viewer.layers:
        marker = viewer.layers[MARKER_LAYER]
        marker.scale = step
        marker.data = point[None]
        marker.size = size
        return
    active = viewer.layers.selection.active
    viewer.add_points(
        point[None],
        name=MARKER_LAYER,
        symbol="disc",
        size=size,
        face_color="transparent",
        border_color="yellow",
        border_width=MARKER_LINE_SHARE,
        border_width_is_relative=True,
        out_of_slice_display=False,
        units=grid.units[-3:],
        scale=step,
    )
    if active is not None:
        viewer.layers.selection.active = active
