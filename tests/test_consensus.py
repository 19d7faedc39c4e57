"""Consensus read in a real viewer: two raters' label maps -> deepmir agreement -> disagreements decided by key
in the labelling widget -> a consensus label map and its agreement with each rater."""

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import write_nifti
from qtpy.QtCore import Qt

from napari_deepmir.cli import main
from napari_deepmir.io.bids import find_subject_files, find_subject_folders

#: Lesions (corner voxel of a 2x2x2 cube, rater A's class, rater B's class; 0 = not drawn).
LESIONS = {
    "agreed cmb": ((40, 40, 10), 1, 1),
    "agreed iron": ((54, 40, 10), 2, 2),
    "only A": ((40, 54, 12), 1, 0),
    "class": ((54, 54, 12), 1, 2),
    "only B": ((47, 30, 14), 0, 1),
}
#: The consensus decision on each disagreement (by its kind), as a key press: accept, accept, reject as a vein.
KEYS = {
    "only_a": (Qt.Key.Key_C, Qt.KeyboardModifier.NoModifier),  # microbleed, definite
    "class": (Qt.Key.Key_I, Qt.KeyboardModifier.AltModifier),  # iron deposit, possible
    "only_b": (Qt.Key.Key_E, Qt.KeyboardModifier.AltModifier),  # not a lesion: vein
}


def _cube(labels, corner, value):
    i, j, k = corner
    labels[i : i + 2, j : j + 2, k : k + 2] = value


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    """A phantom subject (without its truth labels) and two raters' label maps on its SWI grid, on disk."""
    from napari_deepmir.phantom import Acquisition, generate_cohort

    root = tmp_path_factory.mktemp("consensus")
    generate_cohort(root / "data", 1, 3, Acquisition(shape=(96, 96, 24), voxel_mm=(1, 1, 2)))
    (folder,) = find_subject_folders(root / "data")
    for path in folder.glob("*_dseg.nii.gz"):
        if "_desc-" not in path.name:
            path.unlink()
    swi = nib.load(str(find_subject_files(folder)["swi"]))
    for side, column in (("a", 1), ("b", 2)):
        labels = np.zeros(swi.shape, np.uint8)
        for corner, *values in LESIONS.values():
            _cube(labels, corner, values[column - 1])
        (root / side).mkdir()
        write_nifti(root / side / f"{folder.name}_dseg.nii.gz", labels, swi.affine)
    return root, folder


def _press(viewer, qtbot, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, modifier)


def _open_consensus(make_napari_viewer, readers, *, blinded=False):
    root, folder = readers
    out = root / ("agreement-blinded" if blinded else "agreement")
    if not out.exists():
        assert main(["agreement", "--a", str(root / "a"), "--b", str(root / "b"), "--out", str(out)]) == 0
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.blinded_check.value = blinded
    widget.consensus_panel.table_edit.value = str(out / "disagreements.tsv")
    widget.consensus_panel.open_button.click()
    return viewer, widget, out


