"""Follow-up scans: synthetic pairs with head motion, matching across time, the ARIA-H grade and its outputs.

Detection is not the point here: each session's truth label map stands in for its detections."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from napari_deepmir.cli import main
from napari_deepmir.io import save_labels
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.longitudinal.changes import compare_lesions, new_microbleeds
from napari_deepmir.longitudinal.grading import AriaGrade, microbleed_grade, siderosis_grade, weighted_kappa
from napari_deepmir.phantom import Acquisition, generate_subject
from napari_deepmir.phantom.sessions import generate_pair, write_pair

SMALL = Acquisition(shape=(80, 96, 30), voxel_mm=(2.0, 2.0, 4.0))
FAST = {"fine_voxel_mm": (1.0, 1.0, 2.0)}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Seed 3 with 5 new microbleeds (moderate) and one resolved, the head moved by the full 5 deg / 5 mm."""
    pair = generate_pair(3, SMALL, new_cmbs=5, resolved=True, max_rotation_deg=5, max_shift_mm=5, **FAST)
    return pair, write_pair(pair, tmp_path_factory.mktemp("pairs"))


def _truth_args(folder, name="sub-003"):
    return [
        "--baseline", str(folder / "ses-1"), "--followup", str(folder / "ses-2"),
        "--baseline-labels", str(folder / "ses-1" / "anat" / f"{name}_ses-1_dseg.nii.gz"),
        "--followup-labels", str(folder / "ses-2" / "anat" / f"{name}_ses-2_dseg.nii.gz"),
    ]  # fmt: skip


def test_aria_h_grade_follows_the_rule_at_every_boundary():
    """Cogswell et al. AJNR 2022: microbleeds 1-4 mild, 5-9 moderate, >= 10 severe; siderosis 1, 2, > 2."""
    assert [microbleed_grade(n) for n in (0, 1, 4, 5, 9, 10, 30)] == [
        "none", "mild", "mild", "moderate", "moderate", "severe", "severe"
    ]  # fmt: skip
    assert [siderosis_grade(n) for n in (0, 1, 2, 3, 7)] == ["none", "mild", "moderate", "severe", "severe"]
    assert AriaGrade(2, new_siderosis=3).grade == "severe"  # the more severe of the two
    record = AriaGrade(4).record()
    assert record["Grade"] == "mild" and record["NewSuperficialSiderosis"] == "n/a"
    assert "not assessed" in record["SiderosisGrade"] and "Cogswell" in record["Source"]
    assert weighted_kappa(["none", "mild", "severe"], ["none", "mild", "severe"]) == pytest.approx(1.0)
    assert weighted_kappa(["none", "mild", "severe"], ["mild", "mild", "moderate"]) < 1.0


def _table(rows):
    columns = ["lesion_id", "class", "x_mm", "y_mm", "z_mm", "volume_mm3", "diameter_mm", "extent_mm"]
    return pd.DataFrame(rows, columns=columns)


def test_lesions_are_matched_across_time_in_millimetres_through_the_registration():
    baseline = _table(
        [(1, "cmb", 0, 0, 0, 8, 2.5, 3), (2, "cmb", 30, 0, 0, 8, 2.5, 3), (3, "cmb", 0, 40, 0, 8, 2.5, 3)]
    )
    moved = np.eye(4)
    moved[:3, 3] = (10, 0, 0)  # the head 10 mm to the right at follow-up
    followup = _table(
        [
            (1, "cmb", 12, 0, 0, 8, 2.5, 3),  # lesion 1, 2 mm off after the registration: persisting
            (2, "cmb", 40, 0, 0, 60, 4.9, 6),  # lesion 2, 7.5 times the volume: grown
            (3, "cmb", 10, -30, 0, 8, 2.5, 3),  # nowhere at baseline: new
        ]
    )
    changes = compare_lesions(baseline, followup, np.linalg.inv(moved))
    status = dict(zip(changes["status"], changes["baseline_lesion_id"]))
    assert sorted(changes["status"]) == ["grown", "new", "persisting", "resolved"]
    assert status["persisting"] == 1 and status["grown"] == 2 and status["resolved"] == 3
    new = changes[changes["status"] == "new"].iloc[0]
    assert (new["x_mm"], new["y_mm"]) == (0, -30)  # in the baseline's world
    assert new_microbleeds(changes) == 1
    changes.loc[changes["status"] == "new", "review"] = "rejected"
    assert new_microbleeds(changes) == 0


