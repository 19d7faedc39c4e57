"""deepmir import: DICOM series written by the tests -> a BIDS folder that deepmir cohort runs on; the reader too."""

import json

import nibabel as nib
import numpy as np
import pytest
from dicom_scenes import Grid, Patient, Series, expected_affine, head, write_series

from napari_deepmir.cli import main
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.io.dicom import import_dicom, series_role
from napari_deepmir.io.outputs import dataset_outputs

SWI_GRID = Grid(shape=(40, 48, 14), voxel_mm=(2.5, 2.5, 3.0), tilt_deg=8.0)
T2_GRID = Grid(shape=(36, 44, 12), voxel_mm=(2.75, 2.75, 4.0), tilt_deg=0.0, origin_lps=(49.0, 59.0, -24.0))
#: Scanner phase units: -4096..4094 stand for -pi..pi (stored 0..4095 with slope 2, intercept -4096).
PHASE_SCALE = 4096 / np.pi
DOT = (14, 30, 7)  # voxel of a paramagnetic dot on the SWI grid

T2 = Series(2, "t2_tse_tra", sequence="SE", echo_time_ms=95, repetition_time_ms=6000)
SWI = Series(7, "SWI_Images", image_type=("DERIVED", "PRIMARY", "M", "SWI", "NORM", "DIS2D"))
MAGNITUDE = Series(5, "Mag_Images")
PHASE = Series(6, "Pha_Images", image_type=("ORIGINAL", "PRIMARY", "P", "ND"), rescale=(2.0, -4096.0))
SCOUT = Series(1, "AAHead_Scout", image_type=("ORIGINAL", "PRIMARY", "M", "NORM"))
MIP = Series(8, "mIP_Images(SW)", image_type=("DERIVED", "PRIMARY", "M", "MNIP"))


def gre_phase() -> np.ndarray:
    """A smooth background phase plus a dot of negative phase (paramagnetic, right-handed), in scanner units."""
    i, j, _ = np.indices(SWI_GRID.shape)
    phase = 0.02 * (i - 20) + 0.015 * (j - 24)
    dot = np.linalg.norm(np.indices(SWI_GRID.shape) - np.array(DOT)[:, None, None, None], axis=0) <= 1.5
    return (phase - 1.5 * dot) * PHASE_SCALE


@pytest.fixture(scope="module")
def dicom_dir(tmp_path_factory):
    """P 01: T2, SWI, GRE magnitude + phase, a localizer and a minIP; P02: T2 and GRE magnitude + phase only."""
    root = tmp_path_factory.mktemp("dicom")
    magnitude = head(SWI_GRID, 500.0, seed=1)
    for patient, series in (
        (Patient("P 01"), (T2, SWI, MAGNITUDE, PHASE, SCOUT, MIP)),
        (Patient("P02"), (T2, MAGNITUDE, PHASE)),
    ):
        for s in series:
            grid = T2_GRID if s is T2 else SWI_GRID
            volume = {T2: head(T2_GRID, 800.0), PHASE: gre_phase()}.get(s, magnitude)
            write_series(root, patient, s, grid, volume)
    return root


@pytest.fixture(scope="module")
def bids(dicom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "bids"
    assert main(["import", str(dicom_dir), "--out", str(out)]) == 0
    return out


def _anat(bids, subject):
    return bids / f"sub-{subject}" / "ses-1" / "anat"


def test_import_sorts_series_into_bids_with_affines_and_sidecars(bids):
    p01, p02 = _anat(bids, "P01"), _anat(bids, "P02")
    names = sorted(p.name for p in p01.iterdir())
    suffixes = ("T2w", "rec-swi_T2starw", "part-mag_T2starw", "part-phase_T2starw")
    assert names == sorted(f"sub-P01_ses-1_{s}{e}" for s in suffixes for e in (".json", ".nii.gz"))
    assert sorted(p.name for p in p02.glob("*.nii.gz")) == [
        "sub-P02_ses-1_T2w.nii.gz",
        "sub-P02_ses-1_part-mag_T2starw.nii.gz",
        "sub-P02_ses-1_part-phase_T2starw.nii.gz",
    ]
    np.testing.assert_allclose(
        nib.load(p01 / "sub-P01_ses-1_rec-swi_T2starw.nii.gz").affine, expected_affine(SWI_GRID), atol=1e-3
    )
    np.testing.assert_allclose(nib.load(p01 / "sub-P01_ses-1_T2w.nii.gz").affine, expected_affine(T2_GRID), atol=1e-3)
    phase = nib.load(p02 / "sub-P02_ses-1_part-phase_T2starw.nii.gz").get_fdata()
    assert phase[DOT] < phase.mean() - 1000  # the dot, where it was written, in scanner units
    sidecar = json.loads((p01 / "sub-P01_ses-1_rec-swi_T2starw.json").read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.020) and sidecar["MagneticFieldStrength"] == 3
    assert "PatientID" not in sidecar and "PatientName" not in sidecar
    assert json.loads((p01 / "sub-P01_ses-1_T2w.json").read_text())["EchoTime"] == pytest.approx(0.095)
    assert (bids / "dataset_description.json").exists()


def test_import_lists_what_it_left_out(dicom_dir, tmp_path, capsys):
    assert main(["import", str(dicom_dir), "--out", str(tmp_path / "b"), "--subject", "x"]) == 2
    assert "2 patients" in capsys.readouterr().err
    report = import_dicom(dicom_dir, tmp_path / "bids", session="")
    left_out = {s.sidecar["SeriesDescription"]: s.reason for s in report.left_out}
    assert left_out.keys() == {"AAHead_Scout", "mIP_Images(SW)"}
    assert "localizer" in left_out["AAHead_Scout"] and "projection" in left_out["mIP_Images(SW)"]
    assert (tmp_path / "bids" / "sub-P01" / "anat" / "sub-P01_rec-swi_T2starw.nii.gz").exists()  # no session level


def test_two_series_of_one_role_are_listed_not_guessed(tmp_path):
    patient = Patient("P03")
    for s in (T2, Series(3, "t2_tse_tra_repeat", sequence="SE", echo_time_ms=95), SWI):
        write_series(tmp_path / "dicom", patient, s, T2_GRID if s.sequence == "SE" else SWI_GRID, head(SWI_GRID))
    report = import_dicom(tmp_path / "dicom", tmp_path / "bids", subject="three", session="1")
    assert [t.name for _, t in report.imported] == ["sub-three_ses-1_rec-swi_T2starw.nii.gz"]
    assert len(report.left_out) == 2 and all("ambiguous: 2 t2 series" in s.reason for s in report.left_out)
    assert not list((tmp_path / "bids").rglob("*T2w*"))


def test_import_never_replaces_files(dicom_dir, bids, capsys):
    before = {p: p.stat().st_mtime_ns for p in bids.rglob("*")}
    assert main(["import", str(dicom_dir), "--out", str(bids)]) == 2
    assert "never replaces" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in bids.rglob("*")} == before


