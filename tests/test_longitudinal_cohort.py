"""deepmir cohort over a dataset with two sessions per participant: a change table per participant and a cohort
table of follow-ups with new microbleeds per year (sessions dated in sub-X_sessions.tsv)."""

import json

import pytest
import torch

from napari_deepmir.cli import main
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import save_model
from napari_deepmir.model.unet import DeepmirUNet
from napari_deepmir.phantom import Acquisition
from napari_deepmir.phantom.sessions import generate_pairs


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    card = ModelCard(
        name="tiny", modalities=["swi", "qsm", "t2"], architecture={"base_filters": 4, "depth": 3, "context_slices": 1}
    )
    return save_model(tmp_path_factory.mktemp("models") / "tiny", DeepmirUNet(card.in_channels, 3, 4, 3), card)


def test_a_cohort_of_two_session_participants_gets_follow_up_tables(tmp_path, model, capsys):
    root = tmp_path / "bids"
    generate_pairs(
        root, 2, seed=5, acquisition=Acquisition(shape=(64, 72, 20), voxel_mm=(2.5, 2.5, 6.0)),
        fine_voxel_mm=(1.25, 1.25, 3.0),
    )  # fmt: skip
    out = tmp_path / "derivatives"
    main(["cohort", str(root), "--out", str(out), "--model", str(model), "--workers", "1"])
    printed = capsys.readouterr().out
    pairs = read_table(out / "longitudinal.tsv")
    assert list(pairs["participant_id"]) == ["sub-001", "sub-002"] and set(pairs["status"]) == {"done"}
    assert list(pairs["baseline_session"]) == ["ses-1", "ses-1"] and list(pairs["followup_session"]) == ["ses-2"] * 2
    for row in pairs.itertuples():
        truth = json.loads((root / row.participant_id / f"{row.participant_id}_desc-truth_changes.json").read_text())
        assert row.interval_days == truth["IntervalDays"]
        assert row.new_cmb_per_year == pytest.approx(row.new_cmb / (row.interval_days / 365.25), abs=1e-3)
        folder = out / row.participant_id / "ses-2" / "anat"
        assert (folder / f"{row.participant_id}_ses-2_desc-longitudinal_changes.tsv").exists()
        record = json.loads((folder / f"{row.participant_id}_ses-2_desc-longitudinal_grade.json").read_text())
        assert record["Complete"] is True and record["ARIA-H"]["Grade"] == row.aria_h
    assert "2 follow-up(s) compared" in printed and "per year" in printed
