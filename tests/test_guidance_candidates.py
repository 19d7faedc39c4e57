"""Labelling guidance (protocol flags, suggested class) and the candidate finder on constructed scenes."""

import numpy as np
import pandas as pd
from conftest import oblique_affine, sphere_world
from lesion_scenes import SPACING, scene, world_of, write_scene

from napari_deepmir.cli import main
from napari_deepmir.io import load_subject
from napari_deepmir.lesions.candidates import find_candidates, grow_region
from napari_deepmir.lesions.guidance import (
    FLAG_DIAMAGNETIC,
    FLAG_IRON_OUTSIDE_BG,
    FLAG_NO_QSM,
    FLAG_TOO_LARGE,
    FLAG_VESSEL,
    assess_region,
)

AFFINE = oblique_affine(SPACING)
CMB_A = (world_of(AFFINE, (20, 22, 8)), 1.6, 500.0)
CMB_B = (world_of(AFFINE, (44, 26, 15)), 2.0, 350.0)
CALCIFICATION = (world_of(AFFINE, (30, 44, 11)), 2.0, -400.0)
LARGE = (world_of(AFFINE, (36, 30, 12)), 7.0, 150.0)
TUBE = (48, 46, 1.5, 350.0)  # a vein running across all slices


def _subject(tmp_path, lesions, tubes=(), with_qsm=True):
    swi, qsm, labels, affine = scene(lesions, tubes=tubes)
    files = write_scene(tmp_path, swi, qsm, labels, affine)
    return load_subject(files["swi"], files["qsm"] if with_qsm else None), labels


def test_guidance_flags_tube_large_blob_and_calcification(tmp_path):
    subject, _ = _subject(tmp_path, [CMB_A, CALCIFICATION, LARGE], tubes=[TUBE])
    cmb = assess_region(sphere_world(subject.shape, subject.affine, *CMB_A[:2]), subject)
    assert cmb.suggested_class == "cmb" and cmb.flags == [] and cmb.qsm_peak_ppb > 400
    assert 2.5 < cmb.diameter_mm < 4.0 and cmb.elongation < 1.5

    calcification = assess_region(sphere_world(subject.shape, subject.affine, *CALCIFICATION[:2]), subject)
    assert FLAG_DIAMAGNETIC in calcification.flags and calcification.suggested_class == "reject"
    assert calcification.qsm_peak_ppb < -300  # signed extreme

    tube = np.zeros(subject.shape, bool)
    tube[46:51, 44:49, 3:20] = True
    tube &= subject.swi < 60
    vessel = assess_region(tube, subject)
    assert FLAG_VESSEL in vessel.flags and vessel.suggested_class == "reject" and vessel.elongation > 3

    large = assess_region(sphere_world(subject.shape, subject.affine, *LARGE[:2]), subject, labelled_as="cmb")
    assert FLAG_TOO_LARGE in large.flags and large.diameter_mm > 12
    assert large.suggested_class == "reject"  # too large and not in the basal ganglia

    basal_ganglia = np.full(subject.shape, 3)
    in_basal_ganglia = assess_region(sphere_world(subject.shape, subject.affine, *LARGE[:2]), subject, basal_ganglia)
    assert in_basal_ganglia.suggested_class == "iron" and in_basal_ganglia.location == "basal ganglia"
    lobar = np.full(subject.shape, 1)
    small = sphere_world(subject.shape, subject.affine, *CMB_A[:2])
    misplaced = assess_region(small, subject, lobar, labelled_as="iron")
    assert FLAG_IRON_OUTSIDE_BG in misplaced.flags and misplaced.location == "lobar"


def test_guidance_says_when_there_is_no_qsm(tmp_path):
    subject, _ = _subject(tmp_path, [CMB_A], with_qsm=False)
    verdict = assess_region(sphere_world(subject.shape, subject.affine, *CMB_A[:2]), subject)
    assert FLAG_NO_QSM in verdict.flags and np.isnan(verdict.qsm_mean_ppb)


