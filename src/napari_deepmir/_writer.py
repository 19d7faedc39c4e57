"""npe2 writers: an Image or Labels layer -> NIfTI on its source grid with the source affine (exact round trip).

napari's save dialog preselects the first writer npe2 lists for the selected layers, and npe2 lists
writers in the order plugins registered: napari's TIFF writers first, which refuse ``x.nii.gz``. When
this plugin activates (its reader, a widget or the sample data is used), :func:`list_writers_first`
(called from :mod:`._activate`) lists its writers first, and they hand a name with another extension
to the writer napari picks for that extension: with the preselected filter, the typed name decides the format.
"""

from pathlib import Path

import numpy as np

from .io import save_labels, save_nifti
from .io.display import REVERSE_AXES, DisplayGeometry
from .io.nifti import is_nifti_path

PLUGIN_NAME = "napari-deepmir"


def write_image(path: str, data, meta: dict) -> list[str]:
    """Write a 3D Image layer as NIfTI (its values and dtype unchanged)."""
    return _write(path, data, meta, "image", save_nifti)


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a 3D Labels layer as uint8 NIfTI."""
    return _write(path, data, meta, "labels", save_labels)


def list_writers_first() -> None:
    """List this plugin's NIfTI writers before napari's own, so the save dialog preselects them."""
    import npe2

    index = npe2.PluginManager.instance()._contrib  # npe2 offers no public way to order writers
    ours = [entry for entry in index._writers if entry[-1].plugin_name == PLUGIN_NAME]
    index._writers = ours + [entry for entry in index._writers if entry[-1].plugin_name != PLUGIN_NAME]


def _write(path: str, data, meta: dict, layer_type: str, save) -> list[str]:
    if not is_nifti_path(path):
        if Path(path).suffix:  # another format asked for by name: napari's writer for it
            import npe2

            return npe2.write(path, [(data, meta, layer_type)])
        path += ".nii.gz"
    array, affine = source_grid(data, meta, layer_type)
    save(path, array, affine)
    return [path]


def source_grid(data, meta: dict, layer_type: str) -> tuple[np.ndarray, np.ndarray]:
    """A layer's data and state -> (array on its file grid, voxel -> scanner RAS affine).

    A layer made by this plugin goes back onto its source grid with the source affine; any other
    3D layer keeps its voxels, with napari's data -> world transform turned into NIfTI's (x, y, z).
    """
    if meta.get("multiscale") or meta.get("rgb") or np.ndim(data) != 3:
        raise ValueError(f"cannot write {layer_type} layer {meta.get('name')!r} as NIfTI: it is not one 3D volume")
    data = np.asarray(data)
    metadata = meta.get("metadata") or {}
    if "deepmir" in metadata:
        geometry = DisplayGeometry.from_metadata(metadata)
        return geometry.from_display(data), geometry.affine
    from napari.utils.transforms import Affine

    data_to_physical = Affine(
        scale=meta.get("scale", (1.0,) * 3),
        translate=meta.get("translate", (0.0,) * 3),
        rotate=meta.get("rotate"),
        shear=meta.get("shear"),
        ndim=3,
    )
    data_to_world = np.asarray(meta.get("affine", np.eye(4)), dtype=float) @ data_to_physical.affine_matrix
    return data.transpose(2, 1, 0), REVERSE_AXES @ data_to_world @ REVERSE_AXES
