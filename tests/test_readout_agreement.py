"""Rater agreement as a reader study reports it (issue 24): definite lesions only, per location, burden kappa."""

import json

import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir.cli import main
from napari_deepmir.io import InputError
from napari_deepmir.io.derivatives import write_table_with_sidecar
from napari_deepmir.lesions.agreement import agreement, weighted_kappa
from napari_deepmir.lesions.measure import COLUMNS, measure_lesions

SHAPE = (20, 20, 10)
#: Per subject, (rater A's, rater B's) microbleeds; rater A rated (10, 10, 5) of sub-01 possible.
RATERS = {
    "sub-01": ([(2, 2, 2), (10, 10, 5)], [(2, 2, 2), (15, 15, 5)]),
    "sub-02": ([(3, 3, 3), (8, 8, 8), (16, 3, 3)], [(3, 3, 3)]),
    "sub-03": ([], []),
    "sub-04": ([(5, 5, 5)], []),
}


def _labels(voxels) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    for voxel in voxels:
        labels[voxel] = 1
    return labels


def _write(root) -> None:
    for subject, raters in RATERS.items():
        for rater, voxels in zip("ab", raters):
            folder = root / rater / subject / "anat"
            folder.mkdir(parents=True)
            write_nifti(folder / f"{subject}_dseg.nii.gz", _labels(voxels), np.eye(4))
    # rater A's labelling session exported its lesion table with the certainty of each accepted lesion
    labels = _labels(RATERS["sub-01"][0])
    marks = [((2.0, 2.0, 2.0), "definite"), ((10.0, 10.0, 5.0), "possible")]
    table = measure_lesions(labels, affine=np.eye(4), certainty=marks)
    folder = root / "a" / "sub-01" / "anat"
    write_table_with_sidecar(folder / "sub-01_desc-annotation_lesions.tsv", table, COLUMNS)
    # and a location map beside it: lobar for x < 10, deep beyond
    locations = np.ones(SHAPE, np.uint8)
    locations[10:] = 2
    write_nifti(folder / "sub-01_desc-locations_dseg.nii.gz", locations, np.eye(4))


def test_agreement_compares_definite_lesions_per_location_with_a_weighted_burden_kappa(tmp_path, capsys):
    _write(tmp_path)
    out = tmp_path / "agreement"
    assert main(["agreement", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--out", str(out)]) == 0
    report = json.loads((out / "agreement.json").read_text())
    cmb = report["cmb"]
    assert report["certainty"] == "definite" and report["possible_left_out"] == {"a": 1, "b": 0}
    # definite microbleeds: A (1, 3, 0, 1), B (2, 1, 0, 0); matched 1 + 1
    assert (cmb["n_a"], cmb["n_b"], cmb["n_matched"]) == (5, 3, 2)
    # burden A (1, 2-4, 0, 1), B (2-4, 1, 0, 0): quadratic weights (i - j)^2 / 9; observed disagreement
    # 3 x 1/4 x 1/9 = 1/12; chance: marginals A (1/4, 1/2, 1/4, 0), B (1/2, 1/4, 1/4, 0) -> 20/144; kappa 1 - 3/5
    assert cmb["burden_kappa"]["kappa"] == pytest.approx(0.4)
    # sub-01 has a location map: both raters' lobar microbleed matched; B's deep one is B's alone
    assert cmb["by_location"]["lobar"] | {"count_icc": None} == {
        "n_a": 1,
        "n_b": 1,
        "n_matched": 1,
        "lesion_agreement": 1.0,
        "count_icc": None,
    }
    assert (cmb["by_location"]["deep"]["n_a"], cmb["by_location"]["deep"]["n_b"]) == (0, 1)


def test_weighted_kappa_of_perfect_and_of_opposite_ratings():
    categories = ("0", "1", "2-4", ">=5")
    assert weighted_kappa(["0", "1", ">=5"], ["0", "1", ">=5"], categories) == 1.0
    assert weighted_kappa(["0", ">=5"], [">=5", "0"], categories) < 0


def test_a_lesion_table_of_another_label_map_is_refused_naming_it(tmp_path):
    _write(tmp_path)
    folder = tmp_path / "a" / "sub-01" / "anat"
    write_nifti(folder / "sub-01_dseg.nii.gz", _labels([(2, 2, 2)]), np.eye(4))  # redrawn after the export
    with pytest.raises(InputError, match="does not list the lesions") as error:
        agreement(tmp_path / "a", tmp_path / "b")
    assert "sub-01_desc-annotation_lesions.tsv" in str(error.value)
