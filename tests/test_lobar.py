"""Lobar microbleeds beyond an eroded QSM mask: found over the whole brain and flagged as not confirmed by QSM."""

import numpy as np
import pytest
from conftest import oblique_affine, sphere_world, write_nifti
from scipy import ndimage

from napari_deepmir.cli import main
from napari_deepmir.detection.pipeline import predict_subject
from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.nifti import voxel_sizes
from napari_deepmir.lesions.components import class_components
from napari_deepmir.lesions.measure import label_lesions, measure_lesions
from napari_deepmir.lesions.postprocess import apply_postprocess
from napari_deepmir.model.files import load_model
from napari_deepmir.model.registry import default_model_path
from napari_deepmir.phantom import Acquisition, generate_subject, write_subject

#: Within the shipped model's training range (1.2 mm in-plane, 2.5 mm slices), simulated on a 2x finer grid.
ACQUISITION = Acquisition(shape=(147, 173, 51), voxel_mm=(1.2, 1.2, 2.5))
EROSION_MM = 4.0


def erode_qsm(qsm: np.ndarray, spacing, mm: float) -> np.ndarray:
    """QSM set to 0 where its support, eroded by ``mm`` (world distance), no longer reaches, as pipelines do."""
    inside = ndimage.distance_transform_edt(np.pad(qsm != 0, 1), sampling=spacing)[1:-1, 1:-1, 1:-1] > mm
    return np.where(inside, qsm, 0).astype(np.float32)


@pytest.fixture(scope="module")
def eroded(tmp_path_factory):
    """A phantom subject (seed 1: a lobar microbleed at the cortex) written with a 4 mm-eroded QSM, its truth
    and its brain (the phantom's location map)."""
    synthetic = generate_subject(1, ACQUISITION, fine_voxel_mm=(0.6, 0.6, 1.25))
    synthetic.qsm = erode_qsm(synthetic.qsm, voxel_sizes(synthetic.affine), EROSION_MM)
    folder = write_subject(synthetic, tmp_path_factory.mktemp("lobar"))["swi"].parent
    return load_subject_dir(folder), synthetic.labels, synthetic.locations > 0


def test_whole_brain_reaches_the_cortex_but_not_the_scalp(eroded):
    subject, truth, brain = eroded
    whole = subject.whole_brain
    assert whole[truth > 0].all(), "every lesion lies in the whole brain"
    # the eroded QSM covers about 80% of the brain; the whole brain misses only where the erosion (4 mm beyond
    # the phantom's own 1.2 mm) exceeds the 5 mm reach
    assert whole[brain].mean() > 0.95 and subject.mask[brain].mean() < 0.85, "the cortex the QSM leaves out is added"
    beyond = whole & ~ndimage.binary_dilation(brain, iterations=2)  # CSF around the brain, then the dark skull
    assert beyond.sum() < 0.01 * whole.sum(), "the skull stops it: the scalp stays out"


def test_a_lobar_microbleed_outside_an_eroded_qsm_is_found_and_flagged(eroded):
    subject, truth, _ = eroded
    truth_ids, count = class_components(truth, 1)
    beyond = [i for i in range(1, count + 1) if not subject.qsm[truth_ids == i].any()]
    assert beyond, "a truth microbleed lies entirely where the eroded QSM has no data"

    model = load_model(default_model_path(), "cpu")
    prediction = predict_subject(subject, model, device="cpu", return_probabilities=True)
    lesion_ids, _ = label_lesions(prediction.labels)
    table = measure_lesions(prediction.labels, subject, probabilities=prediction.probabilities).set_index("lesion_id")
    found = {i: set(np.unique(lesion_ids[(truth_ids == i) & (prediction.labels == 1)])) - {0} for i in beyond}
    flagged = [i for i, hits in found.items() if any(table.loc[h, "qsm_confirmed"] == "no QSM data" for h in hits)]
    assert flagged, f"no microbleed beyond the QSM found and flagged: {found}"
    for hit in found[flagged[0]]:
        assert table.loc[hit, "class"] == "cmb" and table.loc[hit, "qsm_coverage"] == 0

    # the QSM rule as it was (a component without QSM data dropped) loses it
    strict = apply_postprocess(prediction.probabilities, subject, model.card, min_probability_no_qsm=np.inf)
    assert not (strict[truth_ids == flagged[0]] == 1).any()
    confirmed = table[table["qsm_coverage"] > 0]
    assert (confirmed["qsm_confirmed"] == "yes").all(), "lesions QSM covers are confirmed paramagnetic"


def test_a_users_brain_mask_on_its_own_grid_replaces_the_estimate(tmp_path, capsys):
    swi_affine = oblique_affine((1.0, 1.0, 2.0), 0.0, (-48, -56, -40))
    shape = (96, 112, 40)
    head = sphere_world(shape, swi_affine, (0, 0, 0), 40) * 100.0 + np.random.default_rng(0).random(shape)
    swi = write_nifti(tmp_path / "swi.nii.gz", head.astype(np.float32), swi_affine)
    mask_affine = oblique_affine((2.0, 2.0, 2.0), 10.0, (-50, -60, -45))  # its own, oblique grid
    mask = write_nifti(
        tmp_path / "mask.nii.gz", sphere_world((50, 60, 45), mask_affine, (0, 0, 0), 20).astype(np.uint8), mask_affine
    )
    assert main(["info", "--swi", swi, "--mask", mask]) == 0
    voxels = int(capsys.readouterr().out.split("brain mask: ")[1].split()[0])
    assert voxels == pytest.approx(sphere_world(shape, swi_affine, (0, 0, 0), 20).sum(), rel=0.05)
    empty = write_nifti(tmp_path / "empty.nii.gz", np.zeros((50, 60, 45), np.uint8), mask_affine)
    assert main(["info", "--swi", swi, "--mask", empty]) == 2
    assert "the brain mask is empty on the SWI grid" in capsys.readouterr().err
