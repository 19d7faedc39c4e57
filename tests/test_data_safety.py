"""Issue 22, findings 4 and 7 (outputs): nothing a user made is replaced, results are never silently wrong.

Each test reproduces a probe that lost data or gave a wrong result on the old code, then checks the one rule
(``io/destinations.py``, docs/data-safety.md) that now holds."""

import json
import os
import socket

import nibabel as nib
import numpy as np
import pytest
from conftest import write_nifti
from training_scenes import write_blob_subject

from napari_deepmir.cli import main
from napari_deepmir.io.destinations import LOCK_NAME


@pytest.fixture
def subject(tmp_path):
    """A small annotated subject folder (SWI, QSM, T2, labels on a 48 x 48 x 12 grid of 1 x 1 x 2 mm)."""
    return write_blob_subject(tmp_path / "data", 0)


def _one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_synth_never_replaces_subjects_already_in_its_folder(tmp_path, capsys):
    root = tmp_path / "study"
    (root / "sub-001").mkdir(parents=True)
    truth = root / "sub-001" / "sub-001_dseg.nii.gz"
    truth.write_bytes(b"a rater's ground truth")
    tiny = ["--shape", "24", "24", "8", "--fine-voxel", "2", "2", "4", "--lesion-free"]
    assert main(["synth", str(root), *tiny]) == 2
    _one_line_error(capsys, "sub-001", "--overwrite")
    assert truth.read_bytes() == b"a rater's ground truth"
    assert main(["synth", str(root), *tiny, "--overwrite"]) == 0  # asked: a new subject, written in anat/
    assert nib.load(str(root / "sub-001" / "anat" / "sub-001_dseg.nii.gz")).shape == (24, 24, 8)


def test_cohort_refuses_to_write_into_its_own_input_dataset(tmp_path, capsys):
    root = tmp_path / "bids"
    root.mkdir()
    description = root / "dataset_description.json"
    description.write_text('{"Name": "my raw study", "BIDSVersion": "1.9.0"}')
    assert main(["cohort", str(root), "--out", str(root)]) == 2
    _one_line_error(capsys, "is the input", "derivatives")
    assert main(["cohort", str(root / "sub-01"), "--out", str(root)]) == 2  # a folder holding the input
    _one_line_error(capsys, "holds the input")
    assert json.loads(description.read_text())["Name"] == "my raw study"


def test_cohort_replaces_only_its_own_dataset_files(tmp_path, capsys):
    out = tmp_path / "derivatives"
    out.mkdir()
    (tmp_path / "bids").mkdir()
    description = out / "dataset_description.json"
    description.write_text('{"Name": "another pipeline", "DatasetType": "derivative"}')
    assert main(["cohort", str(tmp_path / "bids"), "--out", str(out)]) == 2
    _one_line_error(capsys, "dataset_description.json", "not written by napari-deepmir")
    assert json.loads(description.read_text())["Name"] == "another pipeline"


def test_a_table_never_writes_its_sidecar_over_a_file_it_did_not_write(subject, tmp_path, capsys):
    out = tmp_path / "sub-strong00_lesions.tsv"
    record = out.with_suffix(".json")  # a synthetic subject's object record
    record.write_text(json.dumps({"subject": "sub-strong00", "seed": 1, "lesions": []}))
    assert main(["table", "--subject", str(subject), "--out", str(out)]) == 2
    _one_line_error(capsys, "sub-strong00_lesions.json", "not written by napari-deepmir")
    assert json.loads(record.read_text())["seed"] == 1 and not out.exists()
    assert main(["candidates", "--subject", str(subject), "--out", str(out), "--max", "5"]) == 2
    _one_line_error(capsys, "sub-strong00_lesions.json")
    assert json.loads(record.read_text())["seed"] == 1

    mine = tmp_path / "mine.tsv"
    assert main(["table", "--subject", str(subject), "--out", str(mine)]) == 0
    assert main(["table", "--subject", str(subject), "--out", str(mine)]) == 0  # its own table: replaced
    capsys.readouterr()
    assert main(["table", "--subject", str(subject), "--out", str(mine), "--summary", str(mine)]) == 2
    _one_line_error(capsys, "given twice")
    assert main(["table", "--subject", str(subject), "--out", str(mine), "--summary", str(tmp_path / "mine.csv")]) == 2
    _one_line_error(capsys, "mine.json", "given twice")  # two sidecars of one name
    assert main(["table", "--subject", str(subject), "--out", str(out), "--overwrite"]) == 0
    assert "seed" not in json.loads(record.read_text())


def test_predict_leaves_a_users_own_lookup_alone_even_through_a_link(subject, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    lookup = out / "dseg.tsv"
    lookup.write_text("index\tname\n0\tmy own background\n")
    args = ["predict", "--subject", str(subject), "--device", "cpu", "--model", "swi"]
    assert main([*args, "--out", str(out)]) == 2
    _one_line_error(capsys, "dseg.tsv", "not written by napari-deepmir")
    assert "my own background" in lookup.read_text() and sorted(p.name for p in out.iterdir()) == ["dseg.tsv"]

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "dseg.tsv").symlink_to(lookup)
    assert main([*args, "--out", str(linked)]) == 2
    _one_line_error(capsys, "symbolic link")
    assert (linked / "dseg.tsv").is_symlink() and "my own background" in lookup.read_text()

    fresh = tmp_path / "fresh"
    assert main([*args, "--out", str(fresh)]) == 0
    assert main([*args, "--out", str(fresh), "--overwrite"]) == 0  # its own lookup is replaced


