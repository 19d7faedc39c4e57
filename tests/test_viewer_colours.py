"""Labels layers look like their role: the truth as outlines, a detection filled and see-through, the rater's
annotation in its own tints, so layers over the same lesion stay apart."""

import numpy as np

from napari_deepmir.conventions import CLASS_COLORS, CMB, IRON


def _rgba(layer, value) -> np.ndarray:
    return np.asarray(layer.colormap.map(value)).ravel()


def test_truth_detection_and_annotation_look_different(make_napari_viewer, qtbot, tmp_path):
    from napari_deepmir.layer_data import labels_layer_data
    from napari_deepmir.widgets._layers import add_layer, geometry_of

    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")  # File > Open Sample
    truth = viewer.layers["sub-sample true lesions"]
    qtbot.waitUntil(lambda: truth.contour >= 1, timeout=5_000)  # outlined once shown
    geometry = geometry_of(truth)
    labels = geometry.from_display(np.asarray(truth.data))
    detection = add_layer(
        viewer, labels_layer_data(labels, geometry, name="sub-sample lesions", metadata={"origin": "detection"})
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.folder_edit.value = tmp_path / "annotations"
    widget.start_button.click()
    annotation = widget.layer

    assert truth.contour >= 1 and detection.contour == 0 and annotation.contour == 0  # outlines vs filled
    assert detection.opacity < annotation.opacity
    for value in (CMB, IRON):
        assert np.allclose(_rgba(detection, value)[:3], CLASS_COLORS[value][:3], atol=0.01)
        assert np.allclose(_rgba(truth, value)[:3], CLASS_COLORS[value][:3], atol=0.01)
        assert not np.allclose(_rgba(annotation, value)[:3], _rgba(detection, value)[:3], atol=0.1)
    button = widget.class_buttons[CMB].styleSheet()
    assert button.endswith("#ff8ccc")  # the class buttons show the annotation's colour
