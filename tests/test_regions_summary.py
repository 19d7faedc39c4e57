"""Region maps in the subject and the lesion table; the per-participant summary (MARS counts, burden, pattern)."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import oblique_affine, write_nifti
from lesion_scenes import SHAPE, SPACING, scene, world_of, write_scene

from napari_deepmir.cli import main
from napari_deepmir.conventions import REGION_NAMES, RIGHT_OFFSET
from napari_deepmir.io.bids import find_subject_files
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.lesions.summary import burden_category, cmb_pattern, participant_summary

AFFINE = oblique_affine(SPACING)
CODE = {name: code for code, name in REGION_NAMES.items()}


def region_map(shape=SHAPE) -> np.ndarray:
    """Slabs along k (cerebellum, deep grey matter, lobes), split along j, left (i < half) and right."""
    regions = np.zeros(shape, np.uint8)
    half_j = shape[1] // 2
    for (k0, k1), (front, back) in (
        ((0, 8), ("cerebellum", "brainstem")),
        ((8, 16), ("basal ganglia", "thalamus")),
        ((16, shape[2]), ("frontal", "parietal")),
    ):
        regions[:, :half_j, k0:k1] = CODE[front]
        regions[:, half_j:, k0:k1] = CODE[back]
    regions[shape[0] // 2 :] += np.uint8(RIGHT_OFFSET) * (regions[shape[0] // 2 :] > 0).astype(np.uint8)
    return regions


def place_lesions(regions: np.ndarray, seed: int, n: int = 14):
    """Labels with 2x2x2 lesions inside single regions at random places; returns labels and the truth list
    (class, region, side) per lesion."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(regions.shape, np.uint8)
    truth = []
    while len(truth) < n:
        corner = rng.integers(1, np.array(regions.shape) - 3)
        box = tuple(slice(c, c + 2) for c in corner)
        grown = tuple(slice(c - 1, c + 3) for c in corner)
        values = np.unique(regions[box])
        if len(values) != 1 or values[0] == 0 or labels[grown].any():
            continue
        value = 2 if rng.random() < 0.2 else 1
        labels[box] = value
        code = int(values[0])
        truth.append((value, REGION_NAMES[code % RIGHT_OFFSET], "right" if code > RIGHT_OFFSET else "left"))
    return labels, truth


@pytest.mark.parametrize("seed", [1, 2])
def test_summary_mars_counts_equal_the_truth_on_subjects_with_known_regions(tmp_path, seed, capsys):
    regions = region_map()
    labels, truth = place_lesions(regions, seed)
    swi, qsm, _, affine = scene([], seed=seed)
    folder = tmp_path / "sub-01"
    write_scene(folder, swi, qsm, labels, affine)
    write_nifti(folder / "sub-01_desc-regions_dseg.nii.gz", regions, affine)
    assert find_subject_files(folder)["regions"].name == "sub-01_desc-regions_dseg.nii.gz"
    out, summary_path = tmp_path / "lesions.tsv", tmp_path / "summary.tsv"
    assert main(["table", "--subject", str(folder), "--out", str(out), "--summary", str(summary_path)]) == 0
    table = read_table(out)
    summary = read_table(summary_path).iloc[0]
    expected = pd.DataFrame(truth, columns=["label", "region", "hemisphere"])
    assert sorted(zip(table["label"], table["region"], table["hemisphere"])) == sorted(truth)
    cmb = expected[expected["label"] == 1]
    for region in REGION_NAMES.values():
        for side in ("left", "right"):
            n = int(((cmb["region"] == region) & (cmb["hemisphere"] == side)).sum())
            assert summary[f"cmb_definite_{region.replace(' ', '_')}_{side}"] == n, (region, side)
            assert summary[f"cmb_possible_{region.replace(' ', '_')}_{side}"] == 0
    n_cmb = len(cmb)
    assert summary["n_cmb_definite"] == n_cmb and str(summary["cmb_burden"]) == burden_category(n_cmb)
    assert summary["participant_id"] == "sub-01"
    sidecar = json.loads(summary_path.with_suffix(".json").read_text())
    assert "Units" in sidecar["cmb_volume_mm3"] and "frontal" in sidecar["cmb_definite_frontal_left"]["Description"]
    # the region map gives the coarse location too (cerebellum and brainstem -> infratentorial)
    assert summary["cmb_definite_mars_infratentorial"] == int(cmb["region"].isin(["cerebellum", "brainstem"]).sum())


