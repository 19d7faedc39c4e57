"""Hostile or broken input files are refused with one clear line; outputs respect the umask; leftovers are found."""

import gzip
import os
import stat
import time
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import sphere_world, write_nifti

from napari_deepmir.cli import main
from napari_deepmir.io import InputError, load_subject, load_volume, save_labels
from napari_deepmir.io.atomic import atomic_path, clean_stale_temporaries, stale_temporaries, write_text_atomic
from napari_deepmir.io.mask import brain_mask

SHAPE = (64, 64, 40)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
AFFINE[:3, 3] = (-96, -96, -60)


@pytest.fixture
def head(tmp_path):
    """An SWI of a 60 mm 'head' and, on the same grid, a brain-only QSM (48 mm) in ppb."""
    rng = np.random.default_rng(1)
    swi = sphere_world(SHAPE, AFFINE, (0, 0, 0), 60) * 100.0 + rng.normal(0, 1, SHAPE) + 5
    brain = sphere_world(SHAPE, AFFINE, (0, 0, 0), 48)
    qsm_ppb = np.where(brain, rng.normal(0, 20, SHAPE), 0)
    qsm_ppb[sphere_world(SHAPE, AFFINE, (10, 0, 0), 6)] = 400
    return {
        "swi": write_nifti(tmp_path / "sub-01_swi.nii.gz", swi.astype(np.float32), AFFINE),
        "qsm_ppb": qsm_ppb.astype(np.float32),
        "brain": brain,
        "folder": tmp_path,
    }


def _with_header(path, data, *, sform=None, qform=None):
    """Write ``data`` with exactly the given sform/qform (None: not set, code 0), bypassing nibabel's checks."""
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    if qform is not None:
        header.set_qform(qform, code=1)
    if sform is not None:
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform)[:3]
        header["sform_code"] = 1
    nib.save(nib.Nifti1Image(data, None, header), str(path))
    return str(path)


# 1. Inputs ---------------------------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_from_its_header_before_decompressing(tmp_path, monkeypatch):
    header = nib.Nifti1Header()
    header.set_data_shape((2000, 2000, 500))
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    bomb = tmp_path / "bomb_swi.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as stream:  # 8 MB of zeros: a few kB on disk
        stream.write(header.binaryblock + b"\0" * 4)
        for _ in range(8):
            stream.write(bytes(1 << 20))
    assert bomb.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(
        InputError, match=r"bomb_swi.nii.gz: image of 2000 x 2000 x 500 voxels .* over the budget of 536,870,912"
    ):
        load_volume(bomb)
    assert time.perf_counter() - started < 1.0
    # the budget is a documented constant that an environment variable overrides
    small = write_nifti(tmp_path / "small.nii.gz", np.random.rand(20, 20, 20).astype(np.float32), np.eye(4))
    monkeypatch.setenv("DEEPMIR_MAX_VOXELS", "1000")
    with pytest.raises(InputError, match="small.nii.gz: image of 20 x 20 x 20 voxels .* budget of 1,000 voxels"):
        load_volume(small)


def test_complex_swi_is_read_as_magnitude_with_a_warning_and_complex_qsm_refused(head, tmp_path):
    swi = np.asarray(nib.load(head["swi"]).dataobj)
    phase = np.random.default_rng(2).uniform(-np.pi, np.pi, SHAPE)
    complex_swi = write_nifti(tmp_path / "complex_swi.nii.gz", (swi * np.exp(1j * phase)).astype(np.complex64), AFFINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        subject = load_subject(complex_swi)
    assert np.allclose(subject.swi, swi, rtol=1e-4, atol=1e-3)  # magnitude, not the real part
    assert any("complex-valued data (complex64); using its magnitude" in w for w in subject.warnings)
    complex_qsm = write_nifti(tmp_path / "complex_Chimap.nii.gz", head["qsm_ppb"].astype(np.complex64), AFFINE)
    with pytest.raises(InputError, match=r"complex_Chimap.nii.gz: complex-valued data \(complex64\)"):
        load_subject(head["swi"], complex_qsm)


@pytest.mark.parametrize(
    "sform, problem",
    [
        (np.diag([np.nan, 1, 1, 1]), "non-finite values"),
        (np.diag([2, 2, 0, 1]), r"zero voxel size \(2 x 2 x 0 mm\)"),
        (np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float), "singular matrix"),
        (np.diag([0.01, 1, 1, 1]), r"implausible voxel size 0.01 x 1 x 1 mm"),
        (np.diag([1, 1, 50, 1]), r"implausible voxel size 1 x 1 x 50 mm"),
    ],
)
def test_unusable_affines_are_refused_naming_the_file(tmp_path, capsys, sform, problem):
    path = _with_header(tmp_path / "bad_swi.nii.gz", np.random.rand(8, 8, 8).astype(np.float32), sform=sform)
    with pytest.raises(InputError, match=f"bad_swi.nii.gz: unusable affine: sform: {problem}"):
        load_volume(path)
    assert main(["info", "--swi", path]) == 2  # `deepmir info` no longer prints "2 x 2 x 0 mm" and succeeds
    assert "bad_swi.nii.gz: unusable affine" in capsys.readouterr().err


def test_a_broken_sform_falls_back_to_a_good_qform_with_a_warning(tmp_path):
    qform = np.diag([0.8, 0.8, 2.0, 1.0])
    path = _with_header(
        tmp_path / "q_swi.nii.gz", np.random.rand(8, 8, 8).astype(np.float32), sform=np.diag([1, 1, 0, 1]), qform=qform
    )
    volume = load_volume(path)
    assert np.allclose(volume.affine, qform)
    assert any("unusable sform (zero voxel size" in w and "using the qform" in w for w in volume.warnings)


