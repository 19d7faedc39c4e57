"""The Fine-tune widget in a real viewer: annotations from layers and folders, live plot, Stop keeps the
best model, the base model is untouched, the new model is registered and detects."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication, QLineEdit
from training_scenes import TINY, write_blob_subject

from napari_deepmir.detection.pipeline import predict_subject
from napari_deepmir.io import load_subject_dir
from napari_deepmir.model.files import load_model, model_sha256
from napari_deepmir.model.registry import register_model, user_models_dir
from napari_deepmir.training.common import TrainingConfig
from napari_deepmir.training.trainer import train
from napari_deepmir.widgets._model_inputs import select_model
from napari_deepmir.widgets.detect import DetectWidget
from napari_deepmir.widgets.finetune import FinetuneWidget

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotated")
    return [write_blob_subject(root, i, domain="faint") for i in range(3)]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, subjects):
    out = tmp_path_factory.mktemp("base") / "tiny-base"
    train(TrainingConfig(out=out, data=[subjects[1].parent], steps=20, val_share=0.0, lr=3e-3, **TINY))
    return out


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _open_subject(viewer, folder):
    viewer.open(str(folder), plugin="napari-deepmir")
    return viewer.layers[f"{folder.name} labels"]


def test_finetune_in_the_viewer_registers_a_model_that_detects_and_stop_keeps_the_best(
    make_napari_viewer, qtbot, subjects, base_model
):
    viewer = make_napari_viewer()
    annotation = _open_subject(viewer, subjects[0])
    detect = DetectWidget(viewer)
    viewer.window.add_dock_widget(detect, name="Detect lesions")
    register_model(base_model)
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    assert [layer.name for layer in widget.annotations.choices] == [annotation.name]
    assert widget.annotations.value == [annotation]  # selected for training by default
    widget.add_folder(subjects[1])
    widget.add_folder(subjects[2])
    select_model(widget.base_box, base_model)
    widget.name_edit.value = "tuned-in-viewer"
    widget.steps_box.value = 400
    widget.val_box.value = 0.34
    widget.device_box.value = "cpu"
    base_before = _digest(base_model)

    widget.start_button.click()
    assert widget.start_button.text() == "Stop"
    qtbot.waitUntil(lambda: widget.progress.value() >= 12, timeout=TIMEOUT_MS)
    assert viewer.layers  # the viewer answers while training runs
    widget.start_button.click()  # Stop
    assert widget.status_label.text().startswith("Stopping: waiting for")  # says what it waits for
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)

    assert widget.start_button.text() == "Start"
    result = widget.result
    assert result is not None and result.stopped_early and result.steps_run < 400
    assert len(widget.plot.losses) == result.steps_run and widget.plot.scores  # loss and the first validation plotted
    assert _digest(base_model) == base_before
    tuned = load_model(result.model_path, "cpu")
    assert result.model_path.parent == user_models_dir()
    assert tuned.card.parent["sha256"] == model_sha256(base_model)
    assert tuned.card.metrics["validation_before"] is not None
    assert "tuned-in-viewer" in [detect.model_box.native.itemText(i) for i in range(detect.model_box.native.count())]
    assert "validation" in widget.status_label.text()
    prediction = predict_subject(load_subject_dir(subjects[2]), tuned, device="cpu")
    assert set(np.unique(prediction.labels).tolist()) <= {0, 1, 2}


def test_an_annotation_without_its_swi_is_refused_by_name(make_napari_viewer, subjects, base_model):
    viewer = make_napari_viewer()
    annotation = _open_subject(viewer, subjects[0])
    viewer.layers.remove(f"{subjects[0].name} SWI")
    widget = FinetuneWidget(viewer)
    widget.start()
    assert widget.worker is None
    assert annotation.name in widget.status_label.text() and "SWI" in widget.status_label.text()
    assert not any(user_models_dir().glob("*-ft-*"))


def test_the_loss_plot_follows_napari_theme(make_napari_viewer):
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    for theme in ("light", "dark"):
        viewer.theme = theme
        assert to_hex(widget.plot.figure.get_facecolor()) == get_theme(theme).background.as_hex()


def test_stop_during_a_validation_abandons_it_and_writes_nothing(make_napari_viewer, qtbot, subjects, base_model):
    """Stop does not wait for the base model to predict every validation volume: the validation is abandoned
    within a batch of slices, no model is written and the base is untouched."""
    viewer = make_napari_viewer()
    _open_subject(viewer, subjects[0])
    base = register_model(base_model).path
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    for folder in subjects[1:]:
        widget.add_folder(folder)
    select_model(widget.base_box, base)
    widget.name_edit.value = "never-written"
    widget.val_box.value = 0.5
    widget.device_box.value = "cpu"
    base_before = _digest(base_model)
    widget.start_button.click()
    widget.start_button.click()  # Stop, while the base model is still measured on the validation subjects
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.result is not None and widget.result.model_path is None and widget.result.steps_run == 0
    assert widget.status_label.text().startswith("Stopped before the first step")
    assert not (user_models_dir() / "never-written").exists() and _digest(base_model) == base_before
    assert not widget.plot.losses


def test_only_annotations_with_a_lesion_are_offered(make_napari_viewer, qtbot, subjects, tmp_path):
    viewer = make_napari_viewer()
    labels = _open_subject(viewer, subjects[0])
    _, labelling = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    labelling.folder_edit.value = tmp_path / "annotations"
    labelling.start_button.click()  # a new, empty annotation layer
    annotation = labelling.layer
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    assert widget.annotations.choices == (labels,) and widget.annotations.value == [labels]
    annotation.paint(tuple(s // 2 for s in annotation.data.shape), 1)  # a first lesion painted: offered, ticked
    qtbot.waitUntil(lambda: annotation in widget.annotations.choices, timeout=5_000)
    assert annotation in widget.annotations.value


def test_without_validation_subjects_it_says_so_and_names_what_runs_after_the_last_step(
    make_napari_viewer, qtbot, subjects, base_model
):
    viewer = make_napari_viewer()
    _open_subject(viewer, subjects[0])
    base = register_model(base_model).path
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    select_model(widget.base_box, base)
    widget.name_edit.value = "no-validation"
    widget.steps_box.value = 10
    widget.val_box.value = 0.0
    widget.device_box.value = "cpu"
    widget.start_button.click()
    assert widget.status_label.text().startswith("No validation subjects")
    seen = {}

    def on_report(report):
        if report.step == widget.steps_box.value:  # the last step: what runs now is named, Stop says what it waits for
            seen["after"], seen["busy"] = widget.status_label.text(), widget.progress.maximum() == 0
            widget.start_button.click()
            seen["stop"] = widget.status_label.text()

    widget.worker.yielded.connect(on_report)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert seen["after"] == "Step 10 of 10 done: saving the best model…" and seen["busy"]
    assert "step 11" not in seen["stop"] and "saving the best model" in seen["stop"]
    assert widget.result.model_path is not None and widget.result.steps_run == 10
    assert "no validation subjects" in widget.status_label.text()


def test_a_saved_subject_field_is_wide_enough_for_its_folder_name(make_napari_viewer, subjects):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")  # alone, as from the menu
    for folder in subjects[:2]:
        widget.add_folder(folder)
    QApplication.processEvents()

    fields = widget.folders.native.findChildren(QLineEdit)
    assert len(fields) == 2
    for field in fields:  # beside the label column and a "Choose directory" button they once showed "b-001"
        assert field.width() >= field.fontMetrics().horizontalAdvance(Path(field.text()).name), field.text()
