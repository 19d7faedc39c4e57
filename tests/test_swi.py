"""SWI from a GRE magnitude and phase: a paramagnetic dot turns dark, the phase sign (handedness) as documented,
and a subject folder with magnitude + phase but no SWI gets one made."""

import json

import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir.cli import main
from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.bids import find_subject_folders
from napari_deepmir.io.swi import swi_from_magnitude_phase
from napari_deepmir.phantom.physics import dipole_field, rad_per_ppb

SHAPE = (64, 64, 6)
DOT = (30, 34, 3)


def dot_scene(dot_phase: float):
    """Uniform magnitude; a smooth background phase (wrapping once across the field of view) and a dot of
    ``dot_phase`` radians on top."""
    i, j, _ = np.indices(SHAPE)
    phase = 2 * np.pi * (i / SHAPE[0]) + 0.5 * np.sin(2 * np.pi * j / SHAPE[1])
    dot = np.linalg.norm(np.indices(SHAPE) - np.array(DOT)[:, None, None, None], axis=0) <= 2
    wrapped = np.angle(np.exp(1j * (phase + dot_phase * dot)))
    return np.full(SHAPE, 100.0, np.float32), wrapped.astype(np.float32), dot


def contrast(swi, dot) -> float:
    """Mean SWI in the dot over the mean SWI of the rest."""
    return float(swi[dot].mean() / swi[~dot].mean())


def test_a_paramagnetic_dot_is_darker_on_swi():
    magnitude, phase, dot = dot_scene(-1.5)  # right-handed: paramagnetic is negative phase
    swi = swi_from_magnitude_phase(magnitude, phase)
    assert contrast(swi, dot) < 0.3
    assert swi[~dot].mean() > 0.9 * magnitude.mean()  # the background phase is filtered out, not darkened


def test_the_phase_sign_picks_which_phase_is_paramagnetic():
    magnitude, negative, dot = dot_scene(-1.5)
    _, positive, _ = dot_scene(+1.5)
    # left-handed (phase_sign=-1): positive phase is paramagnetic and darkens; negative phase (diamagnetic) does not
    assert contrast(swi_from_magnitude_phase(magnitude, positive, phase_sign=-1), dot) < 0.3
    assert contrast(swi_from_magnitude_phase(magnitude, negative, phase_sign=-1), dot) > 0.9
    assert contrast(swi_from_magnitude_phase(magnitude, positive), dot) > 0.9  # and the default the other way
    with pytest.raises(ValueError, match="phase_sign"):
        swi_from_magnitude_phase(magnitude, negative, phase_sign=0)


def test_phase_in_scanner_units_gives_the_same_swi():
    magnitude, phase, _ = dot_scene(-1.5)
    in_radians = swi_from_magnitude_phase(magnitude, phase)
    siemens = np.round(phase * 4096 / np.pi).clip(-4096, 4094)  # -4096..4094 for -pi..pi
    np.testing.assert_allclose(swi_from_magnitude_phase(magnitude, siemens), in_radians, atol=1.0)


def test_a_subject_with_magnitude_and_phase_gets_an_swi_made(tmp_path, capsys):
    magnitude, phase, dot = dot_scene(-1.5)
    magnitude[:8], magnitude[-8:] = 0, 0  # some background, so a brain can be found
    folder = tmp_path / "sub-01" / "anat"
    folder.mkdir(parents=True)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    write_nifti(folder / "sub-01_part-mag_T2starw.nii.gz", magnitude, affine)
    write_nifti(folder / "sub-01_part-phase_T2starw.nii.gz", phase, affine)
    assert find_subject_folders(tmp_path) == [tmp_path / "sub-01"]
    subject = load_subject_dir(tmp_path / "sub-01")
    assert contrast(subject.swi, dot) < 0.3
    assert "swi" not in subject.paths and subject.paths["phase"].name == "sub-01_part-phase_T2starw.nii.gz"
    assert any("SWI was made from sub-01_part-mag_T2starw.nii.gz" in w for w in subject.warnings)
    assert main(["info", "--subject", str(tmp_path / "sub-01")]) == 0
    assert "SWI  made from" in capsys.readouterr().out
    flipped = load_subject_dir(tmp_path / "sub-01", phase_sign=-1)
    assert contrast(flipped.swi, dot) > 0.9 and any("phase sign -1" in w for w in flipped.warnings)


def test_a_phase_on_another_grid_is_refused(tmp_path):
    magnitude, phase, _ = dot_scene(-1.5)
    magnitude[:8] = 0
    write_nifti(tmp_path / "sub-02_part-mag_T2starw.nii.gz", magnitude, np.eye(4))
    write_nifti(tmp_path / "sub-02_part-phase_T2starw.nii.gz", phase[:, :, :5], np.eye(4))
    with pytest.raises(ValueError, match="sub-02_part-phase_T2starw.nii.gz: the phase must be on the grid"):
        load_subject_dir(tmp_path)


