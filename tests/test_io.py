"""Loading subjects: world-space alignment, QSM units, and clear errors for bad input."""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, sphere_world, write_nifti

from napari_deepmir.io import InputError, load_subject, load_subject_dir, load_volume, save_labels

CENTRE = (5.0, -3.0, 8.0)


def _head(shape, affine, value=100.0):
    """A bright ellipsoidal 'head' with a dark 4 mm sphere at CENTRE, drawn in world space."""
    head = sphere_world(shape, affine, (0, 0, 0), 45) * value + 1.0
    head[sphere_world(shape, affine, CENTRE, 4.0)] = 10.0
    return head.astype(np.float32)


@pytest.fixture
def subject_files(tmp_path):
    """SWI on an oblique grid, T2 on its own coarser axis-aligned grid, QSM in ppm: all show the same sphere."""
    swi_affine = oblique_affine((0.8, 0.8, 2.0), 12.0)
    swi_shape = (128, 128, 50)
    t2_affine = np.diag([1.5, 1.5, 3.0, 1.0])
    t2_affine[:3, 3] = (-72, -75, -60)
    qsm = sphere_world(swi_shape, swi_affine, (0, 0, 0), 45) * np.random.default_rng(0).normal(0, 0.02, swi_shape)
    qsm[sphere_world(swi_shape, swi_affine, CENTRE, 4.0)] = 0.6  # ppm
    folder = tmp_path / "sub-01"
    folder.mkdir()
    return {
        "swi": write_nifti(folder / "sub-01_swi.nii.gz", _head(swi_shape, swi_affine), swi_affine),
        "t2": write_nifti(folder / "sub-01_T2w.nii.gz", _head((96, 100, 40), t2_affine), t2_affine),
        "qsm": write_nifti(folder / "sub-01_Chimap.nii.gz", qsm.astype(np.float32), swi_affine),
        "folder": folder,
    }


def test_t2_on_its_own_grid_is_resampled_into_alignment_with_swi(subject_files):
    subject = load_subject(subject_files["swi"], subject_files["qsm"], subject_files["t2"])
    sphere = sphere_world(subject.shape, subject.affine, CENTRE, 2.5)  # core of the sphere
    assert subject.t2.shape == subject.swi.shape
    assert subject.t2[sphere].mean() < 20  # the dark sphere of the T2 lands on the SWI's sphere
    assert subject.t2[subject.mask & ~sphere_world(subject.shape, subject.affine, CENTRE, 7)].mean() > 80


def test_qsm_in_ppm_is_detected_and_reported_in_ppb(subject_files):
    subject = load_subject_dir(subject_files["folder"])
    assert subject.qsm_units == "ppm"
    core = sphere_world(subject.shape, subject.affine, CENTRE, 2.5)
    assert subject.qsm[core].mean() == pytest.approx(600, rel=0.01)
    forced = load_subject(subject_files["swi"], subject_files["qsm"], qsm_units="ppm")
    assert forced.qsm[core].mean() == pytest.approx(600, rel=0.01)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="missing_swi.nii.gz: file not found"):
        load_subject(tmp_path / "missing_swi.nii.gz")


def test_not_nifti_and_corrupt_files_are_refused_clearly(tmp_path):
    text = tmp_path / "notes_swi.nii.gz"
    text.write_text("not an image")
    with pytest.raises(InputError, match="notes_swi.nii.gz: not a readable NIfTI"):
        load_volume(text)
    good = write_nifti(tmp_path / "good.nii.gz", np.random.rand(20, 20, 20).astype(np.float32), np.eye(4))
    raw = gzip.decompress(Path(good).read_bytes())
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match="truncated.nii.gz: (corrupt|not a readable)"):
        load_volume(truncated)


def test_dimensions_are_checked_but_a_single_volume_4d_file_is_fine(tmp_path):
    four_d = write_nifti(tmp_path / "one_volume.nii.gz", np.random.rand(10, 11, 12, 1).astype(np.float32), np.eye(4))
    assert load_volume(four_d).data.shape == (10, 11, 12)
    series = write_nifti(tmp_path / "series.nii.gz", np.random.rand(10, 11, 12, 3).astype(np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"series.nii.gz: expected a 3D volume, found shape \(10, 11, 12, 3\)"):
        load_volume(series)


def test_all_nan_and_constant_volumes_are_refused(tmp_path):
    nan = write_nifti(tmp_path / "nan.nii.gz", np.full((8, 8, 8), np.nan, np.float32), np.eye(4))
    with pytest.raises(InputError, match="nan.nii.gz: every voxel is NaN"):
        load_volume(nan)
    flat = write_nifti(tmp_path / "flat.nii.gz", np.full((8, 8, 8), 3.0, np.float32), np.eye(4))
    with pytest.raises(InputError, match="flat.nii.gz: constant image"):
        load_volume(flat)


def test_nans_inside_the_brain_are_set_to_zero_and_reported(subject_files, tmp_path):
    image = nib.load(subject_files["qsm"])
    data = image.get_fdata().astype(np.float32)
    data[60:62, 60:62, 25] = np.nan
    path = write_nifti(tmp_path / "sub-01_Chimap.nii.gz", data, image.affine)
    subject = load_subject(subject_files["swi"], path)
    assert np.isfinite(subject.qsm).all()
    assert any("4 NaN/infinite voxels inside the brain" in w for w in subject.warnings)


def test_modalities_without_spatial_overlap_are_refused(subject_files, tmp_path):
    image = nib.load(subject_files["t2"])
    far = image.affine.copy()
    far[:3, 3] += 1000
    path = write_nifti(tmp_path / "far_T2w.nii.gz", image.get_fdata().astype(np.float32), far)
    with pytest.raises(InputError, match="far_T2w.nii.gz: does not overlap"):
        load_subject(subject_files["swi"], t2=path)


def test_missing_modality_in_a_folder_is_named(tmp_path):
    (tmp_path / "sub-02").mkdir()
    with pytest.raises(
        InputError,
        match=r"sub-02: no SWI file found \(looked for \*_rec-swi_T2starw.nii.gz \(or .*\*_swi\) or \*_part-mag_T2s",
    ):
        load_subject_dir(tmp_path / "sub-02")


def test_saved_labels_keep_grid_and_affine(tmp_path):
    affine = oblique_affine()
    labels = np.zeros((20, 22, 8), np.uint8)
    labels[3:5, 4:6, 2] = 1
    labels[10, 10, 5] = 2
    path = save_labels(tmp_path / "out" / "sub-01_dseg.nii.gz", labels, affine)
    image = nib.load(str(path))
    assert image.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(image.dataobj), labels)
    assert np.allclose(image.affine, affine)
    assert not list((tmp_path / "out").glob(".*tmp*")), "no temporary file is left behind"
