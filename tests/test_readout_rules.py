"""The clinical readout rules (issue 24): Boston v2.0 pattern, lesion placement, Destrieux lobes, size, moment."""

import numpy as np
import pandas as pd
import pytest
from conftest import write_nifti

from napari_deepmir.io import InputError, Subject
from napari_deepmir.lesions.guidance import FLAG_TOO_LARGE
from napari_deepmir.lesions.measure import measure_lesions
from napari_deepmir.lesions.summary import cmb_pattern, participant_summary
from napari_deepmir.regions.maps import load_segmentation
from napari_deepmir.regions.segmentation import region_name, regions_from_segmentation

#: The segmentation grid: 1 mm voxels, world x = i - 30 (i < 30 is the left hemisphere).
SHAPE = (60, 60, 60)
AFFINE = np.array([[1.0, 0, 0, -30], [0, 1, 0, -30], [0, 0, 1, -30], [0, 0, 0, 1]])


def segmentation(cortex: int = 1028, *, temporal_cortex: int = 1030) -> np.ndarray:
    """Left hemisphere: white matter (2) under a 3 mm cortex on top (label ``cortex``) and a lateral face
    (``temporal_cortex``), a lateral ventricle body deep inside, a temporal horn (5) near the lateral face,
    ventral diencephalon (28), brainstem (16) and cerebellar cortex (8) below."""
    labels = np.zeros(SHAPE, np.int32)
    labels[5:30, 5:55, 15:55] = 2
    labels[5:30, 5:55, 52:55] = cortex
    labels[5:8, 5:55, 15:52] = temporal_cortex
    labels[25:29, 25:35, 18:23] = 4  # lateral ventricle body
    labels[12:15, 30:35, 30:33] = 5  # inferior lateral ventricle (temporal horn)
    labels[20:26, 10:16, 16:20] = 28  # ventral diencephalon
    labels[26:30, 22:29, 2:13] = 16  # brainstem
    labels[5:25, 5:21, 2:11] = 8  # cerebellar cortex
    return labels


def place(maps, ijk) -> tuple[str, object]:
    from napari_deepmir.conventions import LOCATION_NAMES

    return LOCATION_NAMES[int(maps.locations[ijk])], region_name(int(maps.regions[ijk]))


def ball(centre, radius: float, shape=SHAPE) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius**2


# --- finding 1: Boston v2.0 pattern, brainstem and cerebellum apart -----------------------------------------------


def test_cerebellar_microbleeds_are_neither_lobar_nor_deep_and_brainstem_is_deep():
    assert cmb_pattern(["lobar", "lobar", "cerebellum"]) == "strictly lobar"
    assert cmb_pattern(["cerebellum"]) == "cerebellar only"
    assert cmb_pattern(["deep", "cerebellum"]) == "strictly deep"
    assert cmb_pattern(["lobar", "brainstem"]) == "mixed"
    # a map that does not tell brainstem from cerebellum cannot decide lobar + infratentorial
    assert cmb_pattern(["lobar", "infratentorial"]) == "undetermined"


def test_a_lobar_and_cerebellar_patient_reads_strictly_lobar_from_a_segmentation():
    maps = regions_from_segmentation(segmentation(), AFFINE)
    assert place(maps, (15, 12, 6)) == ("cerebellum", ("cerebellum", "left"))
    assert place(maps, (28, 25, 6)) == ("brainstem", ("brainstem", "left"))
    labels = np.zeros(SHAPE, np.uint8)
    labels[ball((15, 40, 53), 1.2)] = 1  # frontal cortex
    labels[ball((15, 30, 53), 1.2)] = 1
    labels[ball((15, 12, 6), 1.2)] = 1  # cerebellum
    table = measure_lesions(labels, affine=AFFINE, locations=maps.locations, regions=maps.regions)
    assert sorted(table["location"]) == ["cerebellum", "lobar", "lobar"]
    summary = participant_summary(table, "sub-01")
    assert summary["cmb_pattern"] == "strictly lobar"
    assert summary["cmb_definite_mars_infratentorial"] == 1 and summary["cmb_definite_cerebellum"] == 1


# --- finding 2: a blooming lesion takes the label it blooms from -------------------------------------------------