def test_a_synthetic_follow_up_is_the_same_head_moved_with_new_and_resolved_microbleeds(pair):
    pair, folder = pair
    changes = pair.changes
    assert (changes["status"] == "new").sum() == 5 and (changes["status"] == "resolved").sum() == 1
    assert pair.rotation_deg <= 5 and pair.shift_mm <= 5
    assert not np.allclose(pair.baseline.swi, pair.followup.swi)  # moved head, other noise
    for row in changes[changes["status"] != "resolved"].itertuples():  # each follow-up centre is labelled there
        point = np.linalg.solve(pair.followup.affine, [row.followup_x_mm, row.followup_y_mm, row.followup_z_mm, 1])
        assert pair.followup.labels[tuple(np.round(point[:3]).astype(int))] > 0
    sessions = read_table(folder / "sub-003_sessions.tsv")
    assert list(sessions["session_id"]) == ["ses-1", "ses-2"]
    truth = json.loads((folder / "sub-003_desc-truth_changes.json").read_text())
    assert truth["NewMicrobleeds"] == 5 and truth["HeadMotion"]["RotationDeg"] == round(pair.rotation_deg, 3)


def test_without_a_change_the_baseline_is_the_single_scan_subject():
    quiet = generate_pair(7, SMALL, new_cmbs=0, resolved=False, **FAST)
    assert np.array_equal(quiet.baseline.swi, generate_subject(7, SMALL, **FAST).swi)


