"""BIDS names: one place builds what is written; the names written before (``_swi``, flat folders) are still read."""

import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir._reader import read_nifti_file
from napari_deepmir.io import InputError, load_subject_dir
from napari_deepmir.io.bids import find_subject_files, find_subject_folders, raw_path
from napari_deepmir.lesions.pairing import label_map_files
from napari_deepmir.widgets._layers import _subject_name

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


def _head(seed: int) -> np.ndarray:
    index = np.indices((24, 24, 12)) - np.array([11.5, 11.5, 5.5])[:, None, None, None]
    inside = ((index / np.array([9.0, 9.0, 4.5])[:, None, None, None]) ** 2).sum(0) <= 1
    return (inside * (1 + 0.05 * np.random.default_rng(seed).random(inside.shape))).astype(np.float32)


def test_raw_names_are_bids_and_every_earlier_swi_name_is_read(tmp_path):
    assert raw_path(tmp_path, "P01", "1", "swi") == tmp_path / "sub-P01/ses-1/anat/sub-P01_ses-1_rec-swi_T2starw.nii.gz"
    assert raw_path(tmp_path, "P01", None, "qsm") == tmp_path / "sub-P01/anat/sub-P01_Chimap.nii.gz"
    written = {
        "sub-01": tmp_path / "sub-01" / "sub-01_swi.nii.gz",  # flat, as synth wrote before
        "sub-02": raw_path(tmp_path, "02", None, "swi"),
        "sub-03": tmp_path / "sub-03/ses-1/anat/sub-03_ses-1_acq-swi_T2starw.nii.gz",
    }
    for number, path in enumerate(written.values()):
        path.parent.mkdir(parents=True)
        write_nifti(path, _head(number), AFFINE)
    write_nifti(tmp_path / "sub-02/anat/sub-02_dseg.nii.gz", np.zeros((24, 24, 12), np.uint8), AFFINE)
    folders = find_subject_folders(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in folders] == ["sub-01", "sub-02", "sub-03/ses-1"]
    for folder, path in zip(folders, written.values()):
        assert find_subject_files(folder)["swi"] == path and load_subject_dir(folder).shape == (24, 24, 12)
    assert label_map_files(tmp_path) == {"sub-02": tmp_path / "sub-02/anat/sub-02_dseg.nii.gz"}  # images skipped

    image = read_nifti_file(written["sub-02"])[1]["metadata"]["deepmir"]  # a single file opened in napari
    assert image["modality"] == "swi" and image["subject"] == "sub-02"
    assert _subject_name("sub-02_rec-swi_T2starw") == _subject_name("sub-02_swi") == _subject_name("sub-02 SWI")

    write_nifti(tmp_path / "sub-01" / "sub-01_rec-swi_T2starw.nii.gz", _head(9), AFFINE)  # both names: which one?
    with pytest.raises(InputError, match="two files for swi: sub-01_rec-swi_T2starw.nii.gz and sub-01_swi.nii.gz"):
        find_subject_files(tmp_path / "sub-01")
