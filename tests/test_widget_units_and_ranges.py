"""QSM units and training-range warnings in the widgets: a subject opened from files with sidecars, real tiny models."""

import json

import numpy as np
import pytest
from conftest import write_nifti
from training_scenes import write_blob_subject

from napari_deepmir.io import InputError
from napari_deepmir.model.card import ModelCard

WORKER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def tiny_swi_qsm(tmp_path_factory):
    """A tiny untrained SWI+QSM model whose card says it was trained at TE 15-30 ms, 3 T."""
    import torch

    from napari_deepmir.model.files import save_model
    from napari_deepmir.model.unet import DeepmirUNet

    torch.manual_seed(0)
    card = ModelCard(
        name="tiny-ranges",
        modalities=["swi", "qsm"],
        architecture={"base_filters": 4, "depth": 3, "context_slices": 0},
        training_ranges={"echo_time_s": [0.015, 0.03], "field_strength_t": [3.0, 3.0]},
    )
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


@pytest.fixture
def long_te_faint_qsm(tmp_path):
    """sub-te: SWI at TE 40 ms (its sidecar says so) and a QSM in ppb faint enough to pass for ppm."""
    rng = np.random.default_rng(0)
    brain = np.zeros((40, 40, 10), bool)
    brain[5:35, 5:35, 1:9] = True
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    folder = tmp_path / "sub-te"
    folder.mkdir()
    write_nifti(folder / "sub-te_swi.nii.gz", np.where(brain, 1.0 + 0.05 * rng.random(brain.shape), 0), affine)
    (folder / "sub-te_swi.json").write_text(json.dumps({"EchoTime": 0.04, "MagneticFieldStrength": 3}))
    qsm = np.where(brain, rng.normal(0, 1.5, brain.shape), 0).astype(np.float32)
    write_nifti(folder / "sub-te_Chimap.nii.gz", qsm, affine)
    return folder


def test_detect_states_qsm_units_and_warns_outside_the_training_ranges(
    make_napari_viewer, qtbot, tiny_swi_qsm, long_te_faint_qsm
):
    viewer = make_napari_viewer()
    viewer.open(str(long_te_faint_qsm), plugin="napari-deepmir")
    assert viewer.layers["sub-te QSM"].metadata["deepmir"]["qsm_units_in_file"] == "ppm"  # detected, wrongly
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    widget.add_model(tiny_swi_qsm)
    widget.device_box.value = "cpu"
    widget.inputs.units_picker.value = "ppb"  # the user knows better
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    subject = widget.detection.subject
    assert subject.qsm_units == "ppb" and np.abs(subject.qsm).max() < 20  # the file's values, in ppb
    assert "Warning: echo time 40 ms is outside what model tiny-ranges was trained on" in widget.status_label.text()
    saved = widget.save_results(long_te_faint_qsm.parent / "out")
    provenance = json.loads(saved.with_name("sub-te_space-swi_desc-deepmir_dseg.json").read_text())
    assert provenance["QsmUnits"] == "ppb" and provenance["QsmUnitsSource"] == "given"
    assert any("echo time 40 ms is outside" in w for w in provenance["Warnings"])


def test_finetune_passes_the_qsm_units_chosen(make_napari_viewer, tmp_path):
    folder = write_blob_subject(tmp_path, 0)  # QSM in ppb, lesions at 400 ppb
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    subject, _ = widget.settings().samples[0]
    assert subject.qsm_units == "ppb"
    widget.qsm_units_box.value = "ppm"
    with pytest.raises(InputError, match="QSM values do not fit units 'ppm'.*suggest 'ppb'"):
        widget.settings()
