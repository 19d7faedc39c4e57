"""The phantom's physics: dipole field, QSM signs, blooming, truth on the lesions, reproducibility, files;
the wide world: veins, lesion-free subjects, QSM pipelines, and a default world left as it was."""

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from napari_deepmir.cli import main as deepmir
from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.bids import find_subject_files
from napari_deepmir.lesions.components import class_components, load_label_map
from napari_deepmir.phantom import Acquisition, World, generate_subject, write_subject
from napari_deepmir.phantom.physics import dipole_field
from napari_deepmir.phantom.world import INVERSIONS

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


def _assert_qsm_signs(subject, contrast_ppb: float = 50.0) -> None:
    """Microbleeds (>= 2.5 mm) positive and calcifications negative on the QSM, where it has data."""
    kinds = {
        kind: [l for l in subject.lesions if l["kind"] == kind] for kind in ("cmb", "calcification", "iron", "vein")
    }
    assert all(kinds.values()), "every kind of object is present"
    inside_qsm = [l for l in subject.lesions if np.all(_neighbourhood(subject.qsm, _index(subject, l)) != 0)]
    checked = 0
    for lesion in (
        l for l in kinds["cmb"] if l["diameter_mm"] >= 2.5 and l in inside_qsm
    ):  # small ones vanish in 16 mm3 voxels
        assert _neighbourhood(subject.qsm, _index(subject, lesion)).max() > contrast_ppb, lesion
        assert _neighbourhood(subject.qsm, _index(subject, lesion)).mean() > 0, lesion
        checked += 1
    for lesion in (l for l in kinds["calcification"] if l in inside_qsm):
        index = _index(subject, lesion)
        assert _neighbourhood(subject.qsm, index).min() < -contrast_ppb, lesion
        # at its centre, not the mean of the neighbours: one in the iron-rich pallidum sits in strongly positive tissue
        assert subject.qsm[index] < 0, lesion
        checked += 1
    assert checked >= 2


def test_microbleeds_are_paramagnetic_and_calcifications_diamagnetic_on_qsm(subject):
    _assert_qsm_signs(subject)


@pytest.mark.parametrize("inversion", INVERSIONS)
def test_each_qsm_inversion_keeps_the_sign_of_microbleeds_and_calcifications(inversion):
    _assert_qsm_signs(generate_subject(3, SMALL, world=World(inversion=inversion), **FAST), contrast_ppb=20.0)


def test_the_default_world_is_unchanged(subject):
    """Seed 3 gives what it gave before worlds existed (checksums computed on main at eeb02a7): the shipped
    model's training recipe and the other tests depend on it."""
    assert hashlib.sha256(subject.labels.tobytes()).hexdigest()[:16] == "c4e20b97fe5517f8"
    lesions = json.dumps(subject.lesions, sort_keys=True).encode()
    assert hashlib.sha256(lesions).hexdigest()[:16] == "fa4c1607f95b5b83"
    assert float(subject.qsm.astype(np.float64).sum()) == pytest.approx(-728582.95, rel=1e-5)
    assert float(subject.swi.astype(np.float64).sum()) == pytest.approx(44250972.5, rel=1e-6)
    assert generate_subject(3, SMALL, world=World(), **FAST).lesions == subject.lesions


def test_the_wide_world_has_more_veins_in_every_orientation(subject):
    wide = generate_subject(3, SMALL, world=World.wide(lesion_burden="default"), **FAST)
    veins = [l for l in wide.lesions if l["kind"] == "vein"]
    assert len(veins) > 5 * sum(l["kind"] == "vein" for l in subject.lesions)
    assert {"pial", "medullary", "internal cerebral", "superior sagittal sinus"} <= {v["vessel"] for v in veins}
    directions = np.abs(np.array([v["direction"] for v in veins]))
    assert (directions[:, 2] > 0.8).mean() < 0.4  # not mostly along z (the default world: 70 %)
    dominant = np.bincount(directions.argmax(axis=1), minlength=3) / len(veins)
    assert dominant.min() > 0.15, dominant  # every axis has its share
    diameters = [v["diameter_mm"] for v in veins]
    assert min(diameters) < 0.5 and max(diameters) > 2.5  # sub-voxel to sinus-wide
    _assert_qsm_signs(wide, contrast_ppb=20.0)


