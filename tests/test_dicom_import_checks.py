"""deepmir import keeps people, series and sessions apart, refuses what it cannot convert whole, and writes
de-identified sidecars (issue 22 findings 1-3, issue 24 finding 6). Every scene is a DICOM folder written with
pydicom, imported through the command line the way a user runs it."""

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from dicom_scenes import Grid, Patient, Series, head, truncate, write_series
from pydicom.uid import generate_uid

from napari_deepmir.cli import main
from napari_deepmir.io.dicom import import_dicom, series_role, session_numbers

GRID = Grid(shape=(16, 20, 8), voxel_mm=(2.5, 2.5, 3.0))
T2 = Series(2, "t2_tse_tra", sequence="SE", echo_time_ms=95, repetition_time_ms=6000)
SWI = Series(7, "SWI_Images", image_type=("DERIVED", "PRIMARY", "M", "SWI", "NORM", "DIS2D"))
#: Siemens' stock SWI protocol: its magnitude is a gradient echo named "t2_swi..." (issue 24 finding 6).
SIEMENS_SWI_MAGNITUDE = Series(5, "t2_swi_tra_p2_1.5mm", echo_time_ms=20)


def run_import(dicom, out, capsys, *extra):
    """``deepmir import`` as a user runs it: its exit status, its output, and the NIfTI files it wrote."""
    status = main(["import", str(dicom), "--out", str(out), *extra])
    said = capsys.readouterr()
    return status, said.out + said.err, sorted(p.relative_to(out) for p in out.rglob("*.nii.gz"))


def counts(said: str) -> tuple[int, int]:
    """(imported, left out) from the summary line."""
    summary = next(line for line in said.splitlines() if " series imported into " in line)
    return int(summary.split()[0]), int(summary.split("; ")[1].split()[0])


def test_two_patient_ids_with_one_label_are_not_merged(tmp_path, capsys):
    write_series(tmp_path / "dicom", Patient("P-01"), T2, GRID, head(GRID, 800))
    write_series(tmp_path / "dicom", Patient("P01", name="Other^Person"), SWI, GRID, head(GRID, 500))
    write_series(tmp_path / "dicom", Patient("P02"), SWI, GRID, head(GRID, 500))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and [str(p) for p in written] == ["sub-P02/ses-1/anat/sub-P02_ses-1_rec-swi_T2starw.nii.gz"]
    assert "PatientIDs 'P-01' and 'P01' would both become sub-P01" in said
    assert counts(said) == (1, 2)


def test_one_patient_id_for_two_people_is_refused(tmp_path, capsys):
    write_series(tmp_path / "dicom", Patient("P05", name="Smith^Ann", birth_date="19400101"), T2, GRID, head(GRID))
    write_series(tmp_path / "dicom", Patient("P05", name="Jones^Bob", birth_date="19600101"), SWI, GRID, head(GRID))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 1 and written == []
    assert said.count("PatientID 'P05' is used by people whose PatientName or PatientBirthDate differ") == 2


def test_two_patients_sharing_a_series_uid_stay_two_volumes(tmp_path, capsys):
    shared = generate_uid()
    write_series(tmp_path / "dicom", Patient("A"), SWI, GRID, head(GRID, 300), series_uid=shared)
    write_series(tmp_path / "dicom", Patient("B"), SWI, GRID, head(GRID, 900), series_uid=shared)
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and len(written) == 2, said
    for subject, value in (("A", 300), ("B", 900)):
        anat = tmp_path / "bids" / f"sub-{subject}" / "ses-1" / "anat"
        image = nib.load(anat / f"sub-{subject}_ses-1_rec-swi_T2starw.nii.gz")
        assert image.shape == GRID.shape  # 8 slices each, not one volume of both
        assert np.median(image.get_fdata()[image.get_fdata() > 0]) == pytest.approx(value, rel=0.05)


