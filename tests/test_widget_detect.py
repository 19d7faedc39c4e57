"""The Detect lesions widget in a real viewer with a tiny real model: result layers, progress, cancel, messages."""

import numpy as np
import pytest
from conftest import oblique_affine
from lesion_scenes import SPACING, scene, world_of

from napari_deepmir.io import Subject
from napari_deepmir.io.display import DisplayGeometry
from napari_deepmir.layer_data import image_layer_data
from napari_deepmir.lesions.measure import count_summary
from napari_deepmir.widgets._layers import add_layer
from napari_deepmir.widgets._lesions import detect_in_layers

WORKER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two tiny untrained DEEPMIR models saved as model files: SWI+QSM, and SWI+QSM+T2."""
    import torch

    from napari_deepmir.model.card import ModelCard
    from napari_deepmir.model.files import save_model
    from napari_deepmir.model.unet import DeepmirUNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, modalities in (("tiny-swi-qsm", ["swi", "qsm"]), ("tiny-all", ["swi", "qsm", "t2"])):
        architecture = {"base_filters": 4, "depth": 3, "context_slices": 0}
        card = ModelCard(name=name, modalities=modalities, architecture=architecture)
        network = DeepmirUNet(card.in_channels, card.n_classes, base_filters=4, depth=3)
        paths[name] = save_model(folder / name, network, card)
    return paths


@pytest.fixture(scope="module")
def synthetic_subject():
    """A small synthetic subject: an ellipsoidal brain with three paramagnetic spheres, on an oblique grid."""
    affine = oblique_affine(SPACING)
    centres = {(20, 22, 8): 2.5, (44, 40, 15): 3.0, (30, 46, 11): 4.0}  # voxel index: radius mm
    spheres = [(world_of(affine, ijk), radius, 300.0) for ijk, radius in centres.items()]
    swi, qsm, _, affine = scene(spheres, affine=affine)
    return Subject(swi=swi, affine=affine, qsm=qsm, name="sub-tiny")


def _add_subject(viewer, subject):
    geometry = DisplayGeometry(subject.swi.shape, subject.affine)
    swi = add_layer(viewer, image_layer_data(subject.swi, geometry, modality="swi", name="sub-tiny SWI"))
    add_layer(viewer, image_layer_data(subject.qsm, geometry, modality="qsm", name="sub-tiny QSM"))
    return swi


def _widget(make_napari_viewer, tiny_models, model="tiny-swi-qsm"):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    widget.add_model(tiny_models[model])
    assert widget.model_entry.name == model
    return viewer, widget


def test_detection_adds_labels_on_the_swi_grid(make_napari_viewer, qtbot, tiny_models, synthetic_subject):
    viewer, widget = _widget(make_napari_viewer, tiny_models)
    swi = _add_subject(viewer, synthetic_subject)
    assert widget.inputs.layers["swi"] == swi  # pre-filled from the layer metadata
    assert widget.inputs.layers["qsm"].name == "sub-tiny QSM"
    widget.device_box.value = "cpu"
    widget.probabilities_check.value = True
    progress = []
    widget.run()
    assert widget.run_button.text() == "Cancel"
    widget.worker.yielded.connect(progress.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert widget.run_button.text() == "Run"
    assert progress and progress[-1][0] == progress[-1][1]  # the last batch reports every slice done
    assert widget.progress.value() == widget.progress.maximum() > 0

    layer = viewer.layers["sub-tiny lesions"]
    assert layer.data.shape == swi.data.shape and set(np.unique(layer.data)) <= {0, 1, 2}
    assert np.allclose(layer.affine.affine_matrix, swi.affine.affine_matrix)
    assert np.allclose(layer.metadata["deepmir"]["affine"], synthetic_subject.affine)
    assert not np.allclose(layer.get_color(1), layer.get_color(2))
    for name in ("sub-tiny P(cerebral microbleed)", "sub-tiny P(iron deposit)"):
        probability = viewer.layers[name].data
        assert probability.shape == swi.data.shape and 0 <= probability.min() and probability.max() <= 1

    # The widget shows exactly what the plain function computes (no Qt involved there).
    generator = detect_in_layers(swi, viewer.layers["sub-tiny QSM"], model=tiny_models["tiny-swi-qsm"], device="cpu")
    try:
        while True:
            next(generator)
    except StopIteration as stop:
        detection = stop.value
    assert np.array_equal(detection.geometry.to_display(detection.result.labels), layer.data)
    table = detection.measurement.table
    ids = viewer.layers["sub-tiny lesions ids"]
    assert len(ids.features) == len(table) + 1 and not ids.visible  # one row per lesion plus the background
    assert (
        widget.status_label.text() == f"sub-tiny: {count_summary(table)} (model tiny-swi-qsm: chosen in the Model list)"
    )


def test_cancel_leaves_no_result_and_run_comes_back(make_napari_viewer, qtbot, tiny_models):
    viewer, widget = _widget(make_napari_viewer, tiny_models)
    rng = np.random.default_rng(0)
    geometry = DisplayGeometry((64, 64, 400), np.diag([1.0, 1.0, 1.0, 1.0]))  # 50 batches of 8 slices
    for modality, mean, sd in (("swi", 100, 5), ("qsm", 0, 20)):
        data = rng.normal(mean, sd, geometry.shape).astype(np.float32)
        add_layer(viewer, image_layer_data(data, geometry, modality=modality, name=f"long {modality.upper()}"))
    widget.device_box.value = "cpu"
    widget.run()
    progress = []
    widget.worker.yielded.connect(progress.append)
    widget.worker.yielded.connect(lambda _: widget.cancel())  # cancel once the prediction is under way
    with qtbot.waitSignal(widget.worker.aborted, timeout=WORKER_TIMEOUT_MS):
        pass
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert progress and progress[-1][0] < progress[-1][1]
    assert widget.run_button.text() == "Run" and widget.status_label.text() == "Cancelled."
    assert [layer.name for layer in viewer.layers] == ["long SWI", "long QSM"]


def test_missing_modality_gives_a_message_and_runs_nothing(make_napari_viewer, qtbot, tiny_models, synthetic_subject):
    viewer, widget = _widget(make_napari_viewer, tiny_models, model="tiny-all")
    _add_subject(viewer, synthetic_subject)
    assert widget.missing_modalities() == ["t2"]
    assert "needs SWI+QSM+T2" in widget.status_label.text() and "T2 layer" in widget.status_label.text()
    widget.run()
    assert widget.worker is None and widget.run_button.text() == "Run"
    assert "sub-tiny lesions" not in viewer.layers
    widget.inputs.pickers["t2"].value = viewer.layers["sub-tiny SWI"]
    assert widget.missing_modalities() == []
    assert widget.status_label.text() == "Model tiny-all: chosen in the Model list."


def test_models_registered_elsewhere_appear_on_refresh(make_napari_viewer, tiny_models):
    from napari_deepmir.model.registry import list_models, register_model
    from napari_deepmir.widgets._model_inputs import AUTOMATIC

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    names = [widget.model_box.native.itemText(i) for i in range(widget.model_box.native.count())]
    assert "tiny-all" not in names
    register_model(tiny_models["tiny-all"])  # as the fine-tuning widget does
    widget.refresh_models()
    names = [widget.model_box.native.itemText(i) for i in range(widget.model_box.native.count())]
    assert names == [AUTOMATIC] + [entry.name for entry in list_models()] and "tiny-all" in names


def test_errors_are_reported_and_the_viewer_keeps_going(
    make_napari_viewer, qtbot, tiny_models, synthetic_subject, tmp_path
):
    import shutil

    viewer, widget = _widget(make_napari_viewer, tiny_models)
    _add_subject(viewer, synthetic_subject)
    widget.add_model(tmp_path / "nowhere")
    assert "model not found" in widget.status_label.text() and widget.model_entry.name == "tiny-swi-qsm"
    broken = shutil.copytree(tiny_models["tiny-swi-qsm"], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    widget.add_model(broken)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    message = widget.status_label.text()
    assert message.startswith("Detection failed:") and "model.safetensors" in message  # names the file
    assert widget.run_button.text() == "Run" and "sub-tiny lesions" not in viewer.layers


def test_a_brain_mask_layer_bounds_the_detection_and_is_recorded(
    make_napari_viewer, qtbot, tiny_models, synthetic_subject, tmp_path
):
    import json

    viewer, widget = _widget(make_napari_viewer, tiny_models)
    _add_subject(viewer, synthetic_subject)
    geometry = DisplayGeometry(synthetic_subject.shape, synthetic_subject.affine)
    half = np.zeros(synthetic_subject.shape, np.uint8)
    half[: synthetic_subject.shape[0] // 2] = 1  # the user's mask: one half of the grid
    mask = viewer.add_labels(
        geometry.to_display(half), affine=geometry.display_affine, name="sub-tiny brain", units=("mm",) * 3
    )
    assert [layer.name for layer in widget.inputs.mask_picker.choices if layer is not None] == ["sub-tiny brain"]
    assert widget.inputs.mask_layer is None  # estimated unless chosen
    widget.inputs.mask_picker.value = mask
    widget.device_box.value = "cpu"
    _run(widget, qtbot)
    subject = widget.detection.subject
    assert np.array_equal(subject.whole_brain, half.astype(bool)) and not subject.mask[~half.astype(bool)].any()
    assert not viewer.layers["sub-tiny lesions"].data[geometry.to_display(half) == 0].any()
    assert viewer.layers["sub-tiny lesions"] not in widget.inputs.mask_picker.choices  # results are no mask
    widget.save_results(tmp_path)
    provenance = json.loads(next(tmp_path.glob("*_dseg.json")).read_text())
    assert provenance["BrainMask"] == "layer 'sub-tiny brain'"

    mask.data = np.ones((4, 4, 4), np.uint8)  # not on the SWI grid: refused, naming the layer
    _run(widget, qtbot)
    assert widget.status_label.text().startswith("Detection failed: layer 'sub-tiny brain': the brain mask")


def _run(widget, qtbot):
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)


def test_a_rerun_keeps_corrections_and_finetune_offers_only_corrected_detections(
    make_napari_viewer, qtbot, tiny_models, synthetic_subject
):
    viewer, widget = _widget(make_napari_viewer, tiny_models)
    _add_subject(viewer, synthetic_subject)
    _, finetune = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    widget.device_box.value = "cpu"
    _run(widget, qtbot)
    layer = viewer.layers["sub-tiny lesions"]
    assert not finetune.annotations.choices  # a raw detection would teach the model nothing
    _run(widget, qtbot)  # nothing edited: the detection is simply replaced
    assert [la.name for la in viewer.layers if la.name.startswith("sub-tiny lesions")] == [
        "sub-tiny lesions ids",
        "sub-tiny lesions",
    ]

    layer.paint((10, 30, 30), 1 if layer.data[10, 30, 30] != 1 else 2)  # the rater's correction
    corrected = np.asarray(layer.data).copy()
    qtbot.waitUntil(lambda: len(finetune.annotations.choices) == 1)  # now a correction: offered for training
    assert finetune.annotations.value == [layer]  # and selected
    _run(widget, qtbot)
    assert np.array_equal(layer.data, corrected)  # the correction is still there
    assert "sub-tiny lesions [2]" in viewer.layers and "'sub-tiny lesions [2]'" in widget.status_label.text()


def test_the_status_line_keeps_the_last_result(make_napari_viewer, qtbot, tiny_models, synthetic_subject):
    viewer, widget = _widget(lambda: make_napari_viewer(show=True), tiny_models)
    _add_subject(viewer, synthetic_subject)
    widget.device_box.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    result = widget.status_label.text()
    assert result.startswith("sub-tiny: ")
    viewer.add_points([[0, 0, 0]], name="a note")  # unrelated events: a layer added, the panel hidden and shown
    viewer.layers["sub-tiny lesions"].name = "renamed"
    dock = widget.parentWidget()
    dock.hide()
    dock.show()
    assert widget.status_label.text() == result
    widget.add_model(tiny_models["tiny-all"])  # a problem replaces the result at once: this model needs a T2
    assert "needs SWI+QSM+T2" in widget.status_label.text()
