"""A blinded labelling session in a real viewer shows the images and the rater's annotation, no other verdict."""

import numpy as np
from napari.layers import Labels

from napari_deepmir.lesions.candidates import BLINDED_CAP, USEFUL_SCORE_SHARE, find_candidates

SAMPLE = "sub-sample"


def _visible_verdicts(viewer, annotation) -> list[str]:
    """Names of the visible layers a blinded rater must not see: Labels layers other than the annotation,
    and probability maps."""
    return [
        layer.name
        for layer in viewer.layers
        if layer.visible
        and layer != annotation
        and (isinstance(layer, Labels) or layer.metadata.get("deepmir", {}).get("kind") == "probability")
    ]


def _dock(viewer, widget):
    from napari._qt.widgets.qt_viewer_dock_widget import QtViewerDockWidget

    return next(d for d in viewer.window._qt_window.findChildren(QtViewerDockWidget) if d.widget() is widget)


def _sample_with_a_detection(viewer):
    """The sample opened as a user does, plus a detection's labels and probability maps on its SWI grid."""
    from napari_deepmir.layer_data import labels_layer_data, probability_layer_data
    from napari_deepmir.widgets._layers import add_layer, geometry_of

    viewer.open_sample("napari-deepmir", "synthetic_subject")
    truth = viewer.layers[f"{SAMPLE} true lesions"]
    geometry = geometry_of(truth)
    labels = geometry.from_display(np.asarray(truth.data))
    add_layer(viewer, labels_layer_data(labels, geometry, name=f"{SAMPLE} lesions", metadata={"origin": "detection"}))
    for value in (1, 2):
        probability = (labels == value).astype(np.float32)
        add_layer(viewer, probability_layer_data(probability, geometry, class_value=value))
    return truth


def test_a_blinded_session_hides_every_other_verdict_while_it_runs_and_shows_it_again_after(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer(show=True)
    truth = _sample_with_a_detection(viewer)
    locations = viewer.layers[f"{SAMPLE} locations"]
    shown_before = {layer.name for layer in viewer.layers if layer.visible}
    assert {truth.name, f"{SAMPLE} lesions"} <= shown_before and not locations.visible
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.folder_edit.value = tmp_path / "annotations"
    widget.blinded_check.value = True
    widget.start_button.click()

    annotation = widget.layer
    assert annotation.visible and _visible_verdicts(viewer, annotation) == []
    note = widget.mode_label.text()
    assert "stays blinded" in note and truth.name in note and f"{SAMPLE} lesions" in note  # it says what it hid

    truth.visible = True  # the rater ticks the truth's eye: it stays hidden while the session runs
    viewer.add_labels(np.zeros(annotation.data.shape, np.uint8), name="another rater")  # or opens other labels
    assert _visible_verdicts(viewer, annotation) == []
    assert "another rater" in widget.mode_label.text()

    widget.find_button.click()  # a blinded pass: candidates listed, reviewed, nothing comes back
    qtbot.waitUntil(lambda: widget.session.candidates is not None and widget.find_button.isEnabled(), timeout=60_000)
    blinded = widget.session.candidates  # the useful list only: capped, without the noise at the ranked list's end
    ranked = find_candidates(widget.subject, locations=widget.locations)
    useful = ranked[ranked["score"] >= USEFUL_SCORE_SHARE * ranked["score"].max()]
    assert len(blinded) == min(len(useful), BLINDED_CAP) < len(ranked)
    assert np.allclose(np.sort(blinded["x_mm"]), np.sort(useful["x_mm"].head(BLINDED_CAP)))
    assert f"{len(blinded)} of {len(ranked)} candidates" in widget.status_label.text()
    assert "useful list" in widget.status_label.text()
    widget.next()
    widget.accept(1)
    assert _visible_verdicts(viewer, annotation) == []

    _dock(viewer, widget).title.close_button.click()  # the session ends with its panel: what it hid is shown again
    shown_after = {layer.name for layer in viewer.layers if layer.visible}
    assert shown_before | {"another rater"} <= shown_after and not locations.visible


def test_an_unblinded_session_leaves_the_layers_as_they_are(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    truth = _sample_with_a_detection(viewer)
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.folder_edit.value = tmp_path / "annotations"
    widget.start_button.click()
    assert truth.visible and viewer.layers[f"{SAMPLE} lesions"].visible and "Hidden" not in widget.mode_label.text()