def test_deepmir_longitudinal_grades_a_moved_follow_up_and_never_overwrites(pair, tmp_path, capsys):
    pair, folder = pair
    truth = folder / "sub-003_desc-truth_changes.tsv"
    out = tmp_path / "out"
    assert main(["longitudinal", *_truth_args(folder), "--out", str(out), "--truth", str(truth)]) == 0
    changes = read_table(out / "sub-003_desc-longitudinal_changes.tsv")
    record = json.loads((out / "sub-003_desc-longitudinal_grade.json").read_text())
    assert record["Complete"] is True and record["ARIA-H"]["Grade"] == "moderate"
    assert record["ARIA-H"]["NewMicrobleeds"] == 5 and record["Registration"]["ResidualMm"] < 2
    assert record["Registration"]["ResidualCheckedOn"] == "T2"  # both sessions have a T2
    score = record["TruthScore"]
    assert score["found"] == 5 and score["false_new"] == 0 and score["persisting_called_new"] == 0
    assert (changes["status"] == "resolved").sum() == 1
    assert "ARIA-H moderate" in capsys.readouterr().out
    assert main(["longitudinal", *_truth_args(folder), "--out", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err


@pytest.mark.parametrize("baseline_detection", ["all lesions", "none"])
def test_a_follow_up_without_change_has_no_new_lesion_and_grade_none(baseline_detection, tmp_path):
    """Also when the baseline's detection found nothing: the baseline image shows every lesion of the follow-up."""
    quiet = generate_pair(11, SMALL, new_cmbs=0, resolved=False, max_rotation_deg=5, max_shift_mm=5, **FAST)
    folder = write_pair(quiet, tmp_path / "data")
    assert quiet.rotation_deg > 0.5 or quiet.shift_mm > 0.5  # motion there is
    args = _truth_args(folder, "sub-011")
    if baseline_detection == "none":
        empty = np.zeros_like(quiet.baseline.labels)
        empty = save_labels(tmp_path / "none_dseg.nii.gz", empty, quiet.baseline.affine)
        args[args.index("--baseline-labels") + 1] = str(empty)
    assert main(["longitudinal", *args, "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "sub-011_desc-longitudinal_grade.json").read_text())
    assert record["ARIA-H"]["Grade"] == "none" and record["ARIA-H"]["NewMicrobleeds"] == 0
    assert "cmb_new" not in record["Counts"] and "cmb_resolved" not in record["Counts"]


def test_labels_off_the_session_grid_are_refused_with_the_file_named(pair, tmp_path, capsys):
    pair, folder = pair
    wrong = save_labels(tmp_path / "coarse_dseg.nii.gz", pair.followup.labels[::2, ::2], pair.followup.affine * 2)
    args = _truth_args(folder)
    args[args.index("--followup-labels") + 1] = str(wrong)
    assert main(["longitudinal", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "not on the SWI grid" in err
    assert not (tmp_path / "out" / "sub-003_desc-longitudinal_grade.json").exists()


def _changes_and_score(args, folder, tmp_path, name="sub-003"):
    out = tmp_path / "out"
    truth = folder / f"{name}_desc-truth_changes.tsv"
    assert main(["longitudinal", *args, "--out", str(out), "--truth", str(truth)]) == 0
    record = json.loads((out / f"{name}_desc-longitudinal_grade.json").read_text())
    return read_table(out / f"{name}_desc-longitudinal_changes.tsv"), record


def test_lesions_the_baseline_detection_missed_but_its_image_shows_are_persisting_not_new(pair, tmp_path):
    """An all-zero baseline map (its detection found nothing): the follow-up's lesions are looked for in the baseline
    image at their place through the registration (head moved 5 deg / 5 mm); only the truly new ones are new."""
    pair, folder = pair
    empty = save_labels(tmp_path / "none_dseg.nii.gz", np.zeros_like(pair.baseline.labels), pair.baseline.affine)
    args = _truth_args(folder)
    args[args.index("--baseline-labels") + 1] = str(empty)
    changes, record = _changes_and_score(args, folder, tmp_path)
    score = record["TruthScore"]
    assert score["found"] == 5 and score["false_new"] == 0 and score["persisting_called_new"] == 0
    kept = changes[changes["status"].isin(["persisting", "grown"])]
    assert (kept["class"] == "cmb").sum() == (
        (pair.changes["status"] == "persisting") & (pair.changes["class"] == "cmb")
    ).sum()
    assert set(kept["found_by"]) == {"baseline image"} and record["ARIA-H"]["Grade"] == "moderate"
    assert record["DifferenceEvidence"]["SeenInBaselineImage"] == len(kept)


def test_a_new_microbleed_the_follow_up_detection_missed_is_found_by_the_difference(pair, tmp_path):
    """The follow-up's labels lack its largest new microbleed: the finder's candidate there, absent at baseline."""
    pair, folder = pair
    missed = pair.changes[pair.changes["status"] == "new"].sort_values("diameter_mm").iloc[-1]
    where = [missed.followup_x_mm, missed.followup_y_mm, missed.followup_z_mm, 1]
    centre = np.round(np.linalg.solve(pair.followup.affine, where)[:3]).astype(int)
    components, _ = ndimage.label(pair.followup.labels > 0, structure=np.ones((3, 3, 3)))
    labels = np.where(components == components[tuple(centre)], 0, pair.followup.labels)
    labels = save_labels(tmp_path / "missed_dseg.nii.gz", labels, pair.followup.affine)
    args = _truth_args(folder)
    args[args.index("--followup-labels") + 1] = str(labels)
    changes, record = _changes_and_score(args, folder, tmp_path)
    assert record["TruthScore"]["found"] == 5 and record["TruthScore"]["false_new"] == 0
    assert list(changes.loc[changes["found_by"] == "difference", "status"]) == ["new"]


def test_deepmir_synth_sessions_writes_two_sessions_per_participant_with_the_truth(tmp_path, capsys):
    shape, voxel, fine = ["64", "72", "20"], ["2.5", "2.5", "6"], ["1.25", "1.25", "3"]
    argv = ["synth", str(tmp_path), "--sessions", "2", "--subjects", "1", "--max-rotation", "3", "--max-shift", "2"]
    assert main([*argv, "--shape", *shape, "--voxel-size", *voxel, "--fine-voxel", *fine]) == 0
    assert "1 synthetic pair" in capsys.readouterr().out
    folder = tmp_path / "sub-001"
    for session in ("ses-1", "ses-2"):
        assert (folder / session / "anat" / f"sub-001_{session}_rec-swi_T2starw.nii.gz").exists()
    motion = json.loads((folder / "sub-001_desc-truth_changes.json").read_text())["HeadMotion"]
    assert motion["RotationDeg"] <= 3 and motion["ShiftMm"] <= 2
    assert set(read_table(folder / "sub-001_desc-truth_changes.tsv")["status"]) <= {"new", "persisting", "resolved"}