def test_a_consensus_read_by_keys_gives_a_consensus_map_and_its_agreement_with_each_rater(
    make_napari_viewer, qtbot, readers, capsys
):
    root, folder = readers
    viewer, widget, out = _open_consensus(make_napari_viewer, readers)
    session = widget.session
    assert session.folder == out / "consensus" / folder.name
    candidates = session.candidates
    assert sorted(candidates["kind"]) == ["class", "only_a", "only_b"]
    assert widget.progress_label.text() == "reviewed 0 / 3"
    # each rater's call is shown; the map starts with the lesions both drew alike
    assert "A: cmb, B: none" in [widget.candidate_list.item(n).text().split("  ")[1] for n in range(3)]
    assert "raters: <b>A: " in widget.guidance.text()
    agreed = np.zeros(session.labels.shape, np.uint8)
    for name in ("agreed cmb", "agreed iron"):
        corner, value, _ = LESIONS[name]
        _cube(agreed, corner, value)
    assert np.array_equal(widget.geometry.from_display(np.asarray(widget.layer.data)), agreed)

    for _ in range(3):
        _press(viewer, qtbot, *KEYS[widget.current["kind"]])
    assert widget.progress_label.text() == "reviewed 3 / 3"
    decisions = {row["kind"]: session.decision_for(row) for _, row in session.candidates.iterrows()}
    assert (decisions["only_a"].decision, decisions["only_a"].certainty) == ("accepted-cmb", "definite")
    assert (decisions["class"].decision, decisions["class"].certainty) == ("accepted-iron", "possible")
    assert (decisions["only_b"].decision, decisions["only_b"].reason) == ("rejected", "vein")

    widget.consensus_panel.export_button.click()
    expected = agreed.copy()
    _cube(expected, LESIONS["only A"][0], 1)
    _cube(expected, LESIONS["class"][0], 2)
    consensus = np.asarray(nib.load(str(session.labels_path)).dataobj)
    assert np.array_equal(consensus, expected)
    assert session.labels_path == out / "consensus" / folder.name / f"{folder.name}_dseg.nii.gz"
    # consensus: CMB {agreed, only A}, iron {agreed, class}. Rater A: CMB {agreed, only A, class}, iron {agreed}.
    # Rater B: CMB {agreed, only B}, iron {agreed, class}. Agreement = 2 matched / (n consensus + n rater), over
    # definite lesions only (issue 24): the consensus rated the "class" iron deposit possible, so it leaves out.
    report = widget.consensus_panel.report
    assert report["rater_a"]["cmb"] == {"n_consensus": 2, "n_rater": 3, "n_matched": 2, "lesion_agreement": 0.8}
    assert report["rater_a"]["iron"] == {"n_consensus": 1, "n_rater": 1, "n_matched": 1, "lesion_agreement": 1.0}
    assert report["rater_b"]["cmb"]["lesion_agreement"] == 0.5
    assert report["rater_b"]["iron"]["lesion_agreement"] == 2 / 3
    text = widget.consensus_panel.result_label.text()
    assert "consensus vs rater A: cmb 0.80 (2 matched of 2 / 3), iron 1.00" in text
    assert "consensus vs rater B: cmb 0.50" in text and "undecided" not in text
    saved = json.loads((session.folder / f"{folder.name}_desc-consensus_agreement.json").read_text())
    assert saved["rater_b"]["iron"]["lesion_agreement"] == 2 / 3 and saved["undecided"] == 0
    table = (session.folder / f"{folder.name}_desc-consensus_decisions.tsv").read_text().splitlines()
    assert len(table) == 4 and {line.split("\t")[5] for line in table[1:]} == {"cmb", "iron", "not a lesion"}
    # the consensus folder is a data folder, and `deepmir agreement` reads it like a rater's
    assert main(["agreement", "--a", str(out / "consensus"), "--b", str(root / "b"), "--out", str(root / "c-b")]) == 0
    assert json.loads((root / "c-b" / "agreement.json").read_text())["iron"]["lesion_agreement"] == 2 / 3
    assert "labels" in find_subject_files(session.folder) and "swi" in find_subject_files(session.folder)
    # the command line exports the same consensus and reports the same agreement
    capsys.readouterr()
    assert main(["consensus", "--disagreements", str(out / "disagreements.tsv")]) == 0
    assert "consensus vs rater A: cmb 0.80 (2 matched of 2 / 3)" in capsys.readouterr().out
    assert main(["consensus", "--disagreements", str(root / "c-b" / "disagreements.tsv")]) != 0
    assert "no consensus read" in capsys.readouterr().err

    # closed and reopened: the read resumes where it stood
    viewer.window.remove_dock_widget("all")
    viewer.close()
    viewer, widget, _ = _open_consensus(make_napari_viewer, readers)
    assert widget.progress_label.text() == "reviewed 3 / 3"
    assert np.array_equal(widget.geometry.from_display(np.asarray(widget.layer.data)), expected)


def test_a_blinded_consensus_read_does_not_say_which_rater_made_which_call(make_napari_viewer, readers):
    _, widget, _ = _open_consensus(make_napari_viewer, readers, blinded=True)
    assert widget.session.blinded
    texts = [widget.candidate_list.item(n).text() for n in range(widget.candidate_list.count())]
    assert len(texts) == 3 and all("one rater: " in text and "A:" not in text for text in texts)
    assert "B:" not in widget.guidance.text() and "only_" not in widget.guidance.text()


def test_a_subject_missing_from_the_table_or_a_map_on_another_grid_is_refused_naming_the_file(readers, tmp_path):
    from napari_deepmir.io import InputError, load_subject_dir
    from napari_deepmir.rating.consensus import consensus_root, start_consensus, subject_disagreements
    from napari_deepmir.rating.store import AnnotationStore

    root, folder = readers
    maps = {side: nib.load(str(root / side / f"{folder.name}_dseg.nii.gz")) for side in "ab"}
    for side, image in maps.items():
        (tmp_path / side).mkdir()
        affine = image.affine @ np.diag([1.0, 1.0, 1.5, 1.0])  # the raters' grid is not the subject's
        write_nifti(tmp_path / side / f"{folder.name}_dseg.nii.gz", np.asarray(image.dataobj), affine)
    table = tmp_path / "agreement" / "disagreements.tsv"
    assert main(["agreement", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--out", str(table.parent)]) == 0
    with pytest.raises(InputError, match=r"disagreements.tsv: no disagreement of sub-999 .*either rater's map"):
        subject_disagreements(table, "sub-999")
    subject = load_subject_dir(folder, registration="off")
    session = AnnotationStore(consensus_root(table)).open(subject, rater="consensus")
    with pytest.raises(InputError, match=r"a/.*_dseg.nii.gz: rater A's label map affine differs"):
        start_consensus(session, subject, table)
    assert session.candidates is None and not session.labels_path.exists()  # nothing started