def test_a_series_without_a_date_joins_the_dated_session(tmp_path, capsys):
    write_series(tmp_path / "dicom", Patient("P01", study_date=""), T2, GRID, head(GRID))
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and {str(p.parent) for p in written} == {"sub-P01/ses-1/anat"}
    assert counts(said) == (2, 0)


def test_sessions_are_numbered_in_acquisition_order(tmp_path, capsys):
    write_series(tmp_path / "dicom" / "later", Patient("P01", study_date="20240601"), SWI, GRID, head(GRID, 700))
    write_series(tmp_path / "dicom" / "earlier", Patient("P01", study_date="20230101"), SWI, GRID, head(GRID, 400))
    status, _, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and [p.parts[1] for p in written] == ["ses-1", "ses-2"]
    first = nib.load(tmp_path / "bids" / written[0]).get_fdata()
    assert np.median(first[first > 0]) == pytest.approx(400, rel=0.05)  # ses-1 is the 2023 visit


def test_a_truncated_file_refuses_its_series_and_names_it(tmp_path, capsys):
    t2 = write_series(tmp_path / "dicom", Patient("P01"), T2, GRID, head(GRID))
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    truncate(t2 / "IM0004.dcm")
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and [p.name for p in written] == ["sub-P01_ses-1_rec-swi_T2starw.nii.gz"]
    left_out = next(line for line in said.splitlines() if line.startswith("left out"))
    assert 'series 2 "t2_tse_tra"' in left_out and "dcm2niix converted" in left_out and "IM0004.dcm" in left_out
    assert counts(said) == (len(written), 1)


def test_a_missing_middle_slice_is_reported_not_spaced_evenly(tmp_path, capsys):
    t2 = write_series(tmp_path / "dicom", Patient("P01"), T2, GRID, head(GRID), skip_slices=(4,))
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and [p.name for p in written] == ["sub-P01_ses-1_rec-swi_T2starw.nii.gz"]
    assert f"slice gap: about 1 slice(s) missing between {t2 / 'IM0004.dcm'} and IM0006.dcm (6 mm apart" in said


def test_a_ct_described_t2_is_not_imported_as_t2w(tmp_path, capsys):
    ct = Series(3, "t2_like_head_ct", sequence="SE", echo_time_ms=95, modality="CT")
    write_series(tmp_path / "dicom", Patient("P01"), ct, GRID, head(GRID))
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    _, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert not any("T2w" in str(p) for p in written)
    assert "Modality CT: only MR series are imported" in said


def test_control_characters_in_a_description_refuse_that_series_only(tmp_path, capsys):
    bad = write_series(tmp_path / "dicom", Patient("P01"), Series(3, "t2\x1b_tse", sequence="SE"), GRID, head(GRID))
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and [p.name for p in written] == ["sub-P01_ses-1_rec-swi_T2starw.nii.gz"]
    assert f"SeriesDescription of {bad / 'IM0001.dcm'} holds a control character ('\\x1b')" in said
    assert 'left out series 3 "t2?_tse" of P01' in said
    assert counts(said) == (1, 1)


def test_siemens_t2_swi_magnitude_is_a_gradient_echo_magnitude_not_t2(tmp_path, capsys):
    for series in (T2, SIEMENS_SWI_MAGNITUDE):
        write_series(tmp_path / "dicom", Patient("P01"), series, GRID, head(GRID))
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and sorted(p.name for p in written) == [
        "sub-P01_ses-1_T2w.nii.gz",
        "sub-P01_ses-1_part-mag_T2starw.nii.gz",
    ], said
    sidecar = json.loads((tmp_path / "bids/sub-P01/ses-1/anat/sub-P01_ses-1_T2w.json").read_text())
    assert sidecar["SeriesDescription"] == "t2_tse_tra"