def test_agreement_and_evaluate_keep_earlier_reports_they_did_not_write(subject, tmp_path, capsys):
    labels = str(next(subject.glob("*_dseg.nii.gz")))
    out = tmp_path / "report.json"
    out.write_text('{"my": "earlier report"}')
    assert main(["evaluate", "--truth", labels, "--pred", labels, "--out", str(out)]) == 2
    _one_line_error(capsys, "report.json", "--overwrite")
    assert json.loads(out.read_text()) == {"my": "earlier report"}
    assert main(["evaluate", "--truth", labels, "--pred", labels, "--out", str(out), "--overwrite"]) == 0
    assert main(["evaluate", "--truth", labels, "--pred", labels, "--out", str(out)]) == 0  # now ours
    capsys.readouterr()
    assert main(["evaluate", "--truth", labels, "--pred", labels, "--out", labels]) == 2
    _one_line_error(capsys, "is an input")

    folder = tmp_path / "agreement"
    folder.mkdir()
    (folder / "agreement.json").write_text('{"kappa": "by hand"}')
    argv = ["agreement", "--a", labels, "--b", labels, "--out", str(folder)]
    assert main(argv) == 2
    _one_line_error(capsys, "agreement.json", "--overwrite")
    assert json.loads((folder / "agreement.json").read_text()) == {"kappa": "by hand"}
    assert main([*argv, "--overwrite"]) == 0 and main(argv) == 0


def test_a_users_dot_old_folder_is_never_taken_for_a_model_backup(subject, tmp_path, capsys):
    backup = tmp_path / ".backup.old"
    backup.mkdir()
    (backup / "notes.txt").write_text("my notes")
    argv = ["predict", "--subject", str(subject), "--model", str(tmp_path / "backup"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    _one_line_error(capsys, "backup")
    assert (backup / "notes.txt").read_text() == "my notes" and not (tmp_path / "backup").exists()


def test_a_leftover_checkpoint_is_never_deleted_without_a_word(tmp_path):
    from training_scenes import TINY

    from napari_deepmir.io import InputError
    from napari_deepmir.training.common import TrainingConfig
    from napari_deepmir.training.trainer import iter_train, train

    data = tmp_path / "data"
    write_blob_subject(data, 0)
    settings = dict(data=[data], steps=6, val_share=0.0, checkpoint_every=2, device="cpu", **TINY)
    run = iter_train(TrainingConfig(out=tmp_path / "model", **settings))
    for report in run:
        if report.step == 3:
            break
    run.close()
    checkpoint = tmp_path / ".model.checkpoint"
    stamp = (checkpoint / "checkpoint.json").read_text()
    with pytest.raises(InputError, match=r"\.model\.checkpoint: holds the checkpoint .* --resume"):
        train(TrainingConfig(out=tmp_path / "model", **settings))
    assert (checkpoint / "checkpoint.json").read_text() == stamp
    assert train(TrainingConfig(out=tmp_path / "model", resume=True, **settings)).steps_run == 6


def test_two_cohorts_into_one_folder_are_refused_by_a_lock(tmp_path, capsys):
    out = tmp_path / "derivatives"
    out.mkdir()
    (tmp_path / "bids").mkdir()
    lock = out / LOCK_NAME
    lock.write_text(f"{os.getpid()} {socket.gethostname()} deepmir cohort\n")  # a cohort alive now
    assert main(["cohort", str(tmp_path / "bids"), "--out", str(out), "--workers", "1"]) == 2
    _one_line_error(capsys, "another deepmir cohort", LOCK_NAME)
    assert not (out / "summary.tsv").exists()


def test_a_lock_left_by_a_killed_cohort_is_taken_over(tmp_path):
    from napari_deepmir.io.destinations import output_lock

    lock = tmp_path / LOCK_NAME
    lock.write_text(f"999999999 {socket.gethostname()} deepmir cohort\n")  # no such process
    with output_lock(tmp_path, "deepmir cohort") as held:
        assert held.read_text().startswith(f"{os.getpid()} ")
    assert not lock.exists()


def test_evaluate_refuses_an_output_set_marked_incomplete(subject, tmp_path, capsys):
    labels = next(subject.glob("*_dseg.nii.gz"))
    pred = tmp_path / "pred" / "sub-strong00"
    pred.mkdir(parents=True)
    image = nib.load(str(labels))
    write_nifti(pred / "sub-strong00_space-swi_desc-deepmir_dseg.nii.gz", np.asarray(image.dataobj), image.affine)
    (pred / "sub-strong00_space-swi_desc-deepmir_dseg.json").write_text('{"Complete": false}')
    argv = ["evaluate", "--truth", str(subject.parent), "--pred", str(tmp_path / "pred")]
    assert main(argv) == 2
    _one_line_error(capsys, "marked incomplete", "--allow-incomplete")
    assert main([*argv, "--allow-incomplete"]) == 0


@pytest.mark.parametrize("distance", ["inf", "1e6", "nan", "0"])
def test_a_matching_distance_must_be_finite_and_bounded(subject, capsys, distance):
    labels = str(next(subject.glob("*_dseg.nii.gz")))
    argv = ["--match", "distance", "--max-distance-mm", distance]
    assert main(["evaluate", "--truth", labels, "--pred", labels, *argv]) == 2
    _one_line_error(capsys, "at most 20 mm")
