"""Model files (safetensors + JSON card) and the inference engine, with tiny real networks."""

import json
import pickle

import numpy as np
import pytest
import torch

from conftest import oblique_affine, sphere_world, write_nifti
from napari_deepmir.cli import main
from napari_deepmir.inference import iter_predict, predict_subject, prepare_input, select_device
from napari_deepmir.io import InputError, Subject, load_subject
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import load_model, model_sha256, save_model
from napari_deepmir.model.registry import list_models, register_model
from napari_deepmir.model.unet import DeepmirUNet


def tiny(tmp_path, name="tiny", modalities=("swi", "qsm", "t2")) -> tuple:
    torch.manual_seed(0)
    card = ModelCard(name=name, modalities=list(modalities), architecture={"base_filters": 4, "depth": 3, "context_slices": 1})
    module = DeepmirUNet(card.in_channels, 3, 4, 3)
    return save_model(tmp_path / name, module, card), module, card


def head_subject(shape=(48, 56, 20), affine=None, with_qsm=True) -> Subject:
    affine = oblique_affine((2.0, 2.0, 4.0), 0.0, (-48, -56, -40)) if affine is None else affine
    rng = np.random.default_rng(0)
    head = sphere_world(shape, affine, (0, 0, 0), 40) * 100.0 + rng.random(shape)
    qsm = sphere_world(shape, affine, (0, 0, 0), 38) * rng.normal(0, 20, shape)
    return Subject(swi=head.astype(np.float32), affine=affine, qsm=qsm.astype(np.float32) if with_qsm else None, t2=head.astype(np.float32))


def test_unet_has_the_published_shape():
    network = DeepmirUNet(in_channels=2, n_classes=3)  # paper: 32..512 filters, bottleneck 1024 at 8x8
    assert network.encoders[-1][0].out_channels == 1024 and network.size_multiple == 32
    assert network(torch.zeros(1, 2, 256, 256)).shape == (1, 3, 256, 256)


def test_saved_model_loads_identically_and_carries_its_card(tmp_path):
    folder, module, card = tiny(tmp_path)
    loaded = load_model(folder)
    x = torch.randn(2, card.in_channels, 32, 32)
    module.eval()
    assert torch.equal(loaded.module(x), module(x))
    stored = json.loads((folder / "model.json").read_text())
    assert stored["modalities"] == ["swi", "qsm", "t2"] and stored["sha256"] == model_sha256(folder)
    assert not list(tmp_path.glob(".*tmp*")), "no staging folder is left behind"


def test_pickles_are_refused_and_bad_cards_named(tmp_path):
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(InputError, match="pickled .pt/.pth models are refused"):
        load_model(evil)
    folder, _, _ = tiny(tmp_path)
    card = json.loads((folder / "model.json").read_text())
    card["modalities"] = ["swi"]  # the weights expect 9 input channels, the card now says 3
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="weights do not fit the model card"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="model.safetensors"):
        load_model(folder)


def test_a_model_needing_qsm_refuses_a_subject_without_it(tmp_path):
    folder, _, _ = tiny(tmp_path, modalities=("swi", "qsm"))
    with pytest.raises(InputError, match=r"needs SWI\+QSM but subject .* has no QSM image"):
        predict_subject(head_subject(with_qsm=False), folder, device="cpu")
    swi_only, _, _ = tiny(tmp_path, "swi-only", modalities=("swi",))
    assert predict_subject(head_subject(with_qsm=False), swi_only, device="cpu").labels.shape == (48, 56, 20)


@pytest.mark.parametrize("orientation", ["RAS", "LPS-permuted-oblique"])
def test_working_grid_round_trip_lands_on_the_swi_grid(tmp_path, orientation):
    affine = oblique_affine((0.9, 0.9, 3.0), 0.0) if orientation == "RAS" else np.array(
        [[0, 0, -3.0, 40], [-0.9, 0, 0, 30], [0, 0.9 * np.cos(0.2), 0, -20], [0, 0.9 * np.sin(0.2), 0, 1]]
    )
    affine[3] = [0, 0, 0, 1]
    shape = (60, 70, 24)
    subject = head_subject(shape, affine)
    card = ModelCard(spacing_mm=[1.0, 1.0, 2.0])
    prepared = prepare_input(subject, card)
    centre = (affine @ [28, 33, 11, 1])[:3]
    blob = sphere_world(shape, affine, centre, 6).astype(np.uint8)
    assert blob.sum() > 50
    back = prepared.to_subject_grid(prepared.labels_to_working(blob), order=0)
    assert back.shape == shape
    assert (back == blob).mean() > 0.995 and (back & blob).sum() > 0.8 * blob.sum()
    reference = prepared.labels_to_working(subject.mask).astype(bool)
    assert np.allclose(np.median(prepared.channels[0][reference]), 0, atol=0.1)  # robust z-score over the brain mask


