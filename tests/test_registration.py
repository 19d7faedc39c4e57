"""The registration check: a T2 out of register with the SWI is found and registered back; aligned data is left."""

import json
import shutil

import numpy as np
import pytest
from conftest import write_nifti
from test_widget_detect import WORKER_TIMEOUT_MS, tiny_models  # noqa: F401 (the fixture, used by name)

from napari_deepmir._sample_data import SAMPLE_FOLDER, SAMPLE_SUBJECT
from napari_deepmir.cli import main
from napari_deepmir.io import load_subject, load_volume
from napari_deepmir.io.registration import MAX_MISALIGNMENT_MM
from napari_deepmir.io.resample import resample_to_grid

SWI = SAMPLE_FOLDER / f"{SAMPLE_SUBJECT}_swi.nii.gz"
T2 = SAMPLE_FOLDER / f"{SAMPLE_SUBJECT}_T2w.nii.gz"
QSM = SAMPLE_FOLDER / f"{SAMPLE_SUBJECT}_Chimap.nii.gz"


def rigid_about_centre(volume, degrees: float, shift_mm) -> np.ndarray:
    """A world -> world rigid transform: a rotation about the z axis through the grid's centre, then a shift."""
    t = np.deg2rad(degrees)
    transform = np.eye(4)
    transform[:3, :3] = [[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]
    centre = volume.affine[:3, :3] @ ((np.array(volume.data.shape) - 1) / 2) + volume.affine[:3, 3]
    transform[:3, 3] = centre - transform[:3, :3] @ centre + np.asarray(shift_mm, float)
    return transform


def brain_points(subject) -> np.ndarray:
    """World coordinates (3, N) of every 20th brain voxel."""
    ijk = np.argwhere(subject.mask)[::20].T
    return subject.affine[:3, :3] @ ijk + subject.affine[:3, 3:4]


@pytest.fixture(scope="module")
def moved_subject(tmp_path_factory):
    """The sample subject with its T2 moved 6 mm and rotated 5 degrees inside an unchanged header."""
    folder = tmp_path_factory.mktemp("moved") / SAMPLE_SUBJECT
    folder.mkdir()
    for path in (SWI, QSM):
        shutil.copy(path, folder / path.name)
    t2 = load_volume(T2)
    moved = rigid_about_centre(t2, 5.0, (6 / np.sqrt(2), 6 / np.sqrt(2), 0.0))
    # the anatomy at world point p now lies at moved @ p, while the header still says it lies at p
    data = resample_to_grid(t2.data, moved @ t2.affine, t2.data.shape, t2.affine)
    write_nifti(folder / T2.name, data.astype(np.float32), t2.affine)
    return folder, moved, load_subject(folder / SWI.name, t2=folder / T2.name)


def test_a_t2_moved_6mm_and_rotated_5_degrees_is_registered_back_within_1mm(moved_subject):
    _, moved, subject = moved_subject
    alignment = subject.alignments["t2"]
    assert alignment.registered and alignment.misalignment_mm > MAX_MISALIGNMENT_MM
    assert alignment.nmi_registered > alignment.nmi_header
    points = brain_points(subject)
    recovered = alignment.transform[:3, :3] @ points + alignment.transform[:3, 3:4]
    truth = moved[:3, :3] @ points + moved[:3, 3:4]
    assert np.linalg.norm(recovered - truth, axis=0).max() < 1.0
    assert any("registered rigidly" in warning for warning in subject.warnings)
    # the T2 the network reads is the original one again
    original = load_subject(SWI, t2=T2, registration="off").t2
    brain = subject.mask
    assert np.corrcoef(subject.t2[brain], original[brain])[0, 1] > 0.95


def test_info_reports_the_misalignment_and_that_it_would_register(moved_subject, capsys):
    folder, _, _ = moved_subject
    assert main(["info", "--subject", str(folder), "--registration", "check"]) == 0
    out = capsys.readouterr().out
    assert "T2 is out of register with the SWI" in out and "it would be registered" in out


def test_aligned_t2_is_left_as_the_headers_place_it(capsys):
    subject = load_subject(SWI, t2=T2)
    alignment = subject.alignments["t2"]
    assert not alignment.registered and alignment.misalignment_mm < 1.0
    assert np.array_equal(subject.t2, load_subject(SWI, t2=T2, registration="off").t2)
    assert not any("register" in warning for warning in subject.warnings)
    assert main(["info", "--swi", str(SWI), "--t2", str(T2)]) == 0
    assert "T2 is in register with the SWI" in capsys.readouterr().out


def test_registration_is_recorded_in_the_provenance_of_the_outputs(moved_subject, tmp_path):
    from napari_deepmir.detection.pipeline import DetectionResult, full_table, write_detection
    from napari_deepmir.io.outputs import OutputSet

    subject = moved_subject[2]
    labels = np.zeros(subject.shape, np.uint8)
    result = DetectionResult(
        subject, labels, np.zeros((3, *subject.shape)), {}, table=full_table(_empty_table()), lesion_ids=labels
    )
    outputs = write_detection(result, OutputSet(tmp_path, subject.name))
    record = json.loads(outputs.marker.read_text())
    assert record["Alignment"]["t2"]["Registered"] is True
    assert np.array(record["Alignment"]["t2"]["TransformSwiToImageRasMm"]).shape == (4, 4)
    assert any("registered rigidly" in warning for warning in record["Warnings"])


def test_training_registers_an_annotated_t2_unless_told_to_trust_the_headers(moved_subject):
    from napari_deepmir.model.files import read_card
    from napari_deepmir.model.registry import resolve_model
    from napari_deepmir.training.data import load_annotated_subject

    folder = moved_subject[0]
    shutil.copy(SAMPLE_FOLDER / f"{SAMPLE_SUBJECT}_dseg.nii.gz", folder)
    card = read_card(resolve_model("default"))
    registered = load_annotated_subject(folder, card)
    trusted = load_annotated_subject(folder, card, registration="off")
    assert registered.subject.alignments["t2"].registered and not trusted.subject.alignments
    t2 = card.modalities.index("t2")
    aligned = load_annotated_subject(SAMPLE_FOLDER, card, registration="off").channels[t2]
    brain = aligned != 0
    assert np.corrcoef(registered.channels[t2][brain], aligned[brain])[0, 1] > 0.9
    assert np.corrcoef(trusted.channels[t2][brain], aligned[brain])[0, 1] < 0.8


def _empty_table():
    import pandas as pd

    return pd.DataFrame()


def test_detect_widget_says_the_t2_layer_was_registered(moved_subject, make_napari_viewer, qtbot, request):
    folder, _, _ = moved_subject
    viewer = make_napari_viewer()
    viewer.open([str(folder / name) for name in (SWI.name, QSM.name, T2.name)], plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    widget.add_model(request.getfixturevalue("tiny_models")["tiny-all"])
    assert widget.inputs.layers["t2"] is not None
    widget.device_box.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert "T2 was out of register with the SWI" in widget.status_label.text()
    assert "registered rigidly" in widget.status_label.text()
