"""Location and MARS region maps from a FreeSurfer-style segmentation written by the test."""

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, write_nifti

from napari_deepmir.cli import main
from napari_deepmir.conventions import LOCATION_NAMES, REGION_NAMES, RIGHT_OFFSET
from napari_deepmir.io import InputError
from napari_deepmir.regions.segmentation import region_name

#: The segmentation grid: 1 mm voxels, world x = i - 40 (left below 0), y = j - 48 (anterior up), z = k - 35.
SHAPE = (80, 96, 70)
ASEG_AFFINE = np.array([[1.0, 0, 0, -40], [0, 1, 0, -48], [0, 0, 1, -35], [0, 0, 0, 1]])
CODE = {name: code for code, name in REGION_NAMES.items()}


def _box(volume, value, x, y, z, *, mirror: int | None = None):
    """Fill world boxes [x0, x1] x [y0, y1] x [z0, z1] (mm); ``mirror``: also the right side with that label."""
    for label, (x0, x1) in ((value, x), (mirror, (-x[1], -x[0]))):
        if label is None:
            continue
        i0, i1 = x0 + 40, x1 + 40
        volume[i0 : i1 + 1, y[0] + 48 : y[1] + 49, z[0] + 35 : z[1] + 36] = label


def write_aseg(path, *, parcellated=True, callosum=True):
    """An aparc+aseg-like volume (or SynthSeg-like: ``parcellated=False, callosum=False``) of boxes."""
    aseg = np.zeros(SHAPE, np.int16)
    _box(aseg, 2, (-36, -1), (-44, 43), (-25, 30))
    _box(aseg, 41, (0, 35), (-44, 43), (-25, 30))
    # a 3 mm cortical shell on the outer faces, lobes by position (aparc indices: 28 superior frontal,
    # 29 superior parietal, 30 superior temporal, 11 lateral occipital)
    shell = np.zeros(SHAPE, bool)
    shell[4:77, 4:92, 10:66] = True
    shell[7:74, 7:89, 13:63] = False
    grid = np.indices(SHAPE)
    y, z = grid[1] - 48, grid[2] - 35
    lobe = np.select([y > 10, y < -20, z > 5], [28, 11, 29], 30)
    side = np.where(grid[0] - 40 < 0, 1000, 2000)
    aseg[shell] = (side + lobe)[shell] if parcellated else np.where(side == 1000, 3, 42)[shell]
    _box(aseg, 4, (-8, -2), (-10, 15), (0, 7), mirror=43)  # lateral ventricles
    _box(aseg, 11, (-12, -9), (5, 15), (0, 8), mirror=50)  # caudate
    _box(aseg, 10, (-14, -2), (-20, -6), (-10, -1), mirror=49)  # thalamus
    _box(aseg, 12, (-28, -22), (-10, 15), (-8, 5), mirror=51)  # putamen
    _box(aseg, 13, (-21, -18), (-5, 5), (-6, 2), mirror=52)  # pallidum
    _box(aseg, 16, (-3, 3), (-15, -5), (-22, -12))  # brainstem
    _box(aseg, 8, (-30, -6), (-40, -20), (-22, -10), mirror=47)  # cerebellar cortex
    if callosum:
        _box(aseg, 251, (-1, 0), (-15, 15), (8, 12))
    return write_nifti(path, aseg, ASEG_AFFINE)


def write_swi(path, degrees: float = 8.0):
    """An SWI on its own (oblique) 1.2 x 1.2 x 2 mm grid covering the segmentation."""
    affine = oblique_affine((1.2, 1.2, 2.0), degrees, origin=(-45.0, -55.0, -40.0))
    data = np.random.default_rng(0).normal(100, 5, (76, 92, 40)).astype(np.float32)
    return write_nifti(path, data, affine), affine


#: World points (mm) placed in known structures -> (MARS region, hemisphere).
EXPECTED = {
    (-25, 0, -2): ("basal ganglia", "left"),  # putamen
    (8, -13, -5): ("thalamus", "right"),
    (-16, -4, -3): ("internal capsule", "left"),  # white matter between pallidum and thalamus
    (-31, 0, 0): ("external capsule", "left"),  # white matter just lateral to the putamen
    (-5, 0, 11): ("deep and periventricular white matter", "left"),  # above the lateral ventricle
    (-20, 36, 24): ("frontal", "left"),  # white matter under frontal cortex
    (-20, 40, 28): ("frontal", "left"),  # frontal cortex
    (20, -38, 20): ("occipital", "right"),
    (-1, 0, 10): ("corpus callosum", "left"),
    (-2, -10, -18): ("brainstem", "left"),
    (2, -10, -18): ("brainstem", "right"),
    (18, -30, -16): ("cerebellum", "right"),
}


def region_at(path, world) -> tuple[str, str] | None:
    image = nib.load(str(path))
    ijk = np.rint(np.linalg.solve(image.affine, [*world, 1.0])[:3]).astype(int)
    return region_name(int(np.asarray(image.dataobj)[tuple(ijk)]))


