"""Layer pickers opened from the plugin menu: they follow the data as it comes, keep one subject's
layers together, follow renames, refuse a mix of subjects; Fine-tune pairs each annotation with its subject."""

import numpy as np
import pytest
from training_scenes import write_blob_subject

from napari_deepmir.io import load_subject_dir


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """Two subjects on the same grid (so only the subject tells their layers apart)."""
    root = tmp_path_factory.mktemp("two-subjects")
    return [write_blob_subject(root, i) for i in (1, 2)]


def _names(inputs) -> dict:
    return {m: None if layer is None else layer.name for m, layer in inputs.layers.items()}


def _subject_names(folder) -> dict:
    return {m: f"{folder.name} {m.upper()}" for m in ("swi", "qsm", "t2")}


def test_pickers_take_one_subjects_layers_and_follow_the_viewer(make_napari_viewer, two_subjects):
    viewer = make_napari_viewer()
    _, detect = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    _, label = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    first, second = two_subjects
    viewer.open(str(first), plugin="napari-deepmir")  # the widgets were open before the data arrived
    for widget in (detect, label):
        assert _names(widget.inputs) == _subject_names(first)

    viewer.open(str(second), plugin="napari-deepmir")
    detect.inputs.pickers["swi"].value = viewer.layers[f"{second.name} SWI"]
    assert _names(detect.inputs) == _subject_names(second)  # choosing the SWI brings its subject's QSM and T2
    assert detect.status_label.text() == "Model deepmir-default-synthetic: the subject has SWI+QSM+T2."

    viewer.layers[f"{second.name} QSM"].name = "susceptibility"
    assert detect.inputs.pickers["qsm"].native.currentText() == "susceptibility"

    detect.inputs.pickers["t2"].value = viewer.layers[f"{first.name} T2"]  # a mix of subjects is refused
    assert "not of subject" in detect.status_label.text() and first.name in detect.status_label.text()
    detect.run()
    assert detect.worker is None and not any("lesions" in layer.name for layer in viewer.layers)
    label.inputs.pickers["qsm"].value = viewer.layers[f"{second.name} SWI"]
    label.start_button.click()
    assert label.session is None and "not of subject" in label.status_label.text()


def test_finetune_pairs_each_annotation_with_its_own_subject(make_napari_viewer, two_subjects):
    viewer = make_napari_viewer()
    first, second = two_subjects
    for folder in (first, second):
        viewer.open(str(folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    samples = {subject.name: subject for subject, _ in widget.settings().samples}
    assert set(samples) == {first.name, second.name}
    for folder in (first, second):
        on_disk = load_subject_dir(folder)
        assert np.allclose(samples[folder.name].qsm, on_disk.qsm) and np.allclose(samples[folder.name].t2, on_disk.t2)