def test_series_roles_from_sidecars():
    gre = {"ScanningSequence": "GR", "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}
    assert series_role({**gre, "ProtocolName": "swi_tra"})[0] == "magnitude"  # the SWI protocol's magnitude
    assert series_role({**gre, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]})[0] == "phase"
    assert series_role({"SeriesDescription": "T2 FLAIR", "ScanningSequence": "SE_IR", "EchoTime": 0.09})[0] is None
    assert series_role({"SeriesDescription": "t2star_gre", **gre})[0] == "magnitude"
    assert series_role({"SeriesDescription": "ep2d_diff", "ScanningSequence": "EP", "EchoTime": 0.08})[0] is None


@pytest.fixture(scope="module")
def swi_t2_model(tmp_path_factory):
    """A tiny untrained SWI+T2 model (the imported subjects have no QSM)."""
    import torch

    from napari_deepmir.model.card import ModelCard
    from napari_deepmir.model.files import save_model
    from napari_deepmir.model.unet import DeepmirUNet

    torch.manual_seed(0)
    card = ModelCard(
        name="tiny-swi-t2",
        modalities=["swi", "t2"],
        architecture={"base_filters": 4, "depth": 3, "context_slices": 0},
        spacing_mm=[2.5, 2.5, 3.0],
    )
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


def test_deepmir_cohort_runs_on_the_imported_folder(bids, swi_t2_model, tmp_path, capsys):
    out = tmp_path / "derivatives"
    command = [
        "cohort",
        str(bids),
        "--out",
        str(out),
        "--model",
        str(swi_t2_model),
        "--device",
        "cpu",
        "--workers",
        "1",
    ]
    assert main(command) == 0, capsys.readouterr().err
    summary = read_table(out / "summary.tsv")
    assert list(summary["participant_id"]) == ["sub-P01_ses-1", "sub-P02_ses-1"]
    assert list(summary["status"]) == ["done", "done"]
    made = dataset_outputs(out, "sub-P02_ses-1").provenance()
    assert any("SWI was made from sub-P02_ses-1_part-mag_T2starw.nii.gz" in w for w in made["Warnings"])
    assert made["EchoTime"] == pytest.approx(0.020) and made["MagneticFieldStrength"] == 3
    own = dataset_outputs(out, "sub-P01_ses-1").provenance()
    assert not any("made from" in w for w in own["Warnings"])  # the scanner's SWI is used when there is one


def test_opening_a_dicom_folder_in_napari_imports_it(dicom_dir, make_napari_viewer):
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="left out series 1"):
        viewer.open(str(dicom_dir), plugin="napari-deepmir")
    names = {layer.name for layer in viewer.layers}
    assert {"sub-P01 SWI", "sub-P01 T2", "sub-P02 SWI", "sub-P02 T2"} <= names
    made = viewer.layers["sub-P02 SWI"]
    assert made.metadata["deepmir"]["made_from"][0].endswith("_part-mag_T2starw.nii.gz")
    path = viewer.layers["sub-P01 SWI"].metadata["deepmir"]["path"]
    assert path.endswith("sub-P01_ses-1_rec-swi_T2starw.nii.gz")