def test_qsm_mask_erosion_leaves_the_cortex_without_qsm():
    brain = None
    for erosion_mm, least, most in ((0.0, 0.0, 0.5), (5.0, 0.95, 1.0)):
        subject = generate_subject(3, SMALL, world=World(qsm_erosion_mm=erosion_mm), **FAST)
        if brain is None:
            brain = ndimage.binary_fill_holes(subject.locations > 0)
            outer_shell = brain & ~ndimage.binary_erosion(brain)  # the cortex: 2 mm in-plane, 4 mm through
        without_qsm = (subject.qsm[outer_shell] == 0).mean()
        assert least <= without_qsm <= most, (erosion_mm, without_qsm)


@pytest.mark.parametrize("burden, expected", [(["--lesion-free"], "none"), (["--lesion-burden", "default"], "default")])
def test_synth_wide_subjects_have_the_lesion_burden_asked_for(tmp_path, burden, expected):
    argv = ["synth", str(tmp_path), "--subjects", "2", "--seed", "4", "--world", "wide", *burden]
    argv += ["--shape", "80", "96", "30", "--voxel-size", "2", "2", "4", "--fine-voxel", "1", "1", "2"]
    assert deepmir(argv) == 0
    for folder in sorted(tmp_path.glob("sub-*")):
        record = json.loads(next(folder.glob("anat/*_lesions.json")).read_text())
        assert record["world"]["lesion_burden"] == expected and record["world"]["veins"] == "anatomical"
        microbleeds = [l for l in record["lesions"] if l["label"] == 1]
        labelled = load_label_map(find_subject_files(folder)["labels"]).data.any()
        if expected == "none":
            assert not [l for l in record["lesions"] if l["label"]] and not labelled
        else:  # the training world's 3-12 microbleeds, though the wide world's own burden is a cohort's
            assert 3 <= len(microbleeds) <= 12 and labelled


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


def test_written_subject_loads_aligned_with_its_qsm_units_stated(tmp_path):
    acquisition = SMALL.with_(qsm_units="ppm", t2_voxel_mm=(1.5, 1.5, 5.0))
    synthetic = generate_subject(2, acquisition, **FAST)
    paths = write_subject(synthetic, tmp_path)
    loaded = load_subject_dir(paths["swi"].parent)
    assert loaded.qsm_units == "ppm" and loaded.shape == SMALL.shape
    # BIDS expects a Chimap in ppm: a phantom drawn in ppm or ppb says which in its sidecar's Units
    assert json.loads(paths["qsm_sidecar"].read_text()) == {"Units": "ppm"} and loaded.qsm_units_source == "sidecar"
    on_grid = generate_subject(2, SMALL, **FAST).t2  # same head, T2 on the SWI grid
    brain = loaded.mask
    assert np.corrcoef(loaded.t2[brain], on_grid[brain])[0, 1] > 0.8  # the T2 on its own grid lands aligned
    record = json.loads(paths["lesions"].read_text())
    assert {l["kind"] for l in record["lesions"]} >= {"cmb", "iron", "vein", "calcification"}
    assert np.allclose(np.asarray(loaded.qsm), synthetic.qsm * 1000, atol=1e-2)


def test_a_box_around_a_point_outside_the_grid_is_empty_not_misshapen():
    """A mastoid cell drawn beyond the field of view (a wide-world head near its edge) gave a box whose
    slices and world coordinates disagreed, and the subject failed to generate."""
    from napari_deepmir.phantom.lesions import Maps

    shape = (20, 20, 10)
    maps = Maps(np.eye(4), np.ones(3), *(np.zeros(shape) for _ in range(7)))
    for z in range(-12, 24):  # a box ending one voxel before the grid was cut by numpy's negative index
        slices, world = maps.box((5.0, 5.0, float(z)), 2.0)
        assert maps.tissue[slices].shape == world.shape[1:], z
    slices, world = maps.box((-40.0, 5.0, 5.0), 2.0)
    assert world.size == 0
