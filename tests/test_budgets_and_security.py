"""Issue 22, findings 5, 6 and 7: a cohort no one else can drive, budgets that hold before any array is made,
and results that cannot be silently wrong (caches by content, locations on the right head, lesion-free data)."""

import gzip
import json
import shutil
import time
import urllib.error
import urllib.request
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import write_nifti
from training_scenes import TINY, write_blob_subject

from napari_deepmir.cli import main
from napari_deepmir.io import InputError, load_subject_dir, load_volume


def test_the_cohorts_local_cluster_refuses_a_client_without_its_credentials():
    from dask.distributed import Client
    from distributed.security import Security

    from napari_deepmir.detection.cohort import start_local_cluster

    with start_local_cluster(1) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with Client(cluster) as owner:  # the cohort's own client has the run's credentials
            assert owner.submit(sum, [1, 2]).result(timeout=60) == 3
        for stranger in (address, address.replace("tls://", "tcp://")):
            other = Security.temporary() if stranger.startswith("tls") else None
            with pytest.raises((OSError, TimeoutError)):
                Client(stranger, security=other, timeout=3)
        pages = f"http://127.0.0.1:{cluster.scheduler.http_server.port}/info/main/workers.html"
        with pytest.raises(urllib.error.HTTPError, match="404"):  # no dashboard or information pages either
            urllib.request.urlopen(pages, timeout=5)


def test_scheduler_tls_files_come_together_and_must_exist(tmp_path, capsys):
    (tmp_path / "bids").mkdir()
    argv = ["cohort", str(tmp_path / "bids"), "--out", str(tmp_path / "out"), "--scheduler", "tls://h:8786"]
    assert main([*argv, "--tls-ca-file", str(tmp_path / "ca.pem")]) == 2
    assert "--tls-cert" in capsys.readouterr().err
    files = [str(tmp_path / f"{n}.pem") for n in ("ca", "cert", "key")]
    assert main([*argv, "--tls-ca-file", files[0], "--tls-cert", files[1], "--tls-key", files[2]]) == 2
    assert "ca.pem: TLS file not found" in capsys.readouterr().err


def test_a_small_gzip_promising_gigabytes_is_refused_from_its_header(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((1000, 1000, 300))  # 300 M voxels: under the voxel budget, 300 MB of uint8 zeros
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    bomb = tmp_path / "sub-01_swi.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as stream:
        stream.write(header.binaryblock + b"\0" * 4)
        for _ in range(300):
            stream.write(bytes(1 << 20))
    assert bomb.stat().st_size < 600_000
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"sub-01_swi.nii.gz: its header promises 286 MiB .*\(gunzip\)"):
        load_volume(bomb)
    assert time.perf_counter() - started < 1.0


