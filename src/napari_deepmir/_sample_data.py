"""npe2 sample data: a synthetic subject with known lesions (File > Open Sample > Synthetic subject (T2, SWI, QSM,
true lesions)).

The subject is pre-made by ``scripts/make_sample_subject.py`` (the phantom, seeded) and shipped as
package data, so it opens in about a second; it reads like any subject folder.
"""

from pathlib import Path

from ._reader import read_paths
from .layer_data import LABEL_ROLE_STYLES, apply_role_contour, layer_name

SAMPLE_SUBJECT = "sub-sample"
SAMPLE_FOLDER = Path(__file__).parent / "sample" / SAMPLE_SUBJECT


def make_synthetic_subject() -> list[tuple]:
    """T2, QSM (hidden), SWI on top, the location map and the true labels of the shipped synthetic subject."""
    layers = read_paths(SAMPLE_FOLDER)  # with the wait cursor: reading takes a second or two
    for _, kwargs, _ in layers:
        if kwargs["name"] == layer_name(SAMPLE_SUBJECT, "labels"):
            kwargs["name"] = layer_name(SAMPLE_SUBJECT, "truth")
            kwargs["metadata"]["deepmir"]["origin"] = "truth"
            kwargs.update(LABEL_ROLE_STYLES["truth"])
    _outline_the_truth_once_shown()
    return layers


def _outline_the_truth_once_shown() -> None:
    """Draw the true lesions as outlines once napari has added the layers (a layer tuple cannot set ``contour``),
    so a detection or an annotation over them shows through."""
    from qtpy.QtCore import QCoreApplication, QTimer

    if QCoreApplication.instance() is None:
        return
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        QTimer.singleShot(0, lambda: [apply_role_contour(layer) for layer in viewer.layers])
