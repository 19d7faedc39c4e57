"""SWI from a GRE magnitude and phase: a paramagnetic dot turns dark, the phase sign (handedness) as documented,
and a subject folder with magnitude + phase but no SWI gets one made."""

import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir.cli import main
from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.bids import find_subject_folders
from napari_deepmir.swi import swi_from_magnitude_phase

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
