"""deepmir cohort: a small BIDS dataset with a corrupt and an incomplete subject, on 2 local Dask workers."""

import json
import shutil

import pytest
import torch

from napari_deepmir.cli import main
from napari_deepmir.detection.cohort import find_cohort, run_cohort
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.io.outputs import dataset_outputs
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import save_model
from napari_deepmir.model.unet import DeepmirUNet
from napari_deepmir.phantom import Acquisition, generate_cohort

SMALL = Acquisition(shape=(64, 72, 20), voxel_mm=(2.5, 2.5, 6.0))


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    """sub-001, sub-002 complete; sub-003 with a truncated SWI; sub-004 without QSM."""
    root = tmp_path_factory.mktemp("bids")
    generate_cohort(root, 4, seed=5, acquisition=SMALL, fine_voxel_mm=(1.25, 1.25, 3.0))
    swi = root / "sub-003" / "anat" / "sub-003_rec-swi_T2starw.nii.gz"
    swi.write_bytes(swi.read_bytes()[: swi.stat().st_size // 2])
    (root / "sub-004" / "anat" / "sub-004_Chimap.nii.gz").unlink()
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    card = ModelCard(
        name="tiny", modalities=["swi", "qsm", "t2"], architecture={"base_filters": 4, "depth": 3, "context_slices": 1}
    )
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


def test_find_cohort_names_what_is_missing(bids):
    ready, problems = find_cohort(bids, ("swi", "qsm", "t2"))
    assert [s.participant_id for s in ready] == ["sub-001", "sub-002", "sub-003"]
    assert set(problems) == {"sub-004"} and "QSM" in problems["sub-004"] and "Chimap" in problems["sub-004"]


def test_a_cohort_runs_reports_failures_and_a_second_run_skips_what_is_done(bids, model, tmp_path, capsys):
    out = tmp_path / "derivatives"
    result = run_cohort(bids, out, model=model, device="cpu", workers=2, progress=False)
    assert sorted(result.done) == ["sub-001", "sub-002"]
    assert set(result.failed) == {"sub-003", "sub-004"}
    assert "sub-003_rec-swi_T2starw.nii.gz" in result.failed["sub-003"]

    failures = read_table(out / "failures.tsv")
    assert list(failures["participant_id"]) == ["sub-003", "sub-004"] and failures["reason"].str.len().min() > 10
    summary = read_table(out / "summary.tsv")
    assert list(summary["participant_id"]) == ["sub-001", "sub-002", "sub-003", "sub-004"]
    assert list(summary["status"]) == ["done", "done", "failed", "failed"]
    lesions = read_table(out / "lesions.tsv")
    for participant in ("sub-001", "sub-002"):
        files = dataset_outputs(out, participant)
        assert files.labels.exists() and files.is_complete()
        per_subject = read_table(files.lesions)
        assert len(per_subject) == (lesions["participant_id"] == participant).sum()
        assert summary.set_index("participant_id").loc[participant, "n_lesions"] == len(per_subject)
    assert (out / "dataset_description.json").exists() and (out / "dseg.tsv").exists()
    assert not list(out.rglob("*.tmp*"))

    stamp = dataset_outputs(out, "sub-001").labels.stat().st_mtime_ns
    assert main(["cohort", str(bids), "--out", str(out), "--model", str(model), "--workers", "2"]) == 1  # some failed
    line = capsys.readouterr().out
    assert "0 done, 2 skipped" in line and "2 failed" in line
    assert dataset_outputs(out, "sub-001").labels.stat().st_mtime_ns == stamp
    assert read_table(out / "lesions.tsv").equals(lesions)

    again = run_cohort(bids, out, model=model, device="cpu", workers=1, overwrite=True, progress=False)
    assert sorted(again.done) == ["sub-001", "sub-002"]
    assert dataset_outputs(out, "sub-001").labels.stat().st_mtime_ns != stamp


def test_a_folder_that_is_not_a_dataset_is_refused_by_name(tmp_path, model, capsys):
    assert main(["cohort", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d"), "--model", str(model)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_subject_identity_comes_from_strict_bids_names(bids, tmp_path):
    """Folders named against BIDS go to the failures table by their own name; the others still run."""
    root = tmp_path / "bids"
    shutil.copytree(bids / "sub-001", root / "sub-001")
    shutil.copytree(bids / "sub-001", root / "sub-001_dup")
    shutil.copytree(bids / "sub-002", root / "sub-..")
    shutil.copytree(bids / "sub-002", root / "sub-Ö2")
    shutil.copytree(bids / "sub-002", root / "sub-005")  # files inside still say sub-002
    ready, problems = find_cohort(root)
    assert [s.participant_id for s in ready] == ["sub-001"]
    assert set(problems) == {"sub-001_dup", "sub-..", "sub-Ö2", "sub-005"}
    assert "letters and digits" in problems["sub-001_dup"] and "another subject" in problems["sub-005"]


def test_provenance_per_subject_and_every_model_listed(bids, model, tmp_path, capsys):
    root = tmp_path / "bids"
    for name in ("sub-001", "sub-002"):
        shutil.copytree(bids / name, root / name)
    torch.manual_seed(1)
    card = ModelCard(
        name="other", modalities=["swi", "qsm", "t2"], architecture={"base_filters": 4, "depth": 3, "context_slices": 1}
    )
    other = save_model(tmp_path / "other", DeepmirUNet(card.in_channels, 3, 4, 3), card)
    out = tmp_path / "derivatives"
    run_cohort(root, out, model=model, device="cpu", workers=1, progress=False)
    shutil.rmtree(out / "sub-002")
    assert main(["cohort", str(root), "--out", str(out), "--model", str(other), "--workers", "1"]) == 0
    assert "1 skipped subject(s) were made by another model (sub-001)" in capsys.readouterr().err
    made = {
        p: json.loads(dataset_outputs(out, p).marker.read_text())["GeneratedBy"]["Model"]
        for p in ("sub-001", "sub-002")
    }
    assert made == {"sub-001": "tiny", "sub-002": "other"}
    description = json.loads((out / "dataset_description.json").read_text())
    assert {(m["Model"], tuple(m["Participants"])) for m in description["Models"]} == {
        ("tiny", ("sub-001",)),
        ("other", ("sub-002",)),
    }
    summary = read_table(out / "summary.tsv").set_index("participant_id")
    assert summary.loc["sub-001", "model"] == "tiny" and summary.loc["sub-002", "model"] == "other"


def test_without_a_model_each_subject_gets_the_shipped_model_for_its_inputs(tmp_path):
    from training_scenes import write_blob_subject

    from napari_deepmir.model.files import read_card
    from napari_deepmir.model.registry import shipped_model_path

    root = tmp_path / "bids"
    full, no_qsm = (write_blob_subject(root, index) for index in (1, 2))
    (no_qsm / f"{no_qsm.name}_Chimap.nii.gz").unlink()
    out = tmp_path / "derivatives"
    result = run_cohort(root, out, device="cpu", workers=1, progress=False)
    assert sorted(result.done) == [full.name, no_qsm.name] and not result.failed and not result.other_models()
    made = {p.name: dataset_outputs(out, p.name).provenance()["GeneratedBy"] for p in (full, no_qsm)}
    assert made[full.name]["Model"] == read_card(shipped_model_path("default")).name
    assert made[full.name]["ModelChoice"] == "the subject has SWI+QSM+T2"
    assert made[no_qsm.name]["Model"] == read_card(shipped_model_path("swi")).name
    assert made[no_qsm.name]["ModelChoice"] == "the subject has no QSM; T2 not used (no shipped model reads SWI+T2)"
