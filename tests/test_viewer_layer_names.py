"""One naming rule for the plugin's layers (``<subject> <role>``, ``layer_data.layer_name``): a subject's files
opened one by one are named like the same subject opened as a folder (they were ``sub-002_swi`` vs ``sub-002 SWI``)."""

import numpy as np
from conftest import oblique_affine, write_nifti

from napari_deepmir.conventions import BIDS_SUFFIXES


def _subject_folder(tmp_path):
    folder = tmp_path / "sub-002" / "anat"
    folder.mkdir(parents=True)
    affine = oblique_affine((0.8, 0.8, 2.0), 0.0)
    image = np.random.default_rng(0).uniform(50, 100, (24, 20, 8)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[10:12, 9:11, 3:5] = 1
    for kind, data in (("swi", image), ("qsm", image - 75), ("t2", image), ("labels", labels)):
        write_nifti(folder / f"sub-002_{BIDS_SUFFIXES[kind]}.nii.gz", data, affine)
    return folder.parent


def test_files_and_their_subject_folder_give_the_same_layer_names(make_napari_viewer, tmp_path):
    folder = _subject_folder(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-deepmir")
    from_folder = {layer.name for layer in viewer.layers}
    viewer.layers.clear()
    for file in sorted((folder / "anat").glob("*.nii.gz")):
        viewer.open(str(file), plugin="napari-deepmir")
    from_files = {layer.name for layer in viewer.layers}

    assert from_folder == from_files == {"sub-002 SWI", "sub-002 QSM", "sub-002 T2", "sub-002 labels"}
    assert all(layer.metadata["deepmir"]["subject"] == "sub-002" for layer in viewer.layers)


def test_the_samples_and_a_detections_layers_follow_the_rule(make_napari_viewer):
    from napari_deepmir.widgets._lesions import lesions_layer_name

    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    names = {layer.name for layer in viewer.layers}
    assert {"sub-sample SWI", "sub-sample QSM", "sub-sample T2", "sub-sample true lesions"} <= names
    assert all(name.startswith("sub-sample ") for name in names)
    assert lesions_layer_name("sub-sample") == "sub-sample lesions"