def test_a_lesion_blooming_into_csf_is_lobar_in_location_and_region_alike():
    maps = regions_from_segmentation(segmentation(), AFFINE)
    labels = np.zeros(SHAPE, np.uint8)
    labels[ball((15, 40, 56), 2.5)] = 1  # most of it above the cortex (k 52-54), in CSF
    labels[ball((15, 20, 57.5), 1.0)] = 1  # wholly in CSF, 2-3 mm above the cortex
    labels[ball((45, 40, 40), 1.0)] = 1  # far from any label
    table = measure_lesions(labels, affine=AFFINE, locations=maps.locations, regions=maps.regions)
    table = table.sort_values("x_mm")
    assert list(table["location"]) == ["lobar", "lobar", "outside"]
    assert list(table["region"])[:2] == ["frontal", "frontal"] and pd.isna(table["region"].iloc[2])
    assert participant_summary(table.iloc[:2], "sub-01")["cmb_pattern"] == "strictly lobar"


# --- finding 3: Destrieux parcellations -------------------------------------------------------------------------


def test_destrieux_cortex_gives_lobes_and_juxtacortical_white_matter_is_lobar():
    # 11116 ctx_lh_G_front_sup; 11134 ctx_lh_G_temp_sup-Lateral (FreeSurferColorLUT)
    maps = regions_from_segmentation(segmentation(11116, temporal_cortex=11134), AFFINE)
    assert place(maps, (15, 40, 50)) == ("lobar", ("frontal", "left"))  # 2 mm under the cortex
    assert place(maps, (15, 40, 53)) == ("lobar", ("frontal", "left"))
    assert place(maps, (9, 40, 35)) == ("lobar", ("temporal", "left"))
    assert place(maps, (24, 30, 24)) == ("deep", ("deep and periventricular white matter", "left"))


def test_a_destrieux_boundary_sulcus_takes_the_lobe_of_the_nearest_gyrus():
    labels = segmentation(11116, temporal_cortex=11134)
    labels[5:30, 5:12, 52:55] = 11146  # ctx_lh_S_central at the back of the frontal strip
    maps = regions_from_segmentation(labels, AFFINE)
    assert place(maps, (15, 8, 53)) == ("lobar", ("frontal", "left"))


def test_a2005s_cortex_is_lobar_with_its_lobe_unknown():
    maps = regions_from_segmentation(segmentation(1120, temporal_cortex=1150), AFFINE)
    assert place(maps, (15, 40, 50)) == ("lobar", None)
    assert any("a2005s" in note for note in maps.notes)


def test_a_segmentation_without_cortex_labels_is_refused(tmp_path):
    labels = segmentation()
    labels[np.isin(labels, (1028, 1030))] = 2
    path = write_nifti(tmp_path / "wm_only_aseg.nii.gz", labels, AFFINE)
    with pytest.raises(InputError, match="no cortex labels") as error:
        load_segmentation(path)
    assert "wm_only_aseg.nii.gz" in str(error.value)


# --- finding 8: ventral diencephalon and temporal horns ----------------------------------------------------------


def test_ventral_diencephalon_is_brainstem_and_temporal_horn_white_matter_is_temporal():
    maps = regions_from_segmentation(segmentation(), AFFINE)
    assert place(maps, (22, 12, 17)) == ("brainstem", ("brainstem", "left"))
    assert place(maps, (10, 32, 31)) == ("lobar", ("temporal", "left"))  # 2 mm from the temporal horn


