"""Lesion table (measurements vs known spheres), lesion-wise evaluation (vs hand-computed numbers), outputs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import oblique_affine, write_nifti
from lesion_scenes import SPACING, scene, world_of, write_scene

from napari_deepmir.cli import main
from napari_deepmir.lesions.evaluate import evaluate, score_lesions
from napari_deepmir.lesions.measure import label_lesions, lesion_table_features, measure_lesions
from napari_deepmir.lesions.summary import participant_summary

AFFINE = oblique_affine(SPACING)
# Two spheres at known world positions: radius 3 mm at +400 ppb, radius 5 mm at +200 ppb.
SPHERES = [(world_of(AFFINE, (22, 24, 9)), 3.0, 400.0), (world_of(AFFINE, (42, 40, 14)), 5.0, 200.0)]


def test_table_matches_known_spheres(tmp_path, capsys):
    swi, qsm, labels, affine = scene(SPHERES)
    files = write_scene(tmp_path / "sub-01", swi, qsm, labels, affine)  # QSM written in ppm
    out = tmp_path / "derivatives" / "sub-01_lesions.tsv"
    images = ["--swi", files["swi"], "--qsm", files["qsm"]]
    assert main(["table", "--labels", files["labels"], *images, "--out", str(out)]) == 0
    assert "2 lesions" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t").sort_values("volume_mm3").reset_index(drop=True)
    required = {
        "lesion_id",
        "class",
        "volume_mm3",
        "diameter_mm",
        "x_mm",
        "y_mm",
        "z_mm",
        "qsm_mean_ppb",
        "qsm_peak_ppb",
    }
    assert required <= set(table.columns)
    for row, (centre, radius, chi) in zip(table.itertuples(), SPHERES):
        true_volume = 4 / 3 * math.pi * radius**3
        # Voxelising a sphere on 0.8 x 0.8 x 2 mm voxels: volume within 12 %, diameter within 5 %.
        assert row.volume_mm3 == pytest.approx(true_volume, rel=0.12)
        assert row.diameter_mm == pytest.approx(2 * radius, rel=0.05)
        # The world centroid of a symmetric voxelisation lies within 0.3 mm of the sphere's centre.
        assert np.linalg.norm(np.array([row.x_mm, row.y_mm, row.z_mm]) - centre) < 0.3
        # Lesion QSM is uniform: read back in ppb from a ppm file, within float rounding.
        assert row.qsm_mean_ppb == pytest.approx(chi, abs=0.5)
        assert row.qsm_peak_ppb == pytest.approx(chi, abs=0.5)
        # SWI 30 inside vs ~100 around: contrast ~0.7.
        assert row.swi_contrast == pytest.approx(0.7, abs=0.03)
        assert row._3 == "cmb"  # the "class" column
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["volume_mm3"]["Units"] == "mm^3" and sidecar["qsm_mean_ppb"]["Units"] == "ppb"


def test_table_rejects_labels_on_another_grid(tmp_path, capsys):
    swi, qsm, labels, affine = scene(SPHERES[:1])
    files = write_scene(tmp_path, swi, qsm, labels, affine)
    shifted = affine.copy()
    shifted[:3, 3] += 5.0
    moved = write_nifti(tmp_path / "moved_dseg.nii.gz", labels, shifted)
    small = write_nifti(tmp_path / "small_dseg.nii.gz", labels[:32], affine)
    for bad in (moved, small):
        images = ["--swi", files["swi"], "--qsm", files["qsm"]]
        code = main(["table", "--labels", bad, *images, "--out", str(tmp_path / "t.csv")])
        message = capsys.readouterr().err
        assert code == 2 and bad in message and files["swi"] in message
    assert not (tmp_path / "t.csv").exists()


def test_lesion_ids_locations_and_summary():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:4, 2:4, 2:4] = 1
    labels[4, 4, 4] = 2  # touches the CMB at a corner, but is another class: its own lesion
    labels[10, 10, 10] = labels[11, 11, 11] = 1  # corner neighbours: one lesion (26-connectivity)
    ids, classes = label_lesions(labels)
    assert classes == {1: 1, 2: 2, 3: 1}
    assert (ids[labels == 0] == 0).all() and len(np.unique(ids[10:12, 10:12, 10:12])) == 2
    locations = np.full(labels.shape, 1)
    locations[:8] = 3
    table = measure_lesions(labels, affine=np.diag([0.5, 0.5, 2.0, 1.0]), locations=locations)
    assert list(table["location"]) == ["basal ganglia", "basal ganglia", "lobar"]
    assert list(table["volume_mm3"]) == [8 * 0.5, 0.5, 2 * 0.5]
    summary = participant_summary(table, "sub-x")
    assert summary["n_cmb"] == 2 and summary["n_iron"] == 1 and summary["cmb_volume_mm3"] == 5.0
    assert summary["cmb_definite_basal_ganglia"] == 1 and summary["cmb_definite_lobar"] == 1
    assert summary["cmb_pattern"] == "mixed" and summary["cmb_burden"] == "2-4"
    features = lesion_table_features(table)
    assert list(features["index"]) == [0, 1, 2, 3] and features.loc[2, "class"] == "iron"


def _cube(array, corner, value, size=2):
    i, j, k = corner
    array[i : i + size, j : j + size, k : k + size] = value


def _evaluation_folders(tmp_path):
    """Truth and prediction folders of a constructed example (numbers computed by hand in the test)."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    shape = (30, 30, 30)
    # sub-01 truth: CMBs a, b, c and iron d. Prediction: CMB overlapping a, CMB overlapping b, a CMB e
    # that only touches c at a corner (no shared voxel: c missed and e a false positive), iron over d.
    truth1, pred1 = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for corner in ((2, 2, 2), (10, 10, 10), (20, 20, 20)):
        _cube(truth1, corner, 1)
    _cube(truth1, (2, 20, 2), 2, size=4)
    _cube(pred1, (3, 3, 3), 1)
    _cube(pred1, (11, 11, 11), 1, size=1)
    _cube(pred1, (22, 22, 22), 1)
    _cube(pred1, (3, 21, 3), 2)
    # sub-02 truth: CMB f. Prediction: f split in two components (one true positive, the other a false positive: a
    # split lesion counts once), iron false positive g.
    truth2, pred2 = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    truth2[5:10, 5, 5] = 1
    pred2[5, 5, 5] = pred2[9, 5, 5] = 1
    _cube(pred2, (20, 20, 20), 2)
    (tmp_path / "truth/sub-01/anat").mkdir(parents=True)
    write_nifti(tmp_path / "truth/sub-01/anat/sub-01_dseg.nii.gz", truth1, affine)
    write_nifti(tmp_path / "truth/sub-01/anat/sub-01_swi.nii.gz", np.random.rand(*shape), affine)  # not a label map
    (tmp_path / "truth/sub-02").mkdir(parents=True)
    write_nifti(tmp_path / "truth/sub-02/sub-02_dseg.nii.gz", truth2, affine)
    for name, pred in (("sub-01", pred1), ("sub-02", pred2), ("sub-03", pred2)):
        (tmp_path / "pred" / name).mkdir(parents=True)
        write_nifti(tmp_path / "pred" / name / "labels.nii.gz", pred, affine)
    return tmp_path / "truth", tmp_path / "pred"


