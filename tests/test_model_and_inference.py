"""Model files (safetensors + JSON card) and the inference engine, with tiny real networks."""

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import oblique_affine, sphere_world, write_nifti

from napari_deepmir.cli import main
from napari_deepmir.detection.inference import prepare_input, select_device
from napari_deepmir.detection.pipeline import iter_detect, predict_subject
from napari_deepmir.io import InputError, Subject, load_subject
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import load_model, model_sha256, read_card, save_model
from napari_deepmir.model.registry import list_models, register_model
from napari_deepmir.model.unet import DeepmirUNet


def tiny(tmp_path, name="tiny", modalities=("swi", "qsm", "t2")) -> tuple:
    torch.manual_seed(0)
    card = ModelCard(
        name=name, modalities=list(modalities), architecture={"base_filters": 4, "depth": 3, "context_slices": 1}
    )
    module = DeepmirUNet(card.in_channels, 3, 4, 3)
    return save_model(tmp_path / name, module, card), module, card


def head_subject(shape=(48, 56, 20), affine=None, with_qsm=True) -> Subject:
    affine = oblique_affine((2.0, 2.0, 4.0), 0.0, (-48, -56, -40)) if affine is None else affine
    rng = np.random.default_rng(0)
    head = sphere_world(shape, affine, (0, 0, 0), 40) * 100.0 + rng.random(shape)
    qsm = sphere_world(shape, affine, (0, 0, 0), 38) * rng.normal(0, 20, shape)
    return Subject(
        swi=head.astype(np.float32),
        affine=affine,
        qsm=qsm.astype(np.float32) if with_qsm else None,
        t2=head.astype(np.float32),
    )


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
    with pytest.raises(InputError, match=r"needs SWI\+QSM but the subject has no QSM"):
        predict_subject(head_subject(with_qsm=False), folder, device="cpu")
    swi_only, _, _ = tiny(tmp_path, "swi-only", modalities=("swi",))
    assert predict_subject(head_subject(with_qsm=False), swi_only, device="cpu").labels.shape == (48, 56, 20)


