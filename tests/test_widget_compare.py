"""Compare sessions in a real viewer: two sessions side by side, new lesions reviewed by key, the grade exported.

The truth label maps of a synthetic pair stand in for the detections (detection is not the point here)."""

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_deepmir.phantom import Acquisition
from napari_deepmir.phantom.sessions import generate_pair, write_pair


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory):
    """Five new microbleeds (ARIA-H moderate), the head moved; one lesion fewer would make it mild."""
    pair = generate_pair(
        5, Acquisition(shape=(80, 96, 30), voxel_mm=(2.0, 2.0, 4.0)), new_cmbs=5, resolved=False,
        fine_voxel_mm=(1.0, 1.0, 2.0),
    )  # fmt: skip
    return write_pair(pair, tmp_path_factory.mktemp("pair"))


def _press(viewer, qtbot, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, modifier)


def _compare(viewer, qtbot, folder, out):
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Compare sessions")
    name = folder.name
    widget.baseline_edit.value = folder / "ses-1"
    widget.followup_edit.value = folder / "ses-2"
    widget.baseline_labels_edit.value = folder / "ses-1" / "anat" / f"{name}_ses-1_dseg.nii.gz"
    widget.followup_labels_edit.value = folder / "ses-2" / "anat" / f"{name}_ses-2_dseg.nii.gz"
    widget.out_edit.value = out
    widget.rater_edit.value = "rater-a"
    widget.compare_button.click()
    qtbot.waitUntil(lambda: widget.review is not None and widget.worker is None, timeout=120_000)
    return widget


def test_new_lesions_are_reviewed_by_key_and_the_exported_grade_reflects_a_rejection(
    make_napari_viewer, qtbot, pair_folder, tmp_path
):
    viewer = make_napari_viewer(show=True)
    widget = _compare(viewer, qtbot, pair_folder, tmp_path / "out")
    review = widget.review
    new = review.new_ids
    assert len(new) == 5 and "ARIA-H moderate" in widget.grade_label.text()
    changes = viewer.layers["follow-up changes"]
    assert np.count_nonzero(changes.data == 3) > 0  # new lesions highlighted on the follow-up side
    assert widget.current == new[0]  # the review starts at the first new lesion
    first_slice = viewer.dims.point[0]
    _press(viewer, qtbot, Qt.Key.Key_N)
    assert widget.current == new[1]
    _press(viewer, qtbot, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert widget.current == new[0] and viewer.dims.point[0] == pytest.approx(first_slice, abs=4)
    _press(viewer, qtbot, Qt.Key.Key_R)  # reject the first: on to the second
    assert widget.current == new[1]
    _press(viewer, qtbot, Qt.Key.Key_C)  # confirm the second
    assert np.count_nonzero(changes.data == 5) > 0  # the rejected one is drawn grey
    saved = (tmp_path / "out").glob("*_desc-longitudinal_review.tsv")
    assert len(list(saved)) == 1  # autosaved at the decision
    widget.export_button.click()
    (grade_file,) = (tmp_path / "out").glob("*_desc-reviewed_grade.json")
    grade = json.loads(grade_file.read_text())
    assert grade["ARIA-H"]["Grade"] == "mild" and grade["ARIA-H"]["NewMicrobleeds"] == 4
    assert grade["Rejected"] == {str(new[0]): "other"} and grade["Confirmed"] == [new[1]]
    assert grade["Rater"] == "rater-a" and len(grade["Unreviewed"]) == 3
    machine = json.loads(next((tmp_path / "out").glob("*_desc-longitudinal_grade.json")).read_text())
    assert machine["ARIA-H"]["Grade"] == "moderate"  # the comparison itself is never overwritten


def test_a_table_row_jumps_to_its_change_and_a_reopened_review_resumes(
    make_napari_viewer, qtbot, pair_folder, tmp_path
):
    from napari_deepmir.longitudinal.outputs import ChangeSet
    from napari_deepmir.longitudinal.review import ChangeReview

    viewer = make_napari_viewer(show=True)
    widget = _compare(viewer, qtbot, pair_folder, tmp_path / "out")
    last = widget.table.rowCount() - 1
    widget.table.cellClicked.emit(last, 0)
    row = widget.review.changes.iloc[last]
    assert widget.current == row["change_id"]
    assert viewer.dims.point[0] == pytest.approx(row["z_mm"], abs=4)
    widget.step(1)  # the first new lesion after it
    rejected = widget.current
    widget.decide("rejected", "vein")
    resumed = ChangeReview.open(ChangeSet(tmp_path / "out", pair_folder.name), "rater-b")
    assert resumed.row(rejected)["review"] == "rejected" and list(resumed.changes["review_reason"].dropna()) == ["vein"]
    assert resumed.grade.new_microbleeds == 4
