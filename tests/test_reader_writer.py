"""The napari reader and writer in a real viewer: layers in millimetres, aligned in world space."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, sphere_world, write_nifti
from qtpy.QtWidgets import QFileDialog

from napari_deepmir._sample_data import SAMPLE_FOLDER

CENTRE = (5.0, -3.0, 8.0)  # scanner RAS mm


def _head(shape, affine):
    head = sphere_world(shape, affine, (0, 0, 0), 45) * 100.0 + 1.0
    head[sphere_world(shape, affine, CENTRE, 4.0)] = 10.0
    return head.astype(np.float32)


@pytest.fixture
def files(tmp_path):
    swi_affine = oblique_affine((0.8, 0.8, 2.0), 0.0)
    t2_affine = np.array([[-1.5, 0, 0, 70], [0, 0, 1.5, -75], [0, 3.0, 0, -60], [0, 0, 0, 1]])  # LSA, own grid
    folder = tmp_path / "sub-07"
    folder.mkdir()
    qsm = sphere_world((128, 128, 50), swi_affine, (0, 0, 0), 45) * 5.0
    qsm[sphere_world((128, 128, 50), swi_affine, CENTRE, 4.0)] = 400.0
    labels = sphere_world((128, 128, 50), swi_affine, CENTRE, 4.0).astype(np.uint8)
    return {
        "swi": write_nifti(folder / "sub-07_swi.nii.gz", _head((128, 128, 50), swi_affine), swi_affine),
        "t2": write_nifti(folder / "sub-07_T2w.nii.gz", _head((96, 40, 100), t2_affine), t2_affine),
        "qsm": write_nifti(folder / "sub-07_Chimap.nii.gz", qsm.astype(np.float32), swi_affine),
        "labels": write_nifti(folder / "sub-07_dseg.nii.gz", labels, swi_affine),
        "folder": folder,
    }


def _value_at_world(layer, xyz_ras):
    """Layer value at a scanner RAS point (napari world is (z, y, x))."""
    index = np.round(layer.world_to_data(np.asarray(xyz_ras)[::-1])).astype(int)
    return layer.data[tuple(index)]


def test_files_on_different_grids_open_aligned_in_world_space(make_napari_viewer, files):
    viewer = make_napari_viewer()
    viewer.open([files["swi"], files["t2"]], plugin="napari-deepmir", stack=False)
    swi, t2 = viewer.layers
    assert swi.data.shape != t2.data.shape
    for layer in (swi, t2):
        assert _value_at_world(layer, CENTRE) == pytest.approx(10.0)  # the sphere, in both layers
        assert _value_at_world(layer, (CENTRE[0] + 10, CENTRE[1], CENTRE[2])) == pytest.approx(101.0)
        assert np.allclose(layer.metadata["deepmir"]["affine"], nib.load(layer.metadata["deepmir"]["path"]).affine)
    assert tuple(swi.units) == ("mm",) * 3 or all(str(u) in ("mm", "millimeter") for u in swi.units)


def test_subject_folder_gives_three_aligned_layers_with_modality_display(make_napari_viewer, files):
    viewer = make_napari_viewer()
    viewer.open(str(files["folder"]), plugin="napari-deepmir")
    names = [layer.name for layer in viewer.layers]
    assert names == ["sub-07 T2", "sub-07 QSM", "sub-07 SWI", "sub-07 labels"]  # SWI on top of the images
    t2, qsm, swi, labels = viewer.layers
    assert t2.data.shape == swi.data.shape == qsm.data.shape == labels.data.shape  # all on the SWI grid
    low, high = qsm.contrast_limits
    assert low == pytest.approx(-high) and high > 0  # symmetric about 0
    assert qsm.colormap.name == swi.colormap.name == "gray"  # the red/blue labels stand out on every image
    assert swi.visible and not qsm.visible  # QSM one click away
    assert _value_at_world(labels, CENTRE) == 1
    assert labels.get_color(1) is not None and not np.allclose(labels.get_color(1), labels.get_color(2))


def test_labels_written_back_exactly_on_the_source_grid(make_napari_viewer, files, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(files["labels"], plugin="napari-deepmir")
    layer = viewer.layers[0]
    layer.data[tuple(np.argwhere(layer.data == 1)[0])] = 2  # an edit made in the viewer
    out = tmp_path / "edited_dseg.nii.gz"
    layer.save(str(out), plugin="napari-deepmir")
    original = nib.load(files["labels"])
    written = nib.load(str(out))
    assert np.allclose(written.affine, original.affine)
    expected = np.asarray(original.dataobj).copy()
    diff = np.argwhere(np.asarray(written.dataobj) != expected)
    assert len(diff) == 1 and np.asarray(written.dataobj)[tuple(diff[0])] == 2


def _save_selected_with_file_menu(viewer, monkeypatch, layer, typed_name):
    """File > Save Selected Layers...: the user types a name and keeps the filter the dialog preselects."""
    from napari._app_model import get_app_model

    def save_dialog(parent, caption, directory, filter, options=None):
        return str(typed_name), filter.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    viewer.layers.selection = {layer}
    get_app_model().commands.execute_command("napari.window.file.save_layers_dialog.selected").result()


def _tiny_subject_files(folder) -> list[str]:
    """A small oblique SWI and label map on its grid."""
    affine = oblique_affine((0.8, 0.8, 2.0), 10.0)
    labels = sphere_world((24, 20, 8), affine, affine[:3, :3] @ (12, 10, 4) + affine[:3, 3], 2.0).astype(np.uint8)
    swi = np.random.default_rng(0).uniform(50, 100, labels.shape).astype(np.float32)
    return [
        write_nifti(folder / "sub-01_swi.nii.gz", swi, affine),
        write_nifti(folder / "sub-01_dseg.nii.gz", labels, affine),
    ]


def test_file_menu_saves_a_selected_image_or_labels_layer_as_nifti_with_the_preselected_filter(
    make_napari_viewer, tmp_path, monkeypatch
):
    viewer = make_napari_viewer()
    viewer.open(_tiny_subject_files(tmp_path), plugin="napari-deepmir", stack=False)
    assert viewer.layers[-1].data.max() == 1
    for layer, suffix in [(layer, suffix) for layer in list(viewer.layers) for suffix in (".nii.gz", ".nii")]:
        out = tmp_path / f"{layer.name}-saved{suffix}"
        _save_selected_with_file_menu(viewer, monkeypatch, layer, out)
        source, written = nib.load(layer.metadata["deepmir"]["path"]), nib.load(str(out))
        assert np.allclose(written.affine, source.affine)  # back on the file's grid, not napari's display grid
        assert np.allclose(np.asarray(written.dataobj), np.asarray(source.dataobj))


def test_file_menu_with_the_preselected_nifti_filter_still_writes_tiff_when_the_name_says_so(
    make_napari_viewer, tmp_path, monkeypatch
):
    import tifffile

    viewer = make_napari_viewer()
    viewer.open(_tiny_subject_files(tmp_path)[0], plugin="napari-deepmir")  # in use: its NIfTI filter is preselected
    painted = viewer.add_labels(np.zeros((3, 4, 5), dtype=np.uint8), name="painted")
    painted.data[1, 2, 3] = 2
    _save_selected_with_file_menu(viewer, monkeypatch, painted, tmp_path / "painted.tif")
    assert tifffile.imread(tmp_path / "painted.tif")[1, 2, 3] == 2


def test_saving_any_3d_layer_to_a_nifti_name_keeps_its_millimetre_position(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.rand(4, 5, 6).astype(np.float32), scale=(2.0, 0.5, 0.8), translate=(10, -4, 3))
    out = tmp_path / "image.nii.gz"
    assert viewer.layers.save(str(out), selected=True) == [str(out)]  # no plugin named: chosen by the name
    written = nib.load(str(out))
    assert np.allclose(np.asarray(written.dataobj), image.data.transpose(2, 1, 0))
    voxel = np.array([1, 2, 3])  # NIfTI (x, y, z) index = napari data index (3, 2, 1)
    assert np.allclose((written.affine @ np.append(voxel, 1))[:3], image.data_to_world(voxel[::-1])[::-1])


def test_rendered_screenshot_shows_the_image(make_napari_viewer, files):
    viewer = make_napari_viewer(show=True)
    viewer.open(files["swi"], plugin="napari-deepmir")
    viewer.dims.set_point(0, CENTRE[2])
    shot = viewer.screenshot(canvas_only=True)
    assert shot[..., :3].max() > 100, "screenshot is not black"


def test_sample_data_opens_a_synthetic_subject_with_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    names = [layer.name for layer in viewer.layers]
    assert names == [
        "sub-sample T2",
        "sub-sample QSM",
        "sub-sample SWI",
        "sub-sample locations",
        "sub-sample true lesions",
    ]
    shapes = {layer.data.shape for layer in viewer.layers}
    assert len(shapes) == 1  # all on the SWI grid
    assert not viewer.layers["sub-sample QSM"].visible and viewer.layers["sub-sample SWI"].colormap.name == "gray"
    swi_file = Path(viewer.layers["sub-sample SWI"].metadata["deepmir"]["path"])
    assert swi_file.parent == SAMPLE_FOLDER  # the shipped subject is read, not simulated at each opening
    truth = viewer.layers["sub-sample true lesions"].data
    assert {1, 2} <= set(np.unique(truth))
    _, finetune = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")
    # the truth is offered for training, but not selected: it is the test's answer
    assert [layer.name for layer in finetune.annotations.choices] == ["sub-sample true lesions"]
    assert finetune.annotations.value == []


def test_the_reader_claims_only_nifti_files_and_folders(tmp_path):
    import npe2

    (tmp_path / "notes.txt").write_text("not an image")
    readers = npe2.PluginManager.instance().iter_compatible_readers([str(tmp_path / "notes.txt")])
    assert "napari-deepmir" not in [reader.plugin_name for reader in readers]
