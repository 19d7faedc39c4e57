"""deepmir evaluate: matching rules against an independent scorer, split lesions, CMB<->iron confusion, places,
the FROC curve from saved probability maps, and the PNG report."""

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import oblique_affine, sphere_world, write_nifti
from PIL import Image
from scipy import ndimage

from napari_deepmir.cli import main
from napari_deepmir.conventions import CLASS_COLORS, CMB, REGION_NAMES
from napari_deepmir.lesions.evaluate import FROC_THRESHOLDS, class_confusion, compare_maps, score_lesions
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import save_model
from napari_deepmir.model.unet import DeepmirUNet

SHAPE = (24, 24, 12)


def independent_adjacent_scores(truth: np.ndarray, pred: np.ndarray, value: int) -> tuple[int, int, int, int]:
    """(n_truth, n_found, n_pred, n_true) written from the rule's words, not the package's code: lesions touch when
    two of their voxels are at most one voxel apart on every axis; a truth lesion is found when a prediction
    touches it; true positives are a largest one-to-one pairing of touching lesions (augmenting paths)."""
    structure = np.ones((3, 3, 3))
    truth_ids, n_truth = ndimage.label(truth == value, structure)
    pred_ids, n_pred = ndimage.label(pred == value, structure)
    truth_voxels = [np.argwhere(truth_ids == n) for n in range(1, n_truth + 1)]
    pred_voxels = [np.argwhere(pred_ids == n) for n in range(1, n_pred + 1)]
    touches = [
        [np.abs(t[:, None, :] - p[None, :, :]).max(axis=2).min() <= 1 for p in pred_voxels] for t in truth_voxels
    ]
    partner: dict[int, int] = {}

    def augment(t, seen):
        for p in range(n_pred):
            if touches[t][p] and p not in seen:
                seen.add(p)
                if p not in partner or augment(partner[p], seen):
                    partner[p] = t
                    return True
        return False

    n_true = sum(augment(t, set()) for t in range(n_truth))
    return n_truth, sum(any(row) for row in touches), n_pred, n_true