def location_at(path, world) -> str:
    image = nib.load(str(path))
    ijk = np.rint(np.linalg.solve(image.affine, [*world, 1.0])[:3]).astype(int)
    return LOCATION_NAMES[int(np.asarray(image.dataobj)[tuple(ijk)])]


def test_an_aparc_aseg_gives_the_expected_mars_region_at_points_in_known_structures(tmp_path, capsys):
    aseg = write_aseg(tmp_path / "aparc+aseg.nii.gz")
    swi, _ = write_swi(tmp_path / "sub-07_swi.nii.gz")
    assert main(["locations", "--aseg", aseg, "--swi", swi]) == 0
    assert "MARS regions" in capsys.readouterr().out
    regions = tmp_path / "sub-07_desc-regions_dseg.nii.gz"
    locations = tmp_path / "sub-07_desc-locations_dseg.nii.gz"
    assert nib.load(str(regions)).shape == (76, 92, 40)  # on the SWI grid
    found = {point: region_at(regions, point) for point in EXPECTED}
    assert found == EXPECTED
    assert location_at(locations, (-25, 0, -2)) == "basal ganglia"
    assert location_at(locations, (-16, -4, -3)) == "deep"
    assert location_at(locations, (-20, 36, 24)) == "lobar"
    assert location_at(locations, (2, -10, -18)) == "brainstem"
    lookup = (tmp_path / "sub-07_desc-regions_dseg.tsv").read_text().splitlines()
    assert f"{CODE['thalamus'] + RIGHT_OFFSET}\tthalamus\tright\tdeep" in lookup


def test_a_synthseg_like_segmentation_falls_back_for_lobes_and_corpus_callosum(tmp_path, capsys):
    aseg = write_aseg(tmp_path / "synthseg.nii.gz", parcellated=False, callosum=False)
    swi, _ = write_swi(tmp_path / "sub-08_swi.nii.gz")
    assert main(["locations", "--aseg", aseg, "--swi", swi, "--out", str(tmp_path / "maps")]) == 0
    notes = capsys.readouterr().err
    assert "lobe is unknown" in notes and "taken as corpus callosum" in notes
    regions = tmp_path / "maps" / "sub-08_desc-regions_dseg.nii.gz"
    locations = tmp_path / "maps" / "sub-08_desc-locations_dseg.nii.gz"
    assert region_at(regions, (-20, 36, 24)) is None and location_at(locations, (-20, 36, 24)) == "lobar"
    assert region_at(regions, (0, 0, 10))[0] == "corpus callosum"
    assert region_at(regions, (-25, 0, -2)) == ("basal ganglia", "left")
    assert region_at(regions, (-16, -4, -3)) == ("internal capsule", "left")


def test_locations_refuses_to_replace_maps_and_non_segmentations(tmp_path):
    aseg = write_aseg(tmp_path / "aseg.nii.gz")
    swi, affine = write_swi(tmp_path / "sub-09_swi.nii.gz")
    assert main(["locations", "--aseg", aseg, "--swi", swi]) == 0
    assert main(["locations", "--aseg", aseg, "--swi", swi]) == 2  # exists: --overwrite needed
    assert main(["locations", "--aseg", aseg, "--swi", swi, "--overwrite"]) == 0
    from napari_deepmir.regions.maps import load_segmentation

    with pytest.raises(InputError, match="no FreeSurfer/SynthSeg cerebral labels"):
        load_segmentation(write_nifti(tmp_path / "not_aseg.nii.gz", np.ones((8, 8, 8), np.int16) * 7, affine))


def test_a_region_map_opens_as_labels_whose_features_name_the_region(tmp_path, make_napari_viewer):
    folder = tmp_path / "sub-07"
    folder.mkdir()
    aseg = write_aseg(tmp_path / "aparc+aseg.nii.gz")
    write_swi(folder / "sub-07_swi.nii.gz", degrees=0.0)  # napari slices oblique grids only approximately
    assert main(["locations", "--aseg", aseg, "--subject", str(folder)]) == 0
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-deepmir")
    layer = viewer.layers["sub-07 regions"]
    assert layer.metadata["deepmir"]["kind"] == "regions"
    layer.visible = True  # hidden when opened; the user shows it to read regions under the cursor
    world_zyx = np.array([-5.0, -13.0, 8.0])  # the right thalamus, (z, y, x) mm
    value = layer.get_value(world_zyx, world=True)
    assert value == CODE["thalamus"] + RIGHT_OFFSET
    row = layer.features[layer.features["index"] == value].iloc[0]
    assert (row["region"], row["hemisphere"]) == ("thalamus", "right")
    status = layer.get_status(world_zyx, world=True)  # what the viewer's status bar shows under the cursor
    assert "region: thalamus" in status["coordinates"] and "hemisphere: right" in status["coordinates"]