def test_unsigned_phase_gives_the_same_swi_as_signed_phase():
    magnitude, phase, dot = dot_scene(-1.5)
    unsigned = np.round((phase + np.pi) * 4096 / (2 * np.pi)).clip(0, 4095)  # as stored: 0..4095
    signed = 2 * unsigned - 4096  # after Siemens' rescale slope 2, intercept -4096: -4096..4094
    from_signed = swi_from_magnitude_phase(magnitude, signed)
    np.testing.assert_allclose(swi_from_magnitude_phase(magnitude, unsigned), from_signed, atol=1e-2)
    assert contrast(from_signed, dot) < 0.3


def test_phase_floats_outside_radians_are_refused(tmp_path):
    magnitude, phase, _ = dot_scene(-1.5)
    with pytest.raises(ValueError, match="neither radians"):
        swi_from_magnitude_phase(magnitude, phase * 2.5)  # e.g. unwrapped, or in other units
    magnitude[:8] = 0
    write_nifti(tmp_path / "sub-03_part-mag_T2starw.nii.gz", magnitude, np.eye(4))
    write_nifti(tmp_path / "sub-03_part-phase_T2starw.nii.gz", phase * 2.5, np.eye(4))
    with pytest.raises(ValueError, match="sub-03_part-phase_T2starw.nii.gz: phase values .* neither radians"):
        load_subject_dir(tmp_path)


def vein_scene(left_handed: bool):
    """A head with veins along and across B0 (+400 ppb) and a calcification (-300 ppb); magnitude, phase in
    radians x 1000 (as GE stores it) of a 3 T, TE 20 ms scan, and the vein voxels."""
    shape = (64, 64, 24)
    i, j, k = np.indices(shape)
    head = ((i - 32) / 28) ** 2 + ((j - 32) / 28) ** 2 + ((k - 12) / 14) ** 2 <= 1
    rng = np.random.default_rng(0)
    veins = np.zeros(shape, bool)
    for n in range(12):
        a, b = rng.uniform(12, 52, 2)
        across = (i - a) ** 2 + (k - 12 - rng.uniform(-6, 6)) ** 2 <= 1.2
        veins |= (across if n % 2 else (i - a) ** 2 + (j - b) ** 2 <= 1.2) & head
    chi = np.where(veins, 400.0, 0.0)
    chi[np.linalg.norm(np.indices(shape) - np.array([40, 20, 12])[:, None, None, None], axis=0) <= 2] = -300
    field = dipole_field(chi.astype(np.float32), (1.0, 1.0, 2.0), np.array([0.0, 0.0, 1.0]))
    phase = np.angle(np.exp(-1j * (-1 if left_handed else 1) * rad_per_ppb(3.0, 20.0) * field))
    magnitude = np.where(head, 100.0, 0.0) * (1 + 0.02 * rng.standard_normal(shape))
    return magnitude.astype(np.float32), np.round(1000 * phase).astype(np.float32), veins


def test_the_phase_sign_comes_from_the_manufacturer_and_is_checked_on_the_veins(tmp_path):
    magnitude, phase, veins = vein_scene(left_handed=True)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for manufacturer in ("GE MEDICAL SYSTEMS", "Siemens"):
        folder = tmp_path / manufacturer.split()[0] / "sub-01"
        folder.mkdir(parents=True)
        for part, data in (("mag", magnitude), ("phase", phase)):
            write_nifti(folder / f"sub-01_part-{part}_T2starw.nii.gz", data, affine)
            (folder / f"sub-01_part-{part}_T2starw.json").write_text(json.dumps({"Manufacturer": manufacturer}))
    ge = load_subject_dir(tmp_path / "GE" / "sub-01")
    assert ge.swi[veins].mean() < 0.6 * ge.swi[~veins & (magnitude > 0)].mean()  # veins dark
    made = next(w for w in ge.warnings if "SWI was made from" in w)
    assert "radians x 1000 (GE)" in made and "phase sign -1 for GE MEDICAL SYSTEMS" in made
    assert not any("looks wrong" in w for w in ge.warnings)
    siemens = load_subject_dir(tmp_path / "Siemens" / "sub-01")  # the same left-handed phase, said to be Siemens
    assert "phase sign +1 for Siemens" in next(w for w in siemens.warnings if "SWI was made from" in w)
    assert any("phase sign +1 looks wrong" in w and "veins would come out bright" in w for w in siemens.warnings)