@pytest.mark.parametrize("orientation", ["RAS", "LPS-permuted-oblique"])
def test_working_grid_round_trip_lands_on_the_swi_grid(tmp_path, orientation):
    affine = (
        oblique_affine((0.9, 0.9, 3.0), 0.0)
        if orientation == "RAS"
        else np.array(
            [[0, 0, -3.0, 40], [-0.9, 0, 0, 30], [0, 0.9 * np.cos(0.2), 0, -20], [0, 0.9 * np.sin(0.2), 0, 1]]
        )
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
    steps = iter_detect(subject, folder, device="cpu", batch_size=1)
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
    files = {
        m: write_nifti(tmp_path / f"sub-09_{suffix}.nii.gz", getattr(subject, m), subject.affine)
        for m, suffix in (("swi", "swi"), ("qsm", "Chimap"), ("t2", "T2w"))
    }
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--swi",
            files["swi"],
            "--qsm",
            files["qsm"],
            "--t2",
            files["t2"],
            "--model",
            str(folder),
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    names = ("sub-09_space-swi_desc-deepmir_dseg.nii.gz", "sub-09_desc-deepmir_lesions.tsv", "dseg.tsv")
    assert all((out / name).exists() for name in names)
    assert capsys.readouterr().out.startswith("sub-09: ")
    assert load_subject(files["swi"]).shape == subject.shape


def test_postprocess_keeps_paramagnetic_lesions_and_drops_calcifications():
    """The QSM rule: a confident component is kept only where QSM shows a paramagnetic source."""
    from napari_deepmir.lesions.postprocess import apply_postprocess

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


def _python(script: str, *args) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh Python process that imports this napari_deepmir."""
    import napari_deepmir

    env = dict(os.environ, PYTHONPATH=str(Path(napari_deepmir.__file__).parents[1]))
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_saving_replaces_a_model_only_when_asked_and_never_a_folder_of_other_things(tmp_path):
    folder, module, card = tiny(tmp_path)
    notes = tmp_path / "study"
    (notes / "sub-01").mkdir(parents=True)
    (notes / "sub-01" / "notes.txt").write_text("rater 2 disagrees on lesion 4")
    (notes / "model.json").write_text("{}")  # a card beside other things still is not a model folder
    before = _tree(notes)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="not a model folder .* never replaced"):
            save_model(notes, module, card, overwrite=overwrite)
    assert _tree(notes) == before
    weights = (folder / "model.safetensors").read_bytes()
    with pytest.raises(InputError, match=f"{folder}: a model is already there; pass --overwrite"):
        save_model(folder, DeepmirUNet(card.in_channels, 3, 4, 3), card)
    assert (folder / "model.safetensors").read_bytes() == weights
    save_model(folder, DeepmirUNet(card.in_channels, 3, 4, 3), card, overwrite=True)
    assert (folder / "model.safetensors").read_bytes() != weights
    (tmp_path / "empty").mkdir()
    assert load_model(save_model(tmp_path / "empty", module, card)).card.name == "tiny"


KILLED_SAVE = """
import os, sys
import torch
from napari_deepmir.model import files
from napari_deepmir.model.files import read_card, save_model
from napari_deepmir.model.unet import DeepmirUNet

real_replace = os.replace

def replace_then_die(source, target):
    real_replace(source, target)
    if str(target).endswith(".old"):
        os._exit(9)  # killed right after the first rename: no clean-up runs

if sys.argv[2] == "kill":
    files.os.replace = replace_then_die
card = read_card(sys.argv[1])
torch.manual_seed(1)
save_model(sys.argv[1], DeepmirUNet(card.in_channels, 3, 4, 3), card, overwrite=True)
"""


def test_a_save_killed_between_its_two_renames_keeps_the_previous_model(tmp_path):
    folder, _, _ = tiny(tmp_path)
    weights = (folder / "model.safetensors").read_bytes()
    killed = _python(KILLED_SAVE, folder, "kill")
    assert killed.returncode == 9
    assert not folder.exists() and (tmp_path / ".tiny.old").is_dir()  # the kill window, as the killed run left it
    [staging] = tmp_path.glob(".tiny.tmp.*")
    assert read_card(folder).name == "tiny"  # put back where the user expects it
    assert (folder / "model.safetensors").read_bytes() == weights and not (tmp_path / ".tiny.old").exists()
    assert load_model(folder).card.name == "tiny"
    stranger = tmp_path / ".other.tmp.1.abcd"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not ours")

    assert _python(KILLED_SAVE, folder, "save").returncode == 0  # the next run saving there
    assert not staging.exists(), "the killed run's staging folder is cleaned up"
    assert (stranger / "notes.txt").exists(), "a folder holding other files is never deleted"
    assert (folder / "model.safetensors").read_bytes() != weights and load_model(folder).card.name == "tiny"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_model_and_checkpoint_files_follow_the_umask(tmp_path, umask):
    from napari_deepmir.training.checkpoint import save_checkpoint

    previous = os.umask(umask)
    try:
        folder, module, card = tiny(tmp_path)
        save_model(folder, module, card, overwrite=True)  # the replacing path too
        checkpoint = tmp_path / ".tiny.checkpoint"
        save_checkpoint(checkpoint, module, torch.optim.AdamW(module.parameters()), {"step": 0})
        save_checkpoint(checkpoint, module, torch.optim.AdamW(module.parameters()), {"step": 1})
    finally:
        os.umask(previous)
    for made in (folder, checkpoint):
        assert made.stat().st_mode & 0o777 == 0o777 & ~umask
        assert sorted(p.stat().st_mode & 0o777 for p in made.iterdir()) == [0o666 & ~umask] * 2


def _hostile_models(tmp_path) -> dict:
    """Model folders whose card or weights are broken or hostile, each with the refusal expected."""
    from safetensors.torch import load_file, save_file

    folder, _, _ = tiny(tmp_path, "good")
    good_card = json.loads((folder / "model.json").read_text())
    tensors = load_file(str(folder / "model.safetensors"))
    first = "encoders.0.0.weight"

    def card_with(**changes):
        return {**good_card, **changes}

    cards = {
        "depth-60": (
            card_with(architecture={"base_filters": 4, "depth": 60, "context_slices": 1}),
            "architecture.depth must be in 2..8",
        ),
        "base-filters-100000": (
            card_with(architecture={"base_filters": 100000, "depth": 3, "context_slices": 1}),
            "base_filters must be in 1..256",
        ),
        "context-slices-1e7": (
            card_with(architecture={"base_filters": 4, "depth": 3, "context_slices": 1e7}),
            "context_slices must be an integer",
        ),
        "in-range-but-not-these-weights": (
            card_with(architecture={"base_filters": 256, "depth": 8, "context_slices": 1}),
            "weights do not fit the model card",
        ),
        "spacing-0.2": (card_with(spacing_mm=[0.2, 0.2, 0.4]), r"spacing_mm \(x\) must be in 0.3..5"),
        "nan-threshold": (
            card_with(postprocess={**good_card["postprocess"], "min_probability": float("nan")}),
            "min_probability must be in 0..1",
        ),
        "empty-card": ({}, "missing fields"),
        "list-card": ([], "a model card is a JSON object"),
        "depth-as-text": (
            card_with(architecture={"base_filters": 4, "depth": "3", "context_slices": 1}),
            "depth must be an integer",
        ),
        "extra-class": (card_with(classes={**good_card["classes"], "3": "tumour"}), "classes must be one of"),
    }
    models = {}
    for name, (card, expected) in cards.items():
        models[name] = (tmp_path / name, expected)
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        (tmp_path / name / "model.json").write_text(json.dumps(card))
    (tmp_path / "not-json").mkdir()
    (tmp_path / "not-json" / "model.json").write_text("{ this is not JSON")
    models["not-json"] = (tmp_path / "not-json", "not readable JSON")
    for name, changed, expected, keep_sha in (
        ("nan-weights", {first: torch.full_like(tensors[first], float("nan"))}, "hold NaN or infinite values", False),
        ("int-weights", {first: tensors[first].to(torch.int32)}, f"tensor {first} has dtype I32", False),
        ("tampered-weights", {first: tensors[first] + 1}, "SHA-256 differs", True),
    ):
        target = tmp_path / name
        target.mkdir()
        save_file({**tensors, **changed}, str(target / "model.safetensors"))
        sha = good_card["sha256"] if keep_sha else model_sha256(target)
        (target / "model.json").write_text(json.dumps(card_with(sha256=sha)))
        models[name] = (target, expected)
    return models


LOAD_EACH = r"""
import json, re, resource, sys, time
import torch, safetensors.torch
from napari_deepmir.io import InputError
from napari_deepmir.model import unet
from napari_deepmir.model.files import load_model

def peak_reset_kib():
    # Linux: reset the peak resident memory and return the current one (KiB); elsewhere the peak so far
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def peak_kib():
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

results = {}
for folder in sys.argv[1:]:
    before = peak_reset_kib()
    started = time.perf_counter()
    try:
        load_model(folder)
        message = "loaded"
    except InputError as error:
        message = str(error)
    results[folder] = [message, time.perf_counter() - started, (peak_kib() - before) / 1024]
print(json.dumps(results))
"""


def test_a_hostile_model_card_is_refused_in_under_a_second_and_200_mb(tmp_path):
    """Cards asking for huge networks or grids, NaN thresholds, empty or malformed cards, NaN, integer or
    tampered weights: each an InputError naming the file, before anything big is allocated. Measured in a
    fresh process with torch imported: the time of each refusal and the growth of the peak memory."""
    models = _hostile_models(tmp_path)
    run = _python(LOAD_EACH, *(folder for folder, _ in models.values()))
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    print(
        "\nrefusal: seconds, peak memory growth MiB: "
        + ", ".join(f"{Path(f).name} {s:.3f} {m:.1f}" for f, (_, s, m) in measured.items())
    )
    for name, (folder, expected) in models.items():
        message, seconds, growth_mib = measured[str(folder)]
        assert message.startswith(str(folder)) and re.search(expected, message), (name, message)
        assert "\n" not in message and seconds < 1.0 and growth_mib < 200, (name, seconds, growth_mib)


def test_a_card_without_its_weights_hash_loads_with_a_warning(tmp_path):
    folder, _, _ = tiny(tmp_path)
    card = json.loads((folder / "model.json").read_text())
    del card["sha256"]  # a hand-made card
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.warns(UserWarning, match="no sha256 recorded"):
        assert load_model(folder).card.name == "tiny"