def test_evaluate_reproduces_hand_computed_numbers(tmp_path, capsys):
    truth, pred = _evaluation_folders(tmp_path)
    out = tmp_path / "report.json"
    assert main(["evaluate", "--truth", str(truth), "--pred", str(pred), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "sub-03" in printed.err and "evaluated 2 subject(s)" in printed.out
    report = json.loads(out.read_text())
    assert report["subjects"] == ["sub-01", "sub-02"] and report["unpaired_pred"] == ["sub-03"]
    cmb, iron = report["cmb"], report["iron"]
    # CMB pooled: truth 3 + 1 = 4, found 2 + 1 = 3; predicted 3 + 2 = 5, true 2 + 1 = 3.
    assert (cmb["n_truth"], cmb["n_truth_found"], cmb["n_pred"], cmb["n_pred_true"]) == (4, 3, 5, 3)
    assert cmb["sensitivity"] == pytest.approx(3 / 4) and cmb["precision"] == pytest.approx(3 / 5)
    assert cmb["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert cmb["fp_per_subject"] == pytest.approx(2 / 2)  # e in sub-01, f's second piece in sub-02
    # Per subject: sub-01 sensitivity 2/3, precision 2/3; sub-02 1/1 and 1/2 -> means 5/6 and 7/12.
    assert cmb["sensitivity_mean_over_subjects"] == pytest.approx(5 / 6)
    assert cmb["precision_mean_over_subjects"] == pytest.approx(7 / 12)
    assert [s["false_positives"] for s in cmb["per_subject"]] == [1, 1]
    # Counts truth (3, 1) vs predicted (3, 2): differences (0, 1) -> bias 0.5, SD 0.7071, r = 1 (two points).
    agreement = cmb["count_agreement"]
    assert agreement["bland_altman_mean_difference"] == pytest.approx(0.5)
    low, high = agreement["bland_altman_limits_of_agreement"]
    assert (low, high) == (pytest.approx(0.5 - 1.96 * 2**-0.5), pytest.approx(0.5 + 1.96 * 2**-0.5))
    assert agreement["pearson_r"] == pytest.approx(1.0)
    # Iron pooled: truth 1 (found), predicted 2 (d's match and g): sensitivity 1, precision 1/2, 1 FP over 2 subjects.
    assert (iron["sensitivity"], iron["precision"], iron["fp_per_subject"]) == (1.0, 0.5, 0.5)
    assert iron["per_subject"][1]["sensitivity"] is None  # no iron truth in sub-02: undefined, written as null


def test_score_lesions_zero_denominators():
    empty = np.zeros((5, 5, 5), np.uint8)
    scores = score_lesions(empty, empty)
    assert math.isnan(scores["cmb"]["sensitivity"]) and math.isnan(scores["cmb"]["f1"])
    lesion = empty.copy()
    lesion[2, 2, 2] = 1
    assert score_lesions(lesion, empty)["cmb"] == {
        "n_truth": 1,
        "n_truth_found": 0,
        "n_pred": 0,
        "n_pred_true": 0,
        "sensitivity": 0.0,
        "precision": pytest.approx(math.nan, nan_ok=True),
        "f1": 0.0,
        "false_positives": 0,
    }


def test_evaluate_names_both_files_when_grids_differ(tmp_path):
    truth = write_nifti(tmp_path / "sub-01_dseg.nii.gz", np.zeros((10, 10, 10), np.uint8), np.eye(4))
    pred = write_nifti(tmp_path / "sub-01_pred.nii.gz", np.zeros((10, 10, 12), np.uint8), np.eye(4))
    with pytest.raises(Exception) as error:
        evaluate(truth, pred)
    assert truth in str(error.value) and pred in str(error.value)


def test_bids_derivative_outputs(tmp_path):
    from napari_deepmir.io.derivatives import read_table, write_dseg_lookup, write_table

    lookup = pd.read_csv(write_dseg_lookup(tmp_path / "dseg.tsv"), sep="\t")
    assert list(lookup.columns) == ["index", "name", "abbreviation", "color"]
    assert list(lookup["index"]) == [0, 1, 2] and lookup.loc[1, "abbreviation"] == "CMB"
    assert all(c.startswith("#") and len(c) == 7 for c in lookup["color"])
    table = pd.DataFrame({"lesion_id": [1, 2], "volume_mm3": [1.23456, math.nan]})
    tsv = write_table(tmp_path / "lesions.tsv", table)
    assert tsv.read_text().splitlines()[1:] == ["1\t1.235", "2\tn/a"]
    assert read_table(tsv)["volume_mm3"].isna().tolist() == [False, True]
    assert write_table(tmp_path / "lesions.csv", table).read_text().splitlines()[2] == "2,"
