"""deepmir cohort: a small BIDS dataset with a corrupt and an incomplete subject, on 2 local Dask workers."""


import pytest
import torch

from napari_deepmir.cli import main
from napari_deepmir.cohort import find_cohort, outputs_of, run_cohort
from napari_deepmir.io.derivatives import read_table
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
    swi = root / "sub-003" / "sub-003_swi.nii.gz"
    swi.write_bytes(swi.read_bytes()[: swi.stat().st_size // 2])
    (root / "sub-004" / "sub-004_Chimap.nii.gz").unlink()
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    card = ModelCard(name="tiny", modalities=["swi", "qsm", "t2"], architecture={"base_filters": 4, "depth": 3, "context_slices": 1})
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


def test_find_cohort_names_what_is_missing(bids):
    ready, problems = find_cohort(bids)
    assert [s.participant_id for s in ready] == ["sub-001", "sub-002", "sub-003"]
    assert set(problems) == {"sub-004"} and "QSM" in problems["sub-004"] and "Chimap" in problems["sub-004"]


def test_a_cohort_runs_reports_failures_and_a_second_run_skips_what_is_done(bids, model, tmp_path, capsys):
    out = tmp_path / "derivatives"
    result = run_cohort(bids, out, model=model, device="cpu", workers=2, progress=False)
    assert sorted(result.done) == ["sub-001", "sub-002"]
    assert set(result.failed) == {"sub-003", "sub-004"}
    assert "sub-003_swi.nii.gz" in result.failed["sub-003"]

    failures = read_table(out / "failures.tsv")
    assert list(failures["participant_id"]) == ["sub-003", "sub-004"] and failures["reason"].str.len().min() > 10
    summary = read_table(out / "summary.tsv")
    assert list(summary["participant_id"]) == ["sub-001", "sub-002", "sub-003", "sub-004"]
    assert list(summary["status"]) == ["done", "done", "failed", "failed"]
    lesions = read_table(out / "lesions.tsv")
    for participant in ("sub-001", "sub-002"):
        files = outputs_of(out, participant)
        assert files["labels"].exists()
        per_subject = read_table(files["lesions"])
        assert len(per_subject) == (lesions["participant_id"] == participant).sum()
        assert summary.set_index("participant_id").loc[participant, "n_lesions"] == len(per_subject)
    assert (out / "dataset_description.json").exists() and (out / "dseg.tsv").exists()
    assert not list(out.rglob("*.tmp*"))

    stamp = outputs_of(out, "sub-001")["labels"].stat().st_mtime_ns
    assert main(["cohort", str(bids), "--out", str(out), "--model", str(model), "--workers", "2"]) == 0
    line = capsys.readouterr().out
    assert "0 done, 2 skipped" in line and "2 failed" in line
    assert outputs_of(out, "sub-001")["labels"].stat().st_mtime_ns == stamp
    assert read_table(out / "lesions.tsv").equals(lesions)

    again = run_cohort(bids, out, model=model, device="cpu", workers=1, overwrite=True, progress=False)
    assert sorted(again.done) == ["sub-001", "sub-002"]
    assert outputs_of(out, "sub-001")["labels"].stat().st_mtime_ns != stamp


def test_a_folder_that_is_not_a_dataset_is_refused_by_name(tmp_path, model, capsys):
    assert main(["cohort", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d"), "--model", str(model)]) == 2
    assert "nowhere" in capsys.readouterr().err