def test_a_card_with_a_fine_working_grid_is_refused_before_the_work(tmp_path):
    from test_model_and_inference import head_subject

    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.model.registry import shipped_model_path

    model = tmp_path / "fine"
    shutil.copytree(shipped_model_path("swi"), model)
    card = json.loads((model / "model.json").read_text())
    card["spacing_mm"] = [0.3, 0.3, 0.3]  # within the schema
    (model / "model.json").write_text(json.dumps(card))
    subject = head_subject(shape=(96, 96, 40), affine=np.diag([1.0, 1.0, 2.0, 1.0]))  # a small scan
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"works on a 0.3 x 0.3 x 0.3 mm grid: .* \(74\.\dx; at most 8x"):
        predict_subject(subject, model, device="cpu")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "card_text, problem",
    [
        ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
        ('{"architecture": {"base_filters": ' + "9" * 4000 + "}}", "a number of 4000 characters"),
    ],
)
def test_a_hostile_model_card_is_a_one_line_error(tmp_path, capsys, card_text, problem):
    from napari_deepmir.model.registry import shipped_model_path

    model = tmp_path / "hostile"
    shutil.copytree(shipped_model_path("swi"), model)
    (model / "model.json").write_text(card_text)
    subject = write_blob_subject(tmp_path / "data", 0)
    assert main(["predict", "--subject", str(subject), "--model", str(model), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and problem in err and "model.json" in err


def test_a_deeply_nested_sidecar_is_a_one_line_error(tmp_path, capsys):
    subject = write_blob_subject(tmp_path / "data", 0)
    (subject / "sub-strong00_swi.json").write_text('{"EchoTime": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert main(["info", "--subject", str(subject)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sub-strong00_swi.json" in err and "levels deep" in err


def test_verifier_examples_are_cached_by_content_and_a_corrupt_cache_is_made_again(tmp_path):
    from test_verifier import with_verifier

    from napari_deepmir.model.files import load_model
    from napari_deepmir.training.common import TrainingConfig, load_training_subjects
    from napari_deepmir.training.verifier import cached_examples

    folder = write_blob_subject(tmp_path / "data", 0)
    loaded = load_model(with_verifier(tmp_path)[0])
    config = TrainingConfig(out=tmp_path / "m", data=[folder], **TINY)
    cache = tmp_path / "cache"

    def examples():
        return cached_examples(load_training_subjects(config, loaded.card)[0], loaded, cache)

    first = examples()
    assert (first.targets > 0).any() and len(list(cache.iterdir())) == 1
    dseg = folder / "sub-strong00_dseg.nii.gz"
    image = nib.load(str(dseg))
    write_nifti(dseg, np.zeros(image.shape, np.uint8), image.affine)  # every annotation emptied, same path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no lesion left: test_training_on_annotations_without...
        emptied = examples()
    assert not (emptied.targets > 0).any() and len(list(cache.iterdir())) == 2  # not the stale examples

    for stored in cache.iterdir():
        stored.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="not a readable examples cache"):
        again = examples()
    assert not (again.targets > 0).any()


def test_training_on_annotations_without_a_lesion_warns(tmp_path):
    from napari_deepmir.model.card import ModelCard
    from napari_deepmir.training.common import TrainingConfig, load_training_subjects

    folder = write_blob_subject(tmp_path / "data", 0)
    dseg = folder / "sub-strong00_dseg.nii.gz"
    image = nib.load(str(dseg))
    write_nifti(dseg, np.zeros(image.shape, np.uint8), image.affine)
    with pytest.warns(UserWarning, match="no lesion in the annotations of any of the 1 subject"):
        load_training_subjects(TrainingConfig(out=tmp_path / "m", data=[folder]), ModelCard())
    write_blob_subject(tmp_path / "data", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_training_subjects(TrainingConfig(out=tmp_path / "m", data=[tmp_path / "data"]), ModelCard())
    assert not [w for w in caught if "no lesion" in str(w.message)]  # one subject with lesions is enough


def test_train_verifier_reads_the_default_worlds_synthetic_subjects(tmp_path):
    from napari_deepmir.phantom import Acquisition, World, generate_subject, write_subject
    from napari_deepmir.training.verifier import simulated_mimic_seeds

    small = Acquisition(shape=(64, 72, 20), voxel_mm=(2.0, 2.0, 4.0))
    made = generate_subject(4, small, world=World(), fine_voxel_mm=(2.0, 2.0, 4.0))
    assert any(o["kind"] == "vein" for o in made.lesions)
    folder = write_subject(made, tmp_path)["swi"].parent
    subject = load_subject_dir(folder)
    assert not any("direction" in o for o in made.lesions)  # the default world's veins have a centre only
    assert len(simulated_mimic_seeds(folder, subject)) > 0


def _head_swi(path):
    """An SWI of a head (a box of x -42..42, y -50..50, z -30..36 mm) in a larger field of view, 1.5 mm voxels."""
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = (-75, -90, -60)
    world = np.moveaxis(np.indices((100, 120, 80)), 0, -1) * 1.5 + affine[:3, 3]
    head = (
        (np.abs(world[..., 0]) <= 42) & (np.abs(world[..., 1]) <= 50) & (world[..., 2] >= -30) & (world[..., 2] <= 36)
    )
    data = np.where(head, 100.0, 5.0) + np.random.default_rng(0).normal(0, 2, head.shape)
    return write_nifti(path, data.astype(np.float32), affine)


def test_locations_refuse_another_heads_segmentation_and_odd_label_numbers(tmp_path, capsys):
    from test_regions import ASEG_AFFINE, write_aseg

    swi = _head_swi(tmp_path / "sub-07_swi.nii.gz")
    aseg = write_aseg(tmp_path / "aseg.nii.gz")
    labels = np.asarray(nib.load(aseg).dataobj).astype(np.int32)
    assert main(["locations", "--aseg", aseg, "--swi", swi, "--out", str(tmp_path / "right")]) == 0

    shifted = ASEG_AFFINE.copy()
    shifted[0, 3] += 40  # the same segmentation 4 cm to the right
    moved = write_nifti(tmp_path / "shifted.nii.gz", labels.astype(np.int16), shifted)
    capsys.readouterr()
    assert main(["locations", "--aseg", moved, "--swi", swi, "--out", str(tmp_path / "moved")]) == 2
    err = capsys.readouterr().err
    assert "shifted.nii.gz: does not lie on the head of" in err and err.count("\n") == 1
    assert not (tmp_path / "moved" / "sub-07_desc-regions_dseg.nii.gz").exists()

    odd = labels.copy()
    odd[40:43, 48:51, 35:38] = 99999  # no FreeSurfer label
    odd_path = write_nifti(tmp_path / "odd.nii.gz", odd, ASEG_AFFINE)
    assert main(["locations", "--aseg", odd_path, "--swi", swi, "--out", str(tmp_path / "odd")]) == 0
    assert "label numbers with no region, taken as outside: 99999 (27 voxels)" in capsys.readouterr().err

    wrapped = labels.astype(np.float64)
    wrapped[40:43, 48:51, 35:38] = 2.0**31 + 2  # a float label a 32-bit map would wrap to a negative number
    wrapped_path = write_nifti(tmp_path / "wrapped.nii.gz", wrapped, ASEG_AFFINE)
    assert main(["locations", "--aseg", wrapped_path, "--swi", swi, "--out", str(tmp_path / "wrapped")]) == 2
    assert "wrapped.nii.gz: not a segmentation: label numbers 0..2147483650" in capsys.readouterr().err
