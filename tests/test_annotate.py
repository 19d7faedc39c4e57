"""Guided labelling in a real viewer: candidates by key, paint, autosave, close, reopen and resume."""

import json

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.bids import find_subject_files, find_subject_folders
from napari_deepmir.rating.store import AnnotationStore


@pytest.fixture(scope="module")
def subject_folder(tmp_path_factory):
    """A small synthetic subject (phantom) written to disk as BIDS-like NIfTI files."""
    from napari_deepmir.phantom import Acquisition, generate_cohort

    root = tmp_path_factory.mktemp("cohort")
    generate_cohort(root, 1, 3, Acquisition(shape=(96, 96, 24), voxel_mm=(1, 1, 2)))
    (folder,) = find_subject_folders(root)
    for path in folder.glob("*_dseg.nii.gz"):  # the truth labels are not the rater's
        if "_desc-" not in path.name:
            path.unlink()
    return folder


def _open(make_napari_viewer, folder, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.start_button.click()
    return viewer, widget


def _dock(viewer, widget):
    from napari._qt.widgets.qt_viewer_dock_widget import QtViewerDockWidget

    return next(d for d in viewer.window._qt_window.findChildren(QtViewerDockWidget) if d.widget() is widget)


def _press(viewer, qtbot, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, modifier)


def _find(widget, qtbot):
    widget.find_button.click()
    qtbot.waitUntil(lambda: widget.session.candidates is not None and widget.find_button.isEnabled(), timeout=60_000)
    return widget.session.candidates


def _saved_labels(widget):
    return np.asarray(nib.load(str(widget.session.labels_path)).dataobj)


def test_review_by_keys_autosaves_and_resumes_in_a_new_viewer(make_napari_viewer, qtbot, subject_folder):
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    candidates = _find(widget, qtbot)
    n = len(candidates)
    assert n >= 4 and widget.progress_label.text() == f"reviewed 0 / {n}"
    geometry, layer = widget.geometry, widget.layer
    assert layer.name == f"{subject_folder.name} annotation" and viewer.layers.selection.active == layer

    _press(viewer, qtbot, Qt.Key.Key_C)  # accept #1 as CMB
    _press(viewer, qtbot, Qt.Key.Key_I)  # accept #2 as iron deposit
    _press(viewer, qtbot, Qt.Key.Key_R)  # reject #3
    assert widget.progress_label.text() == f"reviewed 3 / {n}"
    assert widget.session.position == 3
    # the viewer jumped to candidate #4: its axial slice, camera centred on it
    x, y, z = candidates.loc[3, ["x_mm", "y_mm", "z_mm"]]
    assert viewer.dims.point[0] == pytest.approx(z, abs=geometry.spacing.max())
    assert np.allclose(viewer.scene.camera.center[-2:], (y, x))
    assert "suggested" in widget.guidance.text()
    _press(viewer, qtbot, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)  # back to #3
    assert widget.session.position == 2
    _press(viewer, qtbot, Qt.Key.Key_N)
    assert widget.session.position == 3

    from napari_deepmir.lesions.candidates import grow_region

    painted = geometry.from_display(np.asarray(layer.data))
    for index, value in ((0, 1), (1, 2)):
        region = grow_region(widget.subject, candidates.loc[index, ["seed_i", "seed_j", "seed_k"]].to_numpy(int))
        assert region.any() and np.all(painted[region] == value)
    assert set(np.unique(painted)) == {0, 1, 2}
    assert np.array_equal(_saved_labels(widget), painted)  # saved right after each decision

    # a lesion the detector missed, painted with the brush as iron deposit: autosaved after a pause
    _press(viewer, qtbot, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert layer.mode == "paint" and layer.selected_label == 2
    x, y, z = candidates.loc[n - 1, ["x_mm", "y_mm", "z_mm"]]
    layer.paint(np.round(layer.world_to_data((z, y, x))), 2)
    expected = geometry.from_display(np.asarray(layer.data))
    assert (expected == 2).sum() > (painted == 2).sum()
    qtbot.waitUntil(lambda: np.array_equal(_saved_labels(widget), expected), timeout=10_000)
    folder = widget.session.folder
    assert folder == subject_folder.parent / "derivatives" / "deepmir-annotations" / subject_folder.name
    viewer.window.remove_dock_widget("all")
    viewer.close()

    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    assert widget.session.folder == folder
    assert np.array_equal(geometry.from_display(np.asarray(widget.layer.data)), expected)  # voxel for voxel
    assert widget.session.position == 3 and widget.progress_label.text() == f"reviewed 3 / {n}"
    assert [d.decision for d in widget.session.decisions] == ["accepted-cmb", "accepted-iron", "rejected"]
    saved = json.loads(widget.session.decisions_path.read_text())
    assert saved["position"] == 3 and all(d["rater"] and d["time"] for d in saved["decisions"])
    assert widget.candidate_list.count() == n and widget.candidate_list.currentRow() == 3

    # the annotation root is a data folder for `deepmir finetune --data ROOT`
    root = folder.parent
    (annotated,) = find_subject_folders(root)
    files = find_subject_files(annotated)
    assert {"swi", "qsm", "t2", "labels"} <= set(files)
    subject = load_subject_dir(annotated)
    assert np.array_equal(np.asarray(nib.load(str(files["labels"])).dataobj), expected)
    assert subject.shape == expected.shape
    assert find_subject_folders(subject_folder.parent) == [subject_folder]  # the dataset still holds one subject


def test_undo_reverts_an_accept(make_napari_viewer, qtbot, subject_folder, tmp_path):
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = str(tmp_path / "annotations")
    widget.start_button.click()
    _find(widget, qtbot)
    before = np.asarray(widget.layer.data).copy()
    _press(viewer, qtbot, Qt.Key.Key_C)
    assert (np.asarray(widget.layer.data) == 1).sum() > (before == 1).sum()
    _press(viewer, qtbot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(np.asarray(widget.layer.data), before)
    widget.autosave()
    assert np.array_equal(_saved_labels(widget), widget.geometry.from_display(before))
    # the decision whose paint was undone is stale: shown as such, not counted or saved as accepted
    assert "stale" in widget.candidate_list.item(0).text() and widget.progress_label.text().startswith("reviewed 0 /")
    (saved,) = json.loads(widget.session.decisions_path.read_text())["decisions"]
    assert saved["decision"] == "accepted-cmb" and saved["stale"] is True


def test_review_keys_act_only_on_the_annotation_layer_and_go_with_the_dock(
    make_napari_viewer, qtbot, subject_folder, tmp_path
):
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = str(tmp_path / "annotations")
    widget.start_button.click()
    candidates = _find(widget, qtbot)
    marker = viewer.layers["current lesion"]  # a ring on the candidate under review
    ringed = lambda: marker.data_to_world(marker.data[0])
    assert np.allclose(ringed(), [viewer.dims.point[0], *candidates.loc[0, ["y_mm", "x_mm"]]])
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert ((shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)).any()  # the yellow ring is drawn
    swi = viewer.layers[f"{subject_folder.name} SWI"]
    for other, key in ((swi, Qt.Key.Key_C), (marker, Qt.Key.Key_R)):
        viewer.layers.selection.active = other
        _press(viewer, qtbot, key)
        assert widget.session.decisions == [] and widget.session.position == 0
    viewer.layers.selection.active = widget.layer
    _press(viewer, qtbot, Qt.Key.Key_C)
    assert len(widget.session.decisions) == 1 and widget.session.position == 1
    assert np.allclose(ringed(), [viewer.dims.point[0], *candidates.loc[1, ["y_mm", "x_mm"]]])

    layer = widget.layer
    _dock(viewer, widget).title.close_button.click()  # the user closes the panel
    viewer.layers.selection.active = layer
    _press(viewer, qtbot, Qt.Key.Key_C)
    assert len(widget.session.decisions) == 1 and widget.session.position == 1


def test_the_labelling_panel_fits_a_1000_pixel_high_screen(make_napari_viewer, qtbot, subject_folder):
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    viewer.window._qt_window.resize(1600, 1000)
    qtbot.wait(200)
    assert widget.minimumSizeHint().height() < 600  # what does not fit the height scrolls
    content = widget.scroll_area.widget()
    assert content.width() >= content.minimumSizeHint().width()  # nothing cut off at the side


def test_guidance_for_a_painted_lesion_under_the_cursor(make_napari_viewer, qtbot, subject_folder, tmp_path):
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = str(tmp_path / "annotations")
    widget.start_button.click()
    candidates = _find(widget, qtbot)
    _press(viewer, qtbot, Qt.Key.Key_C)
    x, y, z = candidates.loc[0, ["x_mm", "y_mm", "z_mm"]]
    viewer.cursor.position = (z, y, x)
    _press(viewer, qtbot, Qt.Key.Key_G)
    text = widget.guidance.text()
    assert "Painted cerebral microbleed" in text and "diameter" in text and "suggested" in text


def test_unreadable_sidecar_is_kept_aside_not_overwritten(subject_folder, tmp_path):
    subject = load_subject_dir(subject_folder)
    store = AnnotationStore(tmp_path)
    session = store.open(subject, rater="ann")
    session.save_labels(np.ones(subject.shape, np.uint8))
    session.decisions_path.write_text("{not json")
    with pytest.warns(UserWarning, match="kept aside"):
        reopened = store.open(subject)
    kept = list(session.folder.glob("*_decisions.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{not json"
    assert reopened.decisions == [] and reopened.labels.sum() == subject.swi.size  # labels still resumed
    reopened.set_position(0)
    assert kept[0].read_text() == "{not json" and json.loads(reopened.decisions_path.read_text())["position"] == 0


def test_model_probabilities_raise_candidates_when_asked(make_napari_viewer, qtbot, subject_folder, tmp_path):
    from napari_deepmir.layer_data import probability_layer_data
    from napari_deepmir.widgets._layers import add_layer

    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = str(tmp_path / "annotations")
    probability = np.zeros(widget.subject.shape, np.float32)
    for value in (1, 2):
        add_layer(viewer, probability_layer_data(probability, widget.geometry, class_value=value))
    widget.start_button.click()
    assert widget.use_model.enabled
    widget.use_model.value = True
    table = _find(widget, qtbot)
    assert table["probability_mean"].notna().all()


def test_unreadable_labels_are_kept_aside_and_the_rest_resumes(subject_folder, tmp_path):
    subject = load_subject_dir(subject_folder)
    store = AnnotationStore(tmp_path)
    session = store.open(subject, rater="ann")
    session.set_position(4)
    session.labels_path.write_bytes(b"not a nifti file")
    with pytest.warns(UserWarning, match="unreadable labels"):
        reopened = store.open(subject)
    assert reopened.position == 4 and reopened.rater == "ann" and not reopened.labels.any()
    assert [p.read_bytes() for p in session.folder.glob("*_dseg.nii.gz.corrupt-*")] == [b"not a nifti file"]


def test_annotations_saved_in_the_default_folder_leave_evaluate_and_training_discovery_working(
    make_napari_viewer, tmp_path
):
    """Annotations go to <dataset>/derivatives/deepmir-annotations: the dataset still has one label map and
    one subject per participant for `deepmir evaluate` and for training discovery."""
    import shutil

    from training_scenes import write_blob_subject

    from napari_deepmir.lesions.evaluate import evaluate
    from napari_deepmir.training.data import annotated_folders

    dataset = tmp_path / "dataset"
    subject = write_blob_subject(dataset, 1)
    viewer = make_napari_viewer()
    viewer.open(str(subject), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.start_button.click()  # no folder chosen: the default one
    widget.layer.paint((5, 20, 20), 1)
    widget.autosave()
    assert widget.session.labels_path.exists() and dataset / "derivatives" in widget.session.labels_path.parents
    assert annotated_folders([dataset]) == [subject]  # the annotation copy is not a second subject
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    shutil.copy(subject / f"{subject.name}_dseg.nii.gz", predictions / f"{subject.name}_dseg.nii.gz")
    assert evaluate(dataset, predictions)["subjects"] == [subject.name]  # one label map for the subject


def _texts(widget):
    return [widget.candidate_list.item(i).text() for i in range(widget.candidate_list.count())]


def test_certainty_and_reasons_by_keys_survive_a_restart_and_are_exported(
    make_napari_viewer, qtbot, subject_folder, tmp_path
):
    from napari_deepmir.io.derivatives import read_table

    alt = Qt.KeyboardModifier.AltModifier
    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = tmp_path / "annotations"
    widget.start_button.click()
    keys = widget.keys_label.text()
    assert "Alt+C" in keys and "microbleed, possible" in keys and "Alt+E" in keys and "reject: vein" in keys
    candidates = _find(widget, qtbot)
    _press(viewer, qtbot, Qt.Key.Key_C, alt)  # #1: possible microbleed
    _press(viewer, qtbot, Qt.Key.Key_C)  # #2: definite microbleed
    _press(viewer, qtbot, Qt.Key.Key_E, alt)  # #3: rejected, a vein
    _press(viewer, qtbot, Qt.Key.Key_R)  # #4: rejected, other
    expected = [("accepted-cmb", "possible", None), ("accepted-cmb", "definite", None)]
    expected += [("rejected", None, "vein"), ("rejected", None, "other")]
    assert [(d.decision, d.certainty, d.reason) for d in widget.session.decisions] == expected
    viewer.window.remove_dock_widget("all")
    viewer.close()

    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = tmp_path / "annotations"
    widget.start_button.click()
    assert [(d.decision, d.certainty, d.reason) for d in widget.session.decisions] == expected
    texts = _texts(widget)
    assert texts[0].endswith("→ CMB (possible)") and texts[1].endswith("→ CMB (definite)")
    assert texts[2].endswith("→ rejected: vein") and texts[3].endswith("→ rejected: other")

    widget.export_button.click()
    assert "exported" in widget.status_label.text()
    lesions = read_table(widget.session.lesions_path)
    where = lesions[["x_mm", "y_mm", "z_mm"]].to_numpy()
    centres = candidates.loc[:1, ["x_mm", "y_mm", "z_mm"]].to_numpy(float)
    nearest = [int(np.argmin(np.linalg.norm(where - centre, axis=1))) for centre in centres]
    assert list(lesions.loc[nearest, "certainty"]) == ["possible", "definite"]
    assert set(lesions["class"]) == {"cmb"} and "qsm_contrast_ppb" in lesions.columns
    rejected = read_table(widget.session.rejected_path)
    assert list(rejected["reason"]) == ["vein", "other"] and list(rejected["rank"]) == [3, 4]
    assert np.allclose(rejected[["seed_i", "seed_j", "seed_k"]], candidates.loc[2:3, ["seed_i", "seed_j", "seed_k"]])
    assert widget.session.rejected_path.with_suffix(".json").exists()


def test_a_blinded_session_is_unranked_without_suggestions_or_model_and_stays_blinded(
    make_napari_viewer, qtbot, subject_folder, tmp_path
):
    from napari_deepmir.layer_data import probability_layer_data
    from napari_deepmir.widgets._layers import add_layer

    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)
    widget.folder_edit.value = tmp_path / "annotations"
    for value in (1, 2):
        probability = np.zeros(widget.subject.shape, np.float32)
        add_layer(viewer, probability_layer_data(probability, widget.geometry, class_value=value))
    widget.blinded_check.value = True
    widget.start_button.click()
    assert "stays blinded" in widget.mode_label.text() and not widget.blinded_check.enabled
    assert not widget.use_model.enabled  # no model probabilities in a blinded session
    table = _find(widget, qtbot)
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert not {"score", "suggested_class", "flags", "reason", "probability_mean"} & set(table.columns)
    assert "suggested" not in widget.guidance.text() and "diameter" in widget.guidance.text()
    assert not any(word in text for text in _texts(widget) for word in ("cmb", "iron", "reject"))
    from napari_deepmir.lesions.candidates import find_candidates, useful_candidates

    useful = useful_candidates(find_candidates(widget.subject, locations=widget.locations))  # the useful list
    assert len(table) == len(useful)
    assert not np.allclose(table[["x_mm", "y_mm", "z_mm"]], useful[["x_mm", "y_mm", "z_mm"]])  # not best first
    saved = json.loads(widget.session.decisions_path.read_text())
    assert saved["blinded"] is True and isinstance(saved["order_seed"], int)
    viewer.window.remove_dock_widget("all")
    viewer.close()

    viewer, widget = _open(make_napari_viewer, subject_folder, qtbot)  # the box is not ticked this time
    widget.folder_edit.value = tmp_path / "annotations"
    widget.start_button.click()
    assert widget.session.blinded and widget.blinded_check.value and not widget.blinded_check.enabled
    assert "stays blinded" in widget.mode_label.text()
    again = _find(widget, qtbot)  # a new search: the same reproducible order
    assert np.allclose(again[["x_mm", "y_mm", "z_mm"]], table[["x_mm", "y_mm", "z_mm"]])


def test_a_session_reviewed_unblinded_cannot_be_blinded(subject_folder, tmp_path):
    import pandas as pd

    subject = load_subject_dir(subject_folder)
    store = AnnotationStore(tmp_path)
    session = store.open(subject, rater="ann")
    session.set_candidates(pd.DataFrame({"rank": [1, 2], "x_mm": [0.0, 9], "y_mm": [0.0, 9], "z_mm": [0.0, 9]}))
    with pytest.warns(UserWarning, match="listed unblinded; it cannot be blinded"):
        reopened = store.open(subject, blinded=True)
    assert not reopened.blinded and list(reopened.candidates["rank"]) == [1, 2]