def test_roles_come_from_modality_and_sequence_not_words():
    gre = {"Modality": "MR", "ScanningSequence": "GR", "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}
    assert series_role({**gre, "SeriesDescription": "t2_swi_tra_p2", "EchoTime": 0.02})[0] == "magnitude"
    assert series_role({**gre, "SeriesDescription": "t2_gre", "ImageType": ["DERIVED", "M"]})[0] is None
    assert (
        series_role({"Modality": "MR", "ScanningSequence": "SE_EP", "EchoTime": 0.09, "SeriesDescription": "t2"})[0]
        is None
    )  # echo-planar: never T2
    assert series_role({"Modality": "CT", "SeriesDescription": "t2", "EchoTime": 0.09})[0] is None
    assert series_role({"Modality": "MR", "ScanningSequence": "SE", "EchoTime": 0.1, "SeriesDescription": "ax"})[0] == (
        "t2"
    )


IDENTIFYING = ("AccessionNumber", "ReferringPhysicianName", "InstitutionName", "StationName", "DeviceSerialNumber")


def test_sidecars_are_de_identified_unless_dates_are_kept(tmp_path, capsys):
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    (sidecar,) = (tmp_path / "bids").rglob("sub-*_rec-swi_T2starw.json")
    text = sidecar.read_text()
    assert [text.count(field) for field in IDENTIFYING] == [0] * len(IDENTIFYING)
    assert not any(word in text for word in ("UID", "Date", "AcquisitionTime", "PatientID", "2024", "1.2.826"))
    assert json.loads(text)["EchoTime"] == pytest.approx(0.02) and json.loads(text)["SeriesDescription"] == "SWI_Images"
    (nifti,) = (tmp_path / "bids").rglob("sub-*_rec-swi_T2starw.nii.gz")
    descrip = nib.load(nifti).header["descrip"].tobytes()
    assert b"TE=20" in descrip and b"Time" not in descrip
    with gzip.open(nifti) as written:
        assert b"090700" not in written.read(400)
    run_import(tmp_path / "dicom", tmp_path / "kept", capsys, "--keep-dates")
    (kept,) = (tmp_path / "kept").rglob("sub-*_rec-swi_T2starw.json")
    assert json.loads(kept.read_text())["AcquisitionDateTime"].startswith("2024-01-31")
    assert "InstitutionName" not in kept.read_text()


def test_imported_data_are_the_scanner_s_values(tmp_path):
    volume = head(GRID, 700, seed=3)
    write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, volume)
    report = import_dicom(tmp_path / "dicom", tmp_path / "bids", session="")
    (_, target), *_ = report.imported
    np.testing.assert_allclose(nib.load(target).get_fdata(), np.round(volume), atol=0.5)


def test_copies_and_unreadable_files_are_counted_not_lost(tmp_path, capsys):
    folder = write_series(tmp_path / "dicom", Patient("P01"), SWI, GRID, head(GRID))
    (tmp_path / "dicom" / "copy").mkdir()
    shutil.copy(folder / "IM0003.dcm", tmp_path / "dicom" / "copy" / "IM0003.dcm")
    broken = tmp_path / "dicom" / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    status, said, written = run_import(tmp_path / "dicom", tmp_path / "bids", capsys)
    assert status == 0 and nib.load(tmp_path / "bids" / written[0]).shape == GRID.shape
    assert "(1 copies of images already in the series skipped)" in said
    assert f"skipped {broken}: not a DICOM image" in said
    assert "1 series imported into 1 subject folder(s)" in said
    assert "0 left out; 1 file(s) not read as DICOM images" in said


def test_session_numbers_follow_acquisition_order_and_place_undated_studies_only_when_they_can():
    assert session_numbers({"b": "20240601090000", "a": "20230101090000"}) == {"a": "1", "b": "2"}
    assert session_numbers({"dated": "20240601090000", "undated": ""}) == {"dated": "1", "undated": "1"}
    assert session_numbers({"only": ""}) == {"only": "1"}
    two_dated = session_numbers({"x": "20240601090000", "y": "20230101090000", "undated": ""})
    assert two_dated == {"y": "1", "x": "2", "undated": None}