def test_possible_lesions_are_counted_apart_and_leave_burden_and_pattern():
    table = pd.DataFrame(
        {
            "class": ["cmb", "cmb", "cmb", "iron"],
            "label": [1, 1, 1, 2],
            "volume_mm3": [2.0, 3.0, 5.0, 10.0],
            "qsm_mean_ppb": [300.0, 200.0, 100.0, 80.0],
            "susceptibility_moment_ppb_mm3": [500.0, 400.0, 300.0, 700.0],
            "location": ["lobar", "lobar", "deep", "basal ganglia"],
            "region": ["frontal", "occipital", "thalamus", "basal ganglia"],
            "hemisphere": ["left", "right", "right", "left"],
            "certainty": ["definite", "definite", "possible", "definite"],
        }
    )
    summary = participant_summary(table, "sub-02")
    assert (summary["n_cmb_definite"], summary["n_cmb_possible"]) == (2, 1)
    assert summary["cmb_possible_thalamus_right"] == 1 and summary["cmb_definite_thalamus_right"] == 0
    assert summary["cmb_burden"] == "2-4" and summary["cmb_pattern"] == "strictly lobar"  # the possible deep one aside
    assert summary["cmb_volume_mm3"] == 10.0 and summary["cmb_susceptibility_moment_ppb_mm3"] == 500 + 400 + 300
    assert summary["iron_susceptibility_moment_ppb_mm3"] == 700.0
    coarse = participant_summary(table.drop(columns=["region", "hemisphere", "certainty"]), "sub-02")
    assert np.isnan(coarse["cmb_definite_frontal_left"]) and coarse["cmb_definite_lobar"] == 2
    assert coarse["cmb_pattern"] == "mixed"


def test_burden_categories_and_patterns():
    assert [burden_category(n) for n in (0, 1, 2, 4, 5, 30)] == ["0", "1", "2-4", "2-4", ">=5", ">=5"]
    assert cmb_pattern([]) == "none"
    assert cmb_pattern(["lobar", "lobar"]) == "strictly lobar"
    assert cmb_pattern(["deep", "basal ganglia", "brainstem"]) == "strictly deep"  # brainstem is deep
    assert cmb_pattern(["lobar", "brainstem"]) == "mixed"
    assert cmb_pattern(["lobar", ""]) == "undetermined"


def test_a_region_map_with_unknown_codes_is_refused_naming_the_file(tmp_path, capsys):
    swi, qsm, labels, affine = scene([(world_of(AFFINE, (32, 32, 12)), 2.0, 300.0)], affine=AFFINE)
    folder = tmp_path / "sub-01"
    write_scene(folder, swi, qsm, labels, affine)
    regions = region_map()
    regions[0, 0, 0] = 50
    bad = write_nifti(folder / "sub-01_desc-regions_dseg.nii.gz", regions, affine)
    assert main(["table", "--subject", str(folder), "--out", str(tmp_path / "t.tsv")]) == 2
    error = capsys.readouterr().err
    assert bad in error and "50" in error
    assert not (tmp_path / "t.tsv").exists()


def test_without_a_region_map_region_stays_empty_and_location_works(tmp_path):
    swi, qsm, labels, affine = scene([(world_of(AFFINE, (32, 32, 12)), 2.0, 300.0)], affine=AFFINE)
    folder = tmp_path / "sub-01"
    write_scene(folder, swi, qsm, labels, affine)
    write_nifti(folder / "sub-01_desc-locations_dseg.nii.gz", np.ones(SHAPE, np.uint8), affine)
    out, summary_path = tmp_path / "t.csv", tmp_path / "s.tsv"
    assert main(["table", "--subject", str(folder), "--out", str(out), "--summary", str(summary_path)]) == 0
    table = pd.read_csv(out)
    assert list(table["location"]) == ["lobar"] and ("region" not in table or table["region"].isna().all())
    summary = read_table(summary_path).iloc[0]
    assert summary["cmb_definite_lobar"] == 1 and np.isnan(summary["cmb_definite_frontal_left"])
    assert summary["cmb_pattern"] == "strictly lobar" and str(summary["cmb_burden"]) == "1"
