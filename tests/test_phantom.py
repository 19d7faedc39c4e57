"""The phantom's physics: dipole field, QSM signs, blooming, truth on the lesions, reproducibility, files."""

import json

import numpy as np
import pytest

from napari_deepmir.io import load_subject_dir
from napari_deepmir.lesions.components import class_components
from napari_deepmir.phantom import Acquisition, generate_subject, write_subject
from napari_deepmir.phantom.physics import dipole_field

#: A whole head at coarse voxels, simulated on a 2x finer grid: seconds, with every kind of object.
SMALL = Acquisition(shape=(80, 96, 30), voxel_mm=(2.0, 2.0, 4.0))
FAST = {"fine_voxel_mm": (1.0, 1.0, 2.0)}


@pytest.fixture(scope="module")
def subject():
    return generate_subject(3, SMALL, **FAST)


def _index(subject, lesion):
    return tuple(np.round(np.linalg.inv(subject.affine) @ np.append(lesion["centre_mm"], 1))[:3].astype(int))


def _neighbourhood(volume, index):
    """The 3x3x3 voxels around ``index`` (small lesions spread over neighbours by partial volume)."""
    return volume[tuple(slice(max(0, i - 1), i + 2) for i in index)]


def test_dipole_field_of_a_sphere_matches_the_analytic_solution():
    n, radius, chi = 96, 6.0, 1000.0  # ppb
    grid = np.indices((n, n, n)).astype(np.float32) - n // 2
    r = np.sqrt((grid**2).sum(axis=0))
    field = dipole_field(np.where(r <= radius, chi, 0).astype(np.float32), (1.0, 1.0, 1.0), np.array([0.0, 0.0, 1.0]))
    for distance in (12, 15, 20):
        along_b0 = field[n // 2, n // 2, n // 2 + distance]
        across_b0 = field[n // 2 + distance, n // 2, n // 2]
        analytic = chi / 3 * radius**3 / distance**3
        assert along_b0 == pytest.approx(2 * analytic, rel=0.1)  # 3cos^2 - 1 = 2
        assert across_b0 == pytest.approx(-analytic, rel=0.1)  # 3cos^2 - 1 = -1
    assert abs(field[n // 2, n // 2, n // 2]) < 0.05 * chi  # Lorentz-corrected: ~0 inside


def test_microbleeds_are_paramagnetic_and_calcifications_diamagnetic_on_qsm(subject):
    kinds = {
        kind: [l for l in subject.lesions if l["kind"] == kind] for kind in ("cmb", "calcification", "iron", "vein")
    }
    assert all(kinds.values()), "every kind of object is present"
    inside_qsm = [l for l in subject.lesions if np.all(_neighbourhood(subject.qsm, _index(subject, l)) != 0)]
    for lesion in (
        l for l in kinds["cmb"] if l["diameter_mm"] >= 2.5 and l in inside_qsm
    ):  # small ones vanish in 16 mm3 voxels
        assert _neighbourhood(subject.qsm, _index(subject, lesion)).max() > 50, lesion
        assert _neighbourhood(subject.qsm, _index(subject, lesion)).mean() > 0, lesion
    for lesion in (l for l in kinds["calcification"] if l in inside_qsm):
        index = _index(subject, lesion)
        assert _neighbourhood(subject.qsm, index).min() < -50, lesion
        # at its centre, not the mean of the neighbours: one in the iron-rich pallidum sits in strongly positive tissue
        assert subject.qsm[index] < 0, lesion


def test_microbleeds_bloom_on_swi_beyond_their_true_size():
    subject = generate_subject(5, Acquisition(shape=(128, 150, 40), voxel_mm=(1.25, 1.25, 3.0), te_ms=25))
    dark_total, true_total = 0.0, 0.0
    for lesion in (l for l in subject.lesions if l["kind"] == "cmb" and l["diameter_mm"] > 2):
        centre = np.array(_index(subject, lesion))
        box = tuple(slice(max(0, c - 6), c + 7) for c in centre[:2]) + (slice(max(0, centre[2] - 2), centre[2] + 3),)
        patch = subject.swi[box]
        dark_total += (patch < 0.5 * np.median(patch)).sum() * np.prod(subject.acquisition.voxel_mm)
        true_total += np.pi / 6 * lesion["diameter_mm"] ** 3
    assert true_total > 0
    assert dark_total > 1.5 * true_total


def test_truth_labels_sit_on_the_lesions(subject):
    for lesion in subject.lesions:
        value = subject.labels[_index(subject, lesion)]
        assert value == lesion["label"] or (lesion["label"] == 0 and value == 0) or lesion["kind"] == "vein", lesion
    n_cmb = sum(l["kind"] == "cmb" for l in subject.lesions)
    assert class_components(subject.labels, 1)[1] == n_cmb  # one component per microbleed
    assert class_components(subject.labels, 2)[1] >= 1
    assert set(np.unique(subject.labels)) <= {0, 1, 2}


def test_same_seed_same_subject_and_b0_direction_matters():
    first = generate_subject(11, SMALL, **FAST)
    again = generate_subject(11, SMALL, **FAST)
    assert (
        np.array_equal(first.swi, again.swi) and np.array_equal(first.qsm, again.qsm) and first.lesions == again.lesions
    )
    tilted = generate_subject(11, SMALL.with_(b0_direction=(0.0, 0.5, 0.87)), **FAST)
    assert np.array_equal(first.labels, tilted.labels)  # same anatomy and lesions
    assert not np.allclose(first.swi, tilted.swi)  # another field pattern


def test_written_subject_loads_aligned_with_units_detected(tmp_path):
    acquisition = SMALL.with_(qsm_units="ppm", t2_voxel_mm=(1.5, 1.5, 5.0))
    synthetic = generate_subject(2, acquisition, **FAST)
    paths = write_subject(synthetic, tmp_path)
    loaded = load_subject_dir(paths["swi"].parent)
    assert loaded.qsm_units == "ppm" and loaded.shape == SMALL.shape
    on_grid = generate_subject(2, SMALL, **FAST).t2  # same head, T2 on the SWI grid
    brain = loaded.mask
    assert np.corrcoef(loaded.t2[brain], on_grid[brain])[0, 1] > 0.8  # the T2 on its own grid lands aligned
    record = json.loads(paths["lesions"].read_text())
    assert {l["kind"] for l in record["lesions"]} >= {"cmb", "iron", "vein", "calcification"}
    assert np.allclose(np.asarray(loaded.qsm), synthetic.qsm * 1000, atol=1e-2)