def test_prediction_is_on_the_swi_grid_and_cancellable(tmp_path):
    folder, _, _ = tiny(tmp_path)
    subject = head_subject()
    prediction = predict_subject(subject, folder, device="cpu", return_probabilities=True)
    assert prediction.labels.shape == subject.shape and prediction.labels.dtype == np.uint8
    assert set(np.unique(prediction.labels)) <= {0, 1, 2}
    assert prediction.probabilities.shape == (3, *subject.shape)
    assert np.allclose(prediction.probabilities.sum(axis=0), 1, atol=1e-2)
    steps = iter_predict(subject, folder, device="cpu", batch_size=1)
    assert next(steps)[0] == 0 and next(steps)[0] == 1
    steps.close()  # cancelling: the generator stops, nothing more runs
    with pytest.raises(StopIteration):
        next(steps)


def test_unavailable_device_is_a_clear_error():
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device 'cuda' is not available"):
            select_device("cuda")


def test_registered_models_are_listed_after_the_default(tmp_path):
    folder, _, _ = tiny(tmp_path, "my-finetuned")
    register_model(folder)
    names = [entry.name for entry in list_models()]
    assert "my-finetuned" in names
    assert names.index("my-finetuned") == len(names) - 1


def test_predict_cli_writes_labels_and_table(tmp_path, capsys):
    folder, _, _ = tiny(tmp_path)
    subject = head_subject()
    files = {m: write_nifti(tmp_path / f"sub-09_{suffix}.nii.gz", getattr(subject, m), subject.affine)
             for m, suffix in (("swi", "swi"), ("qsm", "Chimap"), ("t2", "T2w"))}
    out = tmp_path / "out"
    code = main(["predict", "--swi", files["swi"], "--qsm", files["qsm"], "--t2", files["t2"], "--model", str(folder), "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert (out / "labels.nii.gz").exists() and (out / "lesions.csv").exists() and (out / "dseg.tsv").exists()
    assert capsys.readouterr().out.startswith("sub-09: ")
    assert load_subject(files["swi"]).shape == subject.shape


def test_postprocess_keeps_paramagnetic_lesions_and_drops_calcifications():
    """The QSM rule: a confident component is kept only where QSM shows a paramagnetic source."""
    from napari_deepmir.inference import apply_postprocess

    subject = head_subject()
    subject.qsm = np.where(subject.qsm != 0, 3.0, 0.0).astype(np.float32)  # tissue, with data inside the head
    probabilities = np.zeros((3, *subject.shape), np.float32)
    probabilities[0] = 1.0
    spots = {"bleed": (20, 28, 10), "calcification": (28, 28, 10), "no QSM data": (2, 2, 10)}
    for i, j, k in spots.values():
        probabilities[:, i - 1 : i + 2, j - 1 : j + 2, k] = [[[0.02]], [[0.97]], [[0.01]]]
    i, j, k = spots["bleed"]
    subject.qsm[i - 1 : i + 2, j - 1 : j + 2, k] = 300.0
    i, j, k = spots["calcification"]
    subject.qsm[i - 1 : i + 2, j - 1 : j + 2, k] = -300.0
    i, j, k = spots["no QSM data"]
    subject.qsm[i - 1 : i + 2, j - 1 : j + 2, k] = 0.0
    card = ModelCard(name="rule")
    labels = apply_postprocess(probabilities, subject, card)
    assert labels[spots["bleed"]] == 1
    assert labels[spots["calcification"]] == 0 and labels[spots["no QSM data"]] == 0
    without_rule = apply_postprocess(probabilities, subject, card, min_qsm_ppb=-1e9)
    assert without_rule[spots["calcification"]] == 1
