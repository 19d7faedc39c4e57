"""Trainer: loss goes down, models are written atomically, stop keeps the best, seeds and resume reproduce."""

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import write_nifti
from training_scenes import TINY, write_blob_subject

from napari_deepmir.io import InputError, load_subject_dir
from napari_deepmir.lesions.evaluate import score_lesions
from napari_deepmir.training.common import TrainingConfig
from napari_deepmir.training.trainer import iter_train, train

torch.set_num_threads(2)


def _files_digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def strong_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("strong")
    for i in range(3):
        write_blob_subject(root, i)
    return root


@pytest.fixture(scope="module")
def base_model(strong_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "base"
    train(TrainingConfig(out=out, data=[strong_data], steps=40, eval_every=20, val_share=0.34, lr=3e-3, **TINY))
    return out


def test_short_training_lowers_the_loss_and_writes_a_model_that_predicts(strong_data, tmp_path):
    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.model.files import load_model

    out = tmp_path / "model"
    reports = list(
        iter_train(
            TrainingConfig(out=out, data=[strong_data], steps=40, eval_every=20, val_share=0.34, lr=3e-3, **TINY)
        )
    )
    losses = [r.loss for r in reports if r.loss is not None]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    validations = [r for r in reports if r.metrics is not None]
    assert {"cmb", "iron"} <= set(validations[-1].metrics)
    loaded = load_model(out, "cpu")
    assert loaded.card.training["steps"] == 40 and loaded.card.training["seed"] == 0
    assert loaded.card.metrics["validation_after"] is not None
    subject = load_subject_dir(strong_data / "sub-strong00")
    prediction = predict_subject(subject, loaded, device="cpu")
    assert prediction.labels.shape == subject.shape
    assert set(np.unique(prediction.labels).tolist()) <= {0, 1, 2}


def test_stopping_a_finetune_keeps_the_best_model_and_never_touches_the_base(base_model, strong_data, tmp_path):
    from napari_deepmir.model.files import load_model

    before = _files_digest(base_model)
    out = tmp_path / "tuned"
    run = iter_train(
        TrainingConfig(
            out=out, data=[strong_data], base=base_model, steps=100, eval_every=5, val_share=0.34, lr=1e-3, **TINY
        )
    )
    for report in run:
        if report.step >= 12:
            break
    run.close()  # what the widget's Stop does
    assert _files_digest(base_model) == before
    tuned = load_model(out, "cpu")
    assert tuned.card.parent["sha256"]
    assert tuned.card.created > load_model(base_model, "cpu").card.created  # the new model's date, not the base's
    assert tuned.card.metrics["validation_before"] is not None
    assert tuned.card.training["steps_run"] <= 12


def test_a_crash_while_saving_leaves_the_previous_model_intact(base_model, strong_data, tmp_path, monkeypatch):
    import shutil

    import safetensors.torch

    from napari_deepmir.model.files import load_model

    out = tmp_path / "model"
    shutil.copytree(base_model, out)
    before = _files_digest(out)
    real_save = safetensors.torch.save

    def save_then_fail(tensors, *args, **kwargs):
        real_save(tensors, *args, **kwargs)  # the weights are serialised when the "disk fills up"
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        train(TrainingConfig(out=out, data=[strong_data], steps=3, val_share=0.0, overwrite=True, **TINY))
    monkeypatch.undo()
    assert _files_digest(out) == before
    assert load_model(out, "cpu").card.name == load_model(base_model, "cpu").card.name
    assert not [p for p in out.parent.rglob("*.tmp*")]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_the_same_seed_gives_the_same_weights_and_another_seed_does_not(strong_data, tmp_path):
    def run(name, seed):
        train(TrainingConfig(out=tmp_path / name, data=[strong_data], steps=6, val_share=0.0, seed=seed, **TINY))
        return _weights(tmp_path / name)

    first, again, other = run("a", 1), run("b", 1), run("c", 2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_resume_continues_from_the_checkpoint_to_the_same_model(strong_data, tmp_path):
    settings = dict(data=[strong_data], steps=10, val_share=0.0, seed=3, checkpoint_every=3, **TINY)
    train(TrainingConfig(out=tmp_path / "straight", **settings))
    interrupted = iter_train(TrainingConfig(out=tmp_path / "resumed", **settings))
    for report in interrupted:
        if report.step == 7:
            break
    interrupted.close()
    result = train(TrainingConfig(out=tmp_path / "resumed", resume=True, **settings))
    assert result.steps_run == 10
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_bad_label_maps_are_refused_with_the_file_named(strong_data, tmp_path):
    import shutil

    import nibabel as nib

    folder = tmp_path / "sub-bad00"
    shutil.copytree(strong_data / "sub-strong00", folder)
    for path in folder.iterdir():
        path.rename(folder / path.name.replace("sub-strong00", "sub-bad00"))
    dseg = folder / "sub-bad00_dseg.nii.gz"
    image = nib.load(dseg)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 7
    write_nifti(dseg, data, image.affine)
    with pytest.raises(InputError, match="sub-bad00_dseg"):
        train(TrainingConfig(out=tmp_path / "m", data=[folder], steps=1, val_share=0.0, **TINY))
    write_nifti(dseg, data[:-1] * 0, image.affine)
    with pytest.raises(InputError, match="sub-bad00_dseg"):
        train(TrainingConfig(out=tmp_path / "m", data=[folder], steps=1, val_share=0.0, **TINY))
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_finetuning_on_two_subjects_of_a_shifted_domain_finds_clearly_more(tmp_path):
    """Base: trained on a high-SNR cohort without iron deposits. Shifted domain: lower SNR, less contrasted
    microbleeds, and iron deposits. Fine-tuned on 2 annotated subjects of it, the model must find
    clearly more on 3 others (the iron deposits) and keep finding the microbleeds."""
    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.lesions.components import load_label_map
    from napari_deepmir.model.files import load_model

    source, shifted_train, shifted_test = tmp_path / "source", tmp_path / "shifted-train", tmp_path / "shifted-test"
    for i in range(3):
        write_blob_subject(source, i, iron=False)
        write_blob_subject(shifted_test, 10 + i, domain="faint")
    for i in range(2):
        write_blob_subject(shifted_train, i, domain="faint")
    model = dict(TINY, base_filters=8)
    train(
        TrainingConfig(out=tmp_path / "base", data=[source], steps=150, eval_every=50, val_share=0.34, lr=3e-3, **model)
    )
    train(
        TrainingConfig(
            out=tmp_path / "tuned",
            data=[shifted_train],
            base=tmp_path / "base",
            steps=500,
            val_share=0.0,
            lr=3e-3,
            **model,
        )
    )

    def f1(model_dir):
        loaded = load_model(model_dir, "cpu")
        scores = [
            score_lesions(
                load_label_map(next(folder.glob("*_dseg.nii.gz"))).data,
                predict_subject(load_subject_dir(folder), loaded, device="cpu").labels,
            )
            for folder in sorted(shifted_test.iterdir())
        ]
        return {name: float(np.nanmean([s[name]["f1"] for s in scores])) for name in ("cmb", "iron")}

    before, after = f1(tmp_path / "base"), f1(tmp_path / "tuned")
    print(f"\nlesion-wise F1 on 3 shifted-domain subjects: base {before}, fine-tuned {after}")
    assert after["iron"] >= before["iron"] + 0.5  # the lesion kind the base never saw is found
    assert after["cmb"] >= before["cmb"] - 0.05  # without losing the microbleeds


TINY_ARGS = [
    "--base-filters",
    "4",
    "--depth",
    "3",
    "--context-slices",
    "1",
    "--spacing",
    "1",
    "1",
    "2",
    "--patch-size",
    "32",
    "--batch-size",
    "4",
    "--val-share",
    "0",
    "--device",
    "cpu",
]


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_replaces_a_model_only_with_overwrite_and_never_a_folder_of_other_things(strong_data, tmp_path, capsys):
    import shutil

    from napari_deepmir.cli import main
    from napari_deepmir.model.files import load_model

    study = tmp_path / "study"
    shutil.copytree(strong_data / "sub-strong00", study / "sub-strong00")
    (study / "notes.md").write_text("lesion 3 is a vein")
    before = _tree(study)
    for command in (["train"], ["train", "--overwrite"], ["finetune", "--overwrite"]):
        # --data does not exist: the folder is refused before any data is read, let alone trained on
        code = main(
            [*command, "--data", str(tmp_path / "no-such-data"), "--out", str(study), "--steps", "2", "--device", "cpu"]
        )
        error = capsys.readouterr().err
        last_line = error.strip().splitlines()[-1]
        assert (
            code == 2
            and last_line.startswith(f"deepmir {command[0]}: error: {study}: not a model folder")
            and "Traceback" not in error
        )
    assert _tree(study) == before

    model = tmp_path / "model"
    assert main(["train", "--data", str(strong_data), "--out", str(model), "--steps", "30", *TINY_ARGS]) == 0
    log = capsys.readouterr().err  # stderr is a log here, not a terminal: a line per stage, no bar redrawn per step
    assert "\r" not in log and len(log.splitlines()) <= 4 and "deepmir train: 30/30 step in" in log
    first = _tree(model)
    assert (
        main(["train", "--data", str(strong_data), "--out", str(model), "--steps", "2", "--seed", "1", *TINY_ARGS]) == 2
    )
    assert f"{model}: a model is already there; pass --overwrite to replace it" in capsys.readouterr().err
    assert _tree(model) == first
    assert (
        main(
            [
                "train",
                "--data",
                str(strong_data),
                "--out",
                str(model),
                "--steps",
                "2",
                "--seed",
                "1",
                "--overwrite",
                *TINY_ARGS,
            ]
        )
        == 0
    )
    assert _tree(model) != first and load_model(model).card.training["seed"] == 1


def test_resuming_from_a_corrupt_or_foreign_checkpoint_is_a_clear_error(strong_data, tmp_path, capsys):
    from napari_deepmir.cli import main
    from napari_deepmir.model.unet import DeepmirUNet
    from napari_deepmir.training.checkpoint import save_checkpoint

    out, checkpoint = tmp_path / "model", tmp_path / ".model.checkpoint"
    run = iter_train(TrainingConfig(out=out, data=[strong_data], steps=6, val_share=0.0, checkpoint_every=2, **TINY))
    for report in run:
        if report.step == 3:
            break
    run.close()
    tensors, state = checkpoint / "checkpoint.safetensors", checkpoint / "checkpoint.json"
    good_tensors, good_state = tensors.read_bytes(), state.read_text()
    resume = ["train", "--data", str(strong_data), "--out", str(out), "--steps", "6", "--resume", *TINY_ARGS]

    tensors.write_bytes(good_tensors[: len(good_tensors) // 2])  # truncated by a full disk
    assert main(resume) == 2
    assert f"{tensors}: corrupt checkpoint" in capsys.readouterr().err
    tensors.write_bytes(good_tensors)
    state.write_text(good_state.replace('"step": 2', '"step": "two"'))
    assert main(resume) == 2
    assert f"{state}: corrupt checkpoint (missing or invalid step)" in capsys.readouterr().err
    state.write_text(good_state[:-20])
    assert main(resume) == 2
    assert f"{state}: corrupt checkpoint" in capsys.readouterr().err
    other = DeepmirUNet(9, 3, base_filters=8, depth=3)  # a checkpoint of another network
    save_checkpoint(checkpoint, other, torch.optim.AdamW(other.parameters()), json.loads(good_state))
    assert main(resume) == 2
    error = capsys.readouterr().err
    assert (
        error.strip()
        .splitlines()[-1]
        .startswith(f"deepmir train: error: {tensors}: corrupt checkpoint, or one of another model")
    )
