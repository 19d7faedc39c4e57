"""BIDS sidecars: echo time and field strength against the model card's training ranges, and stated QSM units."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_nifti
from training_scenes import write_blob_subject

from napari_deepmir._reader import read_nifti_file
from napari_deepmir.cli import main
from napari_deepmir.io import InputError, load_subject, load_subject_dir
from napari_deepmir.io.outputs import OutputSet
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import read_card
from napari_deepmir.model.registry import default_model_path

RANGES = {"echo_time_s": [0.015, 0.03], "field_strength_t": [3.0, 3.0]}


def write_sidecar(nifti: Path, **fields) -> None:
    nifti.with_name(nifti.name.replace(".nii.gz", ".json")).write_text(json.dumps(fields))


def test_the_shipped_card_states_its_training_ranges_and_cards_are_checked():
    assert read_card(default_model_path()).training_ranges == RANGES
    assert ModelCard().training_ranges == {} and ModelCard().range_warnings({"echo_time_s": 0.5}) == []
    with pytest.raises(ValueError, match=r"training_ranges.echo_time_s must be \[min, max\]"):
        ModelCard(training_ranges={"echo_time_s": [0.03, 0.01]})
    with pytest.raises(ValueError, match="unknown keys"):
        ModelCard(training_ranges={"flip_angle": [10, 20]})
    card = ModelCard(name="m", training_ranges=RANGES)
    assert card.range_warnings({"echo_time_s": 0.02, "field_strength_t": 3.0}) == []
    assert card.range_warnings({}) == []  # nothing stated, nothing to check
    assert card.range_warnings({"echo_time_s": 0.04}) == [
        "echo time 40 ms is outside what model m was trained on (15..30 ms): check its detections with care"
    ]


@pytest.fixture(scope="module")
def swi_model(tmp_path_factory):
    """A tiny untrained SWI-only model trained (so its card says) at TE 15-30 ms and 3 T."""
    import torch

    from napari_deepmir.model.files import save_model
    from napari_deepmir.model.unet import DeepmirUNet

    torch.manual_seed(0)
    architecture = {"base_filters": 4, "depth": 3, "context_slices": 0}
    card = ModelCard(name="tiny-swi", modalities=["swi"], architecture=architecture, training_ranges=RANGES)
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


def test_a_scan_outside_the_training_ranges_is_warned_about(tmp_path, swi_model, capsys):
    folder = write_blob_subject(tmp_path / "bids", 0)
    write_sidecar(folder / f"{folder.name}_swi.nii.gz", EchoTime=0.04, MagneticFieldStrength=1.5)
    assert main(["info", "--subject", str(folder)]) == 0
    assert "scan (from the BIDS sidecar): echo time 40 ms, field strength 1.5 T" in capsys.readouterr().out
    out = tmp_path / "out"
    command = ["predict", "--subject", str(folder), "--model", str(swi_model), "--out", str(out), "--device", "cpu"]
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "warning: echo time 40 ms is outside what model tiny-swi was trained on (15..30 ms)" in err
    assert "warning: field strength 1.5 T is outside what model tiny-swi was trained on (3..3 T)" in err
    provenance = OutputSet(out, folder.name).provenance()
    assert provenance["EchoTime"] == 0.04 and provenance["MagneticFieldStrength"] == 1.5
    assert sum("outside what model tiny-swi was trained on" in w for w in provenance["Warnings"]) == 2


def test_a_scan_inside_the_ranges_gets_no_warning(tmp_path, swi_model, capsys):
    folder = write_blob_subject(tmp_path / "bids", 1)
    write_sidecar(folder / f"{folder.name}_swi.nii.gz", EchoTime=0.02, MagneticFieldStrength=3)
    out = tmp_path / "out"
    command = ["predict", "--subject", str(folder), "--model", str(swi_model), "--out", str(out), "--device", "cpu"]
    assert main(command) == 0
    assert "outside" not in capsys.readouterr().err
    assert OutputSet(out, folder.name).provenance()["Warnings"] == []


@pytest.fixture
def faint_ppb_qsm(tmp_path):
    """A QSM in ppb so faint (99th percentile ~3 ppb) that detection would take it for ppm, with an SWI."""
    rng = np.random.default_rng(0)
    brain = np.zeros((32, 32, 8), bool)
    brain[4:28, 4:28, 1:7] = True
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    swi = write_nifti(tmp_path / "sub-q_swi.nii.gz", np.where(brain, 1.0 + 0.05 * rng.random(brain.shape), 0), affine)
    qsm = tmp_path / "sub-q_Chimap.nii.gz"
    write_nifti(qsm, np.where(brain, rng.normal(0, 1.5, brain.shape), 0).astype(np.float32), affine)
    return Path(swi), qsm


def test_qsm_units_stated_in_the_sidecar_are_used(faint_ppb_qsm):
    swi, qsm = faint_ppb_qsm
    guessed = load_subject(swi, qsm)
    assert (guessed.qsm_units, guessed.qsm_units_source) == ("ppm", "detected")  # the trap a sidecar avoids
    write_sidecar(qsm, Units="ppb")
    subject = load_subject(swi, qsm)
    assert (subject.qsm_units, subject.qsm_units_source) == ("ppb", "sidecar")
    assert np.abs(subject.qsm).max() < 20  # kept in ppb, not multiplied by 1000
    assert read_nifti_file(qsm)[1]["metadata"]["deepmir"]["qsm_units_in_file"] == "ppb"  # the napari reader too
    assert load_subject_dir(swi.parent).qsm_units_source == "sidecar"
    given = load_subject(swi, qsm, qsm_units="ppm")
    assert given.qsm_units_source == "given" and any("sidecar states units 'ppb'" in w for w in given.warnings)


def test_units_that_are_not_qsm_units_are_refused_naming_the_sidecar(faint_ppb_qsm):
    swi, qsm = faint_ppb_qsm
    write_sidecar(qsm, Units="Hz")
    with pytest.raises(InputError, match=r"sub-q_Chimap.nii.gz: its sidecar states Units 'Hz'"):
        load_subject(swi, qsm)
    qsm.with_name("sub-q_Chimap.json").write_text("{not json")
    with pytest.raises(InputError, match=r"sub-q_Chimap.json: unreadable JSON sidecar"):
        load_subject(swi, qsm)