# 2. QSM units ------------------------------------------------------------------------------------------------------


def test_qsm_in_si_units_is_detected_converted_to_ppb_and_accepted_when_given(head, tmp_path, capsys):
    si = write_nifti(tmp_path / "sub-01_Chimap.nii.gz", head["qsm_ppb"] * np.float32(1e-9), AFFINE)
    core = sphere_world(SHAPE, AFFINE, (10, 0, 0), 4)
    for units in ("auto", "si"):
        subject = load_subject(head["swi"], si, qsm_units=units)
        assert subject.qsm_units == "si"
        assert subject.qsm[core].mean() == pytest.approx(400, rel=1e-3)  # not ~0 as when SI was taken for ppm
    assert main(["info", "--swi", head["swi"], "--qsm", si, "--qsm-units", "si"]) == 0
    assert "QSM units: si (given; reported in ppb)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "stored, scale, forced",
    [("ppb", 1.0, "ppm"), ("ppm", 1e-3, "ppb"), ("si", 1e-9, "ppb"), ("ppm", 1e-3, "si")],
)
def test_a_wrong_explicit_qsm_unit_is_refused_with_the_unit_the_values_suggest(
    head, tmp_path, capsys, stored, scale, forced
):
    path = write_nifti(tmp_path / "sub-01_Chimap.nii.gz", head["qsm_ppb"] * np.float32(scale), AFFINE)
    assert load_subject(head["swi"], path).qsm_units == stored
    message = rf"sub-01_Chimap.nii.gz: QSM values do not fit units '{forced}'.*the values suggest '{stored}'"
    with pytest.raises(InputError, match=message):
        load_subject(head["swi"], path, qsm_units=forced)
    assert main(["info", "--swi", head["swi"], "--qsm", path, "--qsm-units", forced]) == 2
    assert f"the values suggest '{stored}'" in capsys.readouterr().err


# 3. Coverage -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["qsm", "t2"])
def test_a_modality_covering_a_small_part_of_the_head_is_refused_with_the_figure(head, tmp_path, modality):
    slab_affine = AFFINE.copy()
    slab_affine[2, 3] = 45.0  # its own grid: 6 slices at the top of the head (bounding boxes overlap 15%)
    slab = np.random.default_rng(3).normal(0, 20, (64, 64, 6)).astype(np.float32) + (100 if modality == "t2" else 0)
    path = write_nifti(tmp_path / f"slab_{modality}.nii.gz", slab, slab_affine)
    with pytest.raises(
        InputError,
        match=rf"slab_{modality}.nii.gz: its data cover \d+% of the head in sub-01_swi.nii.gz; at least 50% needed",
    ):
        load_subject(head["swi"], **{modality: path})
    whole = write_nifti(tmp_path / "brain_Chimap.nii.gz", head["qsm_ppb"], AFFINE)  # a brain-only QSM is fine
    assert load_subject(head["swi"], whole).qsm is not None


def test_a_small_qsm_support_does_not_shrink_the_brain_mask(head):
    swi = np.asarray(nib.load(head["swi"]).dataobj)
    qsm = np.zeros(SHAPE, np.float32)
    qsm[..., -7:] = 1.0  # a slab at the top of the field of view: 17% of the volume, the top 10% of the head
    without = brain_mask(swi)
    assert np.array_equal(brain_mask(swi, qsm), without)
    assert brain_mask(swi, head["qsm_ppb"]).sum() == pytest.approx(head["brain"].sum(), rel=0.05)  # a full QSM is used


# 4. Output files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_the_umask_implies(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        labels = save_labels(tmp_path / "out" / "sub-01_dseg.nii.gz", np.zeros((4, 4, 4), np.uint8), np.eye(4))
        text = write_text_atomic(tmp_path / "out" / "notes.json", "{}")
    finally:
        os.umask(old)
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in (labels, text)] == [mode, mode]


def test_stale_temporaries_are_found_and_only_ours_are_removed(tmp_path):
    old = time.time() - 3600

    def touch(name, *, stale=True):
        path = tmp_path / name
        path.write_text("partial")
        if stale:
            os.utime(path, (old, old))
        return path

    ours_labels = touch(".sub-01_dseg.nii.gz.k3j_x9a2.tmp.nii.gz")
    ours_table = touch(".sub-01_lesions.csv.0a1b2c3d.tmp.csv")
    fresh = touch(".sub-01_lesions.csv.ffff0000.tmp.csv", stale=False)  # a write in progress
    others = [
        touch(".sub-01_dseg.nii.gz.k3j_x9a2.tmp.csv"),  # suffix does not match the name
        touch(".sub-01_dseg.nii.gz.short.tmp.nii.gz"),
        touch(".hidden.tmp"),
        touch("sub-01_dseg.nii.gz.12345678.tmp.nii.gz"),  # not hidden
        touch("notes.txt"),
    ]
    assert stale_temporaries(tmp_path) == sorted([ours_labels, ours_table])
    with atomic_path(tmp_path / "sub-01_dseg.nii.gz") as tmp:  # a new write of the same name clears its leftover
        tmp.write_text("labels")
    assert (
        not ours_labels.exists() and ours_table.exists() and (tmp_path / "sub-01_dseg.nii.gz").read_text() == "labels"
    )
    assert clean_stale_temporaries(tmp_path) == [ours_table]
    assert fresh.exists() and all(p.exists() for p in others)