# --- finding 4: size on an axial slice, macrobleeds ---------------------------------------------------------------


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum(((grid[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1


def test_a_12x6x6_mm_lesion_measures_12_mm_and_is_a_macrobleed():
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    labels = np.zeros((60, 40, 60), np.uint8)
    labels[_ellipsoid(labels.shape, (30, 20, 15), (12, 6, 6))] = 1  # 12 x 6 x 6 mm, long axis in-plane
    labels[_ellipsoid(labels.shape, (30, 20, 42), (6, 6, 12))] = 1  # 6 x 6 x 12 mm, long axis head-foot
    table = measure_lesions(labels, affine=affine).sort_values("z_mm")
    flat, upright = table.iloc[0], table.iloc[1]
    assert flat["diameter_mm"] < 10  # the equivalent sphere (7.6 mm) passed the 10 mm rule
    assert flat["axial_diameter_mm"] == pytest.approx(12.0, abs=0.5) and flat["macrobleed"]
    assert FLAG_TOO_LARGE in flat["flags"]
    assert upright["axial_diameter_mm"] == pytest.approx(6.0, abs=1.0) and not upright["macrobleed"]
    table["location"] = "lobar"
    summary = participant_summary(table, "sub-01")
    assert summary["n_cmb_macrobleeds"] == 1 and summary["n_cmb"] == 1 and summary["cmb_burden"] == "1"


def test_a_macrobleed_leaves_the_pattern():
    maps = regions_from_segmentation(segmentation(), AFFINE)
    labels = np.zeros(SHAPE, np.uint8)
    labels[ball((15, 40, 53), 1.2)] = 1
    labels[_ellipsoid(SHAPE, (27, 30, 30), (7, 3, 2))] = 1  # 14 mm deep haematoma
    table = measure_lesions(labels, affine=AFFINE, locations=maps.locations, regions=maps.regions)
    assert sorted(table["location"]) == ["deep", "lobar"]
    assert participant_summary(table, "sub-01")["cmb_pattern"] == "strictly lobar"


# --- finding 5: background-subtracted susceptibility x volume -----------------------------------------------------


def test_the_susceptibility_moment_subtracts_the_local_tissue():
    """Two equal bleeds (+400 ppb over their tissue), one in white matter (-30), one in the pallidum (+170): Liu et
    al. 2012's moment is the same; the raw mean x volume is not."""
    shape = (40, 40, 20)
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    qsm = np.full(shape, -30.0, np.float32)
    qsm[20:] = 170.0
    labels = np.zeros(shape, np.uint8)
    for centre in ((10, 20, 10), (30, 20, 10)):
        lesion = _ellipsoid(shape, centre, (4, 4, 2))
        labels[lesion] = 1
        qsm[lesion] += 400.0
    subject = Subject(np.where(labels > 0, 20.0, 100.0).astype(np.float32), affine, qsm)
    table = measure_lesions(labels, subject).sort_values("x_mm")
    volume = float(table["volume_mm3"].iloc[0])
    assert list(table["qsm_tissue_ppb"]) == pytest.approx([-30.0, 170.0])
    assert list(table["susceptibility_moment_ppb_mm3"]) == pytest.approx([400 * volume] * 2, rel=1e-4)
    table["location"] = "lobar"
    assert participant_summary(table, "sub-01")["cmb_susceptibility_moment_ppb_mm3"] == pytest.approx(800 * volume)


# --- finding 8: the FROC over the whole pipeline, 1:1 sensitivity, unreachable rates null -------------------------


def test_the_froc_is_drawn_over_the_pipelines_lesions_and_ends_at_its_operating_point(tmp_path):
    """Truth: CMBs a, b, c. The pipeline's output: one lesion merging a and b (P 0.9), c added by the second stage
    although the U-Net gave it P 0.05, false positives at P 0.99 and 0.3."""
    from napari_deepmir.lesions.evaluate import evaluate

    shape, affine = (30, 30, 10), np.diag([1.0, 1.0, 2.0, 1.0])
    truth, labels, p_cmb = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), np.zeros(shape, np.float32)
    truth[5, 5, 5] = truth[7, 5, 5] = truth[20, 5, 5] = 1
    labels[5:8, 5, 5], p_cmb[5:8, 5, 5] = 1, 0.9
    labels[20, 5, 5], p_cmb[20, 5, 5] = 1, 0.05
    labels[5, 20, 5], p_cmb[5, 20, 5] = 1, 0.99
    labels[20, 20, 5], p_cmb[20, 20, 5] = 1, 0.3
    write_nifti(tmp_path / "sub-01_dseg.nii.gz", truth, affine)
    pred = tmp_path / "pred"
    pred.mkdir()
    write_nifti(pred / "sub-01_space-swi_desc-deepmir_dseg.nii.gz", labels, affine)
    write_nifti(pred / "sub-01_space-swi_label-cmb_desc-deepmir_probseg.nii.gz", p_cmb, affine)
    report = evaluate(tmp_path / "sub-01_dseg.nii.gz", pred / "sub-01_space-swi_desc-deepmir_dseg.nii.gz")
    cmb, froc = report["cmb"], report["cmb"]["froc"]
    assert froc["thresholds"][0] == 0.0
    # the operating point lies on the curve: every lesion kept, sensitivity one to one (the merged lesion finds one)
    assert froc["sensitivity"][0] == pytest.approx(cmb["n_pred_true"] / cmb["n_truth"]) == pytest.approx(2 / 3)
    assert froc["fp_per_subject"][0] == cmb["fp_per_subject"] == 2
    at = froc["sensitivity_at_fp_per_subject"]
    assert at["0.5"] is None  # the P 0.99 false positive is never dropped: unreachable, not 0
    assert at["1.0"] == pytest.approx(1 / 3) and at["2.0"] == pytest.approx(2 / 3)