def test_candidates_rank_lesions_first_and_flag_mimics(tmp_path):
    subject, _ = _subject(tmp_path, [CMB_A, CMB_B, CALCIFICATION], tubes=[TUBE])
    table = find_candidates(subject, max_candidates=30)
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert table["score"].is_monotonic_decreasing
    top_two = table.head(2)
    for centre, *_ in (CMB_A, CMB_B):
        distance = np.linalg.norm(top_two[["x_mm", "y_mm", "z_mm"]].to_numpy() - centre, axis=1)
        assert distance.min() < 1.0
    assert set(top_two["suggested_class"]) == {"cmb"}
    near_calcification = np.linalg.norm(table[["x_mm", "y_mm", "z_mm"]].to_numpy() - CALCIFICATION[0], axis=1) < 1.5
    assert near_calcification.sum() == 1 and FLAG_DIAMAGNETIC in table.loc[near_calcification, "flags"].item()
    vein = (np.abs(table["i"] - TUBE[0]) < 2) & (np.abs(table["j"] - TUBE[1]) < 2)
    assert vein.any() and table.loc[vein, "flags"].str.contains(FLAG_VESSEL).all()
    assert table.loc[vein, "rank"].min() > 2  # both CMBs come before every piece of the vein


def test_model_probabilities_raise_their_lesion(tmp_path):
    subject, _ = _subject(tmp_path, [CMB_A, CMB_B])
    probabilities = np.zeros((3, *subject.shape), np.float32)
    probabilities[0] = 1.0
    believed = sphere_world(subject.shape, subject.affine, CMB_B[0], 3.0)
    probabilities[0][believed], probabilities[1][believed] = 0.1, 0.9
    without = find_candidates(subject, max_candidates=10)
    with_model = find_candidates(subject, probabilities=probabilities, max_candidates=10)
    assert np.isnan(without["probability_mean"]).all()
    first = with_model.iloc[0]
    assert np.linalg.norm(first[["x_mm", "y_mm", "z_mm"]].to_numpy(float) - CMB_B[0]) < 1.0
    assert first["probability_mean"] > 0.8 and first["score"] > without["score"].max()


def test_grown_region_matches_the_blob(tmp_path):
    subject, labels = _subject(tmp_path, [CMB_B])
    seed = np.argwhere(labels == 1).mean(axis=0).round().astype(int)
    region = grow_region(subject, seed)
    truth = labels == 1
    dice = 2 * (region & truth).sum() / (region.sum() + truth.sum())
    assert dice > 0.9


def test_candidates_cli_writes_ranked_csv(tmp_path, capsys):
    swi, qsm, labels, affine = scene([CMB_A, CALCIFICATION])
    files = write_scene(tmp_path / "sub-07", swi, qsm, labels, affine)
    out = tmp_path / "candidates.csv"
    assert main(["candidates", "--subject", str(tmp_path / "sub-07"), "--out", str(out)]) == 0
    assert "sub-07" in capsys.readouterr().out
    table = pd.read_csv(out)
    required = {"rank", "x_mm", "y_mm", "z_mm", "diameter_mm", "qsm_mean_ppb", "suggested_class", "flags"}
    assert required <= set(table.columns)
    assert np.linalg.norm(table.loc[0, ["x_mm", "y_mm", "z_mm"]].to_numpy(float) - CMB_A[0]) < 1.0
    assert files["labels"]  # the label map beside the images is not read by the candidate finder


def test_a_calcification_inside_iron_rich_tissue_is_flagged_by_its_core(tmp_path):
    """In the pallidum a calcification's SWI blob takes in paramagnetic tissue: positive on average,
    negative at its dark core. The guidance reads the core."""
    nucleus = (CALCIFICATION[0], 4.5, 150.0)  # an iron-rich nucleus around the calcification
    swi, qsm, labels, affine = scene([nucleus])
    calcification = sphere_world(swi.shape, affine, CALCIFICATION[0], CALCIFICATION[1])
    swi[calcification], qsm[calcification] = 10.0, -400.0
    files = write_scene(tmp_path, swi, qsm, labels, affine)
    subject = load_subject(files["swi"], files["qsm"])
    painted = sphere_world(subject.shape, subject.affine, CALCIFICATION[0], 3.5)  # the blob, with its rim
    assessment = assess_region(painted, subject)
    assert assessment.qsm_mean_ppb > 0
    assert FLAG_DIAMAGNETIC in assessment.flags and assessment.suggested_class == "reject"
