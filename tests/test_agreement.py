"""deepmir agreement: two raters' label maps that differ in known ways -> kappa, ICC and disagreements by hand."""

import json

import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir.cli import main
from napari_deepmir.io import InputError, Subject
from napari_deepmir.lesions.agreement import consensus_candidates, icc_2_1, read_disagreements
from napari_deepmir.rating.store import AnnotationStore

SHAPE = (20, 20, 10)


def _maps() -> dict[str, tuple[list, list]]:
    """Per subject, (rater A's, rater B's) lesions as (voxel, class)."""
    return {
        # same CMB; A's second CMB is iron for B; B adds a CMB
        "sub-01": ([((2, 2, 2), 1), ((10, 10, 5), 1)], [((2, 2, 2), 1), ((10, 10, 5), 2), ((15, 15, 5), 1)]),
        "sub-02": ([], []),  # nothing for either
        "sub-03": ([((5, 5, 5), 2)], [((5, 5, 5), 2)]),  # the same iron deposit
        "sub-04": ([((3, 3, 3), 1), ((8, 8, 8), 1), ((16, 3, 3), 1)], [((3, 3, 3), 1)]),  # B misses two CMBs
    }


def _write(root, maps) -> None:
    for subject, raters in maps.items():
        for rater, lesions in zip("ab", raters):
            labels = np.zeros(SHAPE, np.uint8)
            for voxel, value in lesions:
                labels[voxel] = value
            (root / rater / subject / "anat").mkdir(parents=True)
            write_nifti(root / rater / subject / "anat" / f"{subject}_dseg.nii.gz", labels, np.eye(4))


def test_agreement_gives_the_hand_computed_kappa_icc_and_disagreements(tmp_path, capsys):
    _write(tmp_path, _maps())
    out = tmp_path / "agreement"
    argv = ["agreement", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--out", str(out)]
    assert main(argv) == 0
    assert "4 subject(s), 4 disagreement(s)" in capsys.readouterr().out
    report = json.loads((out / "agreement.json").read_text())
    cmb, iron = report["cmb"], report["iron"]
    # CMB counts A (2, 0, 0, 3), B (2, 0, 0, 1); matched 1 + 1.
    assert (cmb["n_a"], cmb["n_b"], cmb["n_matched"]) == (5, 3, 2)
    assert cmb["lesion_agreement"] == pytest.approx(2 * 2 / 8)
    # CMB presence A (1, 0, 0, 1), B (1, 0, 0, 1): perfect -> kappa 1.
    assert cmb["presence"] == {"both": 2, "a_only": 0, "b_only": 0, "neither": 2} and cmb["presence_kappa"] == 1.0
    # ICC(2,1) of [[2,2],[0,0],[0,0],[3,1]] by hand: grand mean 1; subject means (2,0,0,2): SSR = 2*4 = 8, MSR = 8/3;
    # rater means (1.25, 0.75): SSC = 4*0.125 = 0.5 = MSC; SST = 10, SSE = 1.5, MSE = 0.5;
    # ICC = (MSR - MSE) / (MSR + MSE + 2 (MSC - MSE) / 4) = (8/3 - 1/2) / (8/3 + 1/2) = 13/19.
    assert cmb["count_icc"] == {"form": "ICC(2,1)", "icc": pytest.approx(13 / 19)}
    # Iron presence A (0, 0, 1, 0), B (1, 0, 1, 0): po 3/4, pe 1/4*2/4 + 3/4*2/4 = 1/2 -> kappa 1/2.
    assert iron["presence_kappa"] == pytest.approx(0.5)
    # Iron counts [[0,1],[0,0],[1,1],[0,0]]: grand 3/8; SSR = 1.375, MSR = 11/24; SSC = 0.125 = MSC; SST = 1.875,
    # SSE = 0.375, MSE = 1/8; ICC = (11/24 - 3/24) / (11/24 + 3/24 + 0) = 4/7.
    assert iron["count_icc"]["icc"] == pytest.approx(4 / 7)
    table = read_disagreements(out / "disagreements.tsv")
    found = sorted(zip(table["subject"], table["kind"], table["class_a"], table["class_b"], table["x_mm"]))
    assert found == [
        ("sub-01", "class", "cmb", "iron", 10.0),
        ("sub-01", "only_b", "none", "cmb", 15.0),
        ("sub-04", "only_a", "cmb", "none", 8.0),
        ("sub-04", "only_a", "cmb", "none", 16.0),
    ]
    assert json.loads((out / "disagreements.json").read_text())["kind"]["Description"].startswith("only_a")


def test_icc_of_identical_counts_is_one_and_of_unrelated_ones_low():
    assert icc_2_1(np.array([[0, 0], [2, 2], [5, 5]])) == pytest.approx(1.0)
    assert icc_2_1(np.array([[0, 5], [5, 0], [0, 5], [5, 0]])) < 0


def test_disagreements_open_as_a_consensus_candidate_list(tmp_path):
    _write(tmp_path, _maps())
    assert main(["agreement", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--out", str(tmp_path)]) == 0
    candidates = consensus_candidates(read_disagreements(tmp_path / "disagreements.tsv", "sub-04"))
    assert list(candidates["rank"]) == [1, 2] and set(candidates["flags"]) == {"rater A: cmb; rater B: none"}
    subject = Subject(swi=np.ones(SHAPE, np.float32), affine=np.eye(4), name="sub-04")
    session = AnnotationStore(tmp_path / "annotations").open(subject, rater="consensus")
    session.set_candidates(candidates)  # the labelling store takes it as its list under review
    reopened = AnnotationStore(tmp_path / "annotations").open(subject, rater="consensus")
    assert list(reopened.candidates["x_mm"]) == list(candidates["x_mm"])
    (tmp_path / "other.tsv").write_text("subject\tx_mm\nsub-04\t1.0\n")
    with pytest.raises(InputError, match="missing columns rank, kind"):
        read_disagreements(tmp_path / "other.tsv")