def random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth lesions of 1-4 voxels; the prediction shifts each by 0-2 voxels, splits some, drops some, adds some."""
    rng = np.random.default_rng(seed)
    truth, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    for _ in range(14):
        corner = rng.integers(2, np.array(SHAPE) - 5)
        value = int(rng.integers(1, 3))
        length = int(rng.integers(1, 5))
        truth[corner[0] : corner[0] + length, corner[1], corner[2]] = value
        fate = rng.random()
        shifted = corner + rng.integers(-2, 3, 3) * (rng.random(3) < 0.5)
        if fate < 0.6:
            pred[shifted[0] : shifted[0] + length, shifted[1], shifted[2]] = value
        elif fate < 0.8:  # split: both ends only
            pred[corner[0], corner[1], corner[2]] = pred[corner[0] + 3, corner[1], corner[2]] = value
    for _ in range(4):
        pred[tuple(rng.integers(0, np.array(SHAPE)))] = int(rng.integers(1, 3))
    return truth, pred


def test_adjacent_matching_agrees_with_an_independent_lesion_wise_scorer(tmp_path):
    expected = {"cmb": np.zeros(4, int), "iron": np.zeros(4, int)}
    for seed in range(4):
        truth, pred = random_pair(seed)
        for name in ("truth", "pred"):
            (tmp_path / name / f"sub-0{seed}").mkdir(parents=True)
        write_nifti(tmp_path / f"truth/sub-0{seed}/sub-0{seed}_dseg.nii.gz", truth, np.eye(4))
        write_nifti(tmp_path / f"pred/sub-0{seed}/sub-0{seed}_dseg.nii.gz", pred, np.eye(4))
        for value, name in ((1, "cmb"), (2, "iron")):
            expected[name] += independent_adjacent_scores(truth, pred, value)
    out = tmp_path / "report.json"
    argv = ["evaluate", "--truth", str(tmp_path / "truth"), "--pred", str(tmp_path / "pred"), "--out", str(out)]
    assert main([*argv, "--match", "adjacent"]) == 0
    report = json.loads(out.read_text())
    for name in ("cmb", "iron"):
        counts = tuple(report[name][key] for key in ("n_truth", "n_truth_found", "n_pred", "n_pred_true"))
        assert counts == tuple(expected[name]), name
    assert report["cmb"]["n_truth_found"] > 0 and report["rule"] == "adjacent"
    # one voxel of tolerance finds at least as much as overlap
    assert main(argv) == 0
    overlap = json.loads(out.read_text())
    assert overlap["cmb"]["n_truth_found"] <= report["cmb"]["n_truth_found"]


def test_split_lesion_counts_once_distance_rule_and_cmb_iron_confusion():
    truth, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    truth[4:9, 5, 5] = 1
    pred[4, 5, 5] = pred[8, 5, 5] = 1  # split into two pieces
    truth[15, 15, 5] = 1
    pred[15, 15, 5] = 2  # a CMB called iron
    truth[10, 18, 8] = 1
    pred[12, 18, 8] = 1  # 2 voxels away: no contact
    scores = score_lesions(truth, pred)
    assert (scores["cmb"]["n_truth_found"], scores["cmb"]["n_pred_true"], scores["cmb"]["false_positives"]) == (1, 1, 2)
    # at 1.5 mm voxels the pieces of the split lesion and the shifted one are 3 mm from their truth's centre
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    near = score_lesions(truth, pred, rule="distance", affine=affine, max_distance_mm=3.5)["cmb"]
    assert (near["n_truth_found"], near["n_pred_true"], near["false_positives"]) == (2, 2, 1)
    tight = score_lesions(truth, pred, rule="distance", affine=affine, max_distance_mm=2.5)["cmb"]
    assert (tight["n_truth_found"], tight["n_pred_true"]) == (0, 0)
    confusion = class_confusion(compare_maps(truth, pred))
    assert confusion["cmb"] == {"cmb": 1, "iron": 1, "none": 1}  # found, called iron, missed
    assert confusion["none"] == {"cmb": 2, "iron": 0, "none": 0}  # the split's second piece and the shifted one


def test_report_has_confusion_places_and_a_froc_curve_from_saved_probabilities(tmp_path, capsys):
    torch.manual_seed(0)
    card = ModelCard(name="tiny", modalities=["swi"], architecture={"base_filters": 4, "depth": 3, "context_slices": 1})
    model = save_model(tmp_path / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)
    affine = oblique_affine((2.0, 2.0, 4.0), 0.0, (-24, -24, -24))
    shape = (24, 24, 12)
    swi = sphere_world(shape, affine, (0, 0, 0), 22) * 100.0 + np.random.default_rng(0).random(shape)
    subject = tmp_path / "data" / "sub-01"
    subject.mkdir(parents=True)
    write_nifti(subject / "sub-01_swi.nii.gz", swi.astype(np.float32), affine)
    pred_dir = tmp_path / "pred"
    argv = ["predict", "--subject", str(subject), "--model", str(model), "--device", "cpu", "--out", str(pred_dir)]
    assert main([*argv, "--save-probabilities"]) == 0
    probabilities = sorted(p.name for p in pred_dir.glob("*probseg.nii.gz"))
    assert probabilities == [
        "sub-01_space-swi_label-cmb_desc-deepmir_probseg.nii.gz",
        "sub-01_space-swi_label-iron_desc-deepmir_probseg.nii.gz",
    ]
    # Known outputs replace the tiny model's: CMB a at P 0.92, CMB b at P 0.42, a false blob at P 0.62.
    truth, p_cmb, labels = np.zeros(shape, np.uint8), np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
    truth[5, 5, 5] = truth[12, 5, 5] = 1
    truth[20, 20, 10] = 2
    p_cmb[5, 5, 5], p_cmb[12, 5, 5], p_cmb[5, 18, 5] = 0.92, 0.42, 0.62
    labels[p_cmb > 0] = 1
    write_nifti(pred_dir / probabilities[0], p_cmb, affine)
    (predicted,) = [p for p in pred_dir.glob("sub-01*_dseg.nii.gz")]
    write_nifti(predicted, labels, affine)
    write_nifti(subject / "sub-01_dseg.nii.gz", truth, affine)
    write_nifti(subject / "sub-01_desc-regions_dseg.nii.gz", np.full(shape, 1, np.uint8), affine)  # frontal left
    out = tmp_path / "eval" / "report.json"
    assert main(["evaluate", "--truth", str(tmp_path / "data"), "--pred", str(pred_dir), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    froc = report["cmb"]["froc"]
    assert froc["thresholds"] == list(FROC_THRESHOLDS)
    for threshold, sensitivity, fp in zip(froc["thresholds"], froc["sensitivity"], froc["fp_per_subject"]):
        assert sensitivity == pytest.approx(((threshold <= 0.92) + (threshold <= 0.42)) / 2), threshold
        assert fp == (threshold <= 0.62), threshold
    assert froc["sensitivity_at_fp_per_subject"]["0.5"] == 0.5 and froc["sensitivity_at_fp_per_subject"]["1.0"] == 1
    assert list(report["cmb"]["by_region"]) == [f"{REGION_NAMES[1]} left"]
    assert report["cmb"]["by_location"]["lobar"]["n_truth"] == 2
    rows = report["confusion"]
    assert sum(rows["cmb"].values()) == 2 and sum(rows["iron"].values()) == 1
    # the PNG beside the JSON opens and carries the FROC panel with its axes
    png = out.with_suffix(".png")
    assert str(png) in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 800
        assert "false positives per subject vs sensitivity" in image.info["Description"]
        pixels = np.asarray(image.convert("RGB")).astype(int)
    froc_panel = pixels[:, : pixels.shape[1] // 3]
    red = np.round(np.array(CLASS_COLORS[CMB][:3]) * 255)
    assert (np.abs(froc_panel - red).max(axis=2) < 40).sum() > 50  # the CMB curve is drawn in its class colour


@pytest.mark.parametrize(
    ("extra", "problem"),
    [(["--match", "distance"], "--max-distance-mm"), (["--max-distance-mm", "3"], "--match distance")],
)
def test_distance_options_are_checked(tmp_path, capsys, extra, problem):
    label = write_nifti(tmp_path / "sub-01_dseg.nii.gz", np.zeros(SHAPE, np.uint8), np.eye(4))
    assert main(["evaluate", "--truth", label, "--pred", label, *extra]) == 2
    assert problem in capsys.readouterr().err


def test_the_independent_scorer_is_not_trivial():
    """The test's scorer tells contact within one voxel from two voxels apart."""
    truth, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    truth[5, 5, 5] = pred[6, 6, 6] = 1
    truth[15, 5, 5] = pred[17, 5, 5] = 1
    assert independent_adjacent_scores(truth, pred, 1) == (2, 1, 2, 1)
    assert list(itertools.chain(score_lesions(truth, pred, rule="adjacent")["cmb"].values()))[:4] == [2, 1, 2, 1]
