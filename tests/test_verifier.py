"""The second stage: patches around candidates, the verifier in the model file, and what it does to a prediction."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import oblique_affine, sphere_world
from test_model_and_inference import head_subject

from napari_deepmir.detection.inference import prepare_input
from napari_deepmir.detection.pipeline import predict_subject
from napari_deepmir.io import InputError
from napari_deepmir.lesions.patches import candidate_patches
from napari_deepmir.model.card import ModelCard
from napari_deepmir.model.files import load_model, model_sha256, save_model
from napari_deepmir.model.unet import DeepmirUNet
from napari_deepmir.model.verifier import CandidateVerifier

PATCH = [12, 12, 6]


def with_verifier(tmp_path, verdict: int | None = None, name="two-stage"):
    """A tiny U-Net that calls every brain voxel a CMB (so every blob is a candidate) and a tiny verifier;
    ``verdict`` 0/1/2 makes the verifier always answer that class."""
    torch.manual_seed(0)
    card = ModelCard(
        name=name,
        architecture={"base_filters": 4, "depth": 3, "context_slices": 1},
        postprocess={"min_probability": 0.5, "min_volume_mm3": 0.0, "min_qsm_ppb": None, "tube_min_length_mm": 0.0},
        verifier={"base_filters": 4, "patch_shape": PATCH, "min_probability": 0.5},
    )
    unet = DeepmirUNet(card.in_channels, 3, 4, 3)
    verifier = CandidateVerifier(len(card.modalities) + 1, 3, 4)
    if verdict is not None:
        with torch.no_grad():
            verifier.head[1].weight.zero_()
            verifier.head[1].bias.copy_(torch.tensor([10.0 if c == verdict else 0.0 for c in range(3)]))
    return save_model(tmp_path / name, unet, card, verifier=verifier), unet, verifier, card


@pytest.mark.parametrize("orientation", ["RAS", "LPS-permuted-oblique"])
def test_a_candidate_sits_at_the_centre_of_its_patch_in_any_orientation(orientation):
    affine = (
        oblique_affine((0.9, 0.9, 3.0), 0.0)
        if orientation == "RAS"
        else np.array([[0, 0, -3.0, 40], [-0.9, 0, 0, 30], [0, 0.9 * np.cos(0.2), 0, -20], [0, 0, 0, 1]])
    )
    shape = (60, 70, 24)
    subject = head_subject(shape, affine)
    prepared = prepare_input(subject, ModelCard(spacing_mm=[1.0, 1.0, 2.0]))
    components = np.zeros(shape, np.int32)
    for number, centre_mm in enumerate([(-15, -15, 0), (-22, -10, 12)], start=1):  # inside the head
        components[sphere_world(shape, affine, centre_mm, 2.5)] = number
    patches = candidate_patches(prepared, components, 3, PATCH)  # number 3 has no voxels
    assert patches.shape == (3, 4, *PATCH) and not patches[2].any()
    for patch in patches[:2]:
        mask = patch[-1] > 0
        centre = np.array(np.nonzero(mask)).mean(axis=1)
        assert np.abs(centre - (np.array(PATCH) - 1) / 2).max() <= 1.0  # the candidate is in the middle
        assert mask.sum() >= 5 and (patch[0] != 0).mean() > 0.5  # its own mask, with the SWI around it


def test_a_model_with_a_verifier_loads_exactly_and_its_weights_are_checked(tmp_path):
    folder, _, verifier, card = with_verifier(tmp_path)
    loaded = load_model(folder)
    x = torch.randn(3, 4, *PATCH)
    verifier.eval()
    assert torch.equal(loaded.verifier(x), verifier(x))
    assert json.loads((folder / "model.json").read_text())["verifier"]["patch_shape"] == PATCH
    # a card that promises a verifier the weights lack (or a different one) is refused before loading
    without, _, _ = tmp_path / "plain", None, None
    save_model(without, DeepmirUNet(card.in_channels, 3, 4, 3), ModelCard(architecture=card.architecture))
    data = json.loads((without / "model.json").read_text())
    data["verifier"] = card.verifier
    (without / "model.json").write_text(json.dumps(data | {"sha256": model_sha256(without)}))
    with pytest.raises(InputError, match="weights do not fit the model card"):
        load_model(without)
    data["verifier"] = {**card.verifier, "base_filters": 100000}
    (without / "model.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="verifier.base_filters must be in 1..128"):
        load_model(without)


@pytest.mark.parametrize("verdict", [0, 1, 2])
def test_the_verifier_decides_which_lesions_stay_and_they_keep_the_unets_class(tmp_path, verdict):
    folder, *_ = with_verifier(tmp_path, verdict)
    subject = head_subject()
    unet_only = tmp_path / "unet-only"
    loaded = load_model(folder)
    card = loaded.card
    card.verifier = None
    save_model(unet_only, loaded.module, card)
    # the protocol's rules (tests/test_rule_consistency.py) would drop the tiny U-Net's weak spots: the verifier alone
    before = predict_subject(subject, unet_only, device="cpu", rules=False).labels
    after = predict_subject(subject, folder, device="cpu", rules=False).labels
    assert before.any()  # the U-Net alone finds candidates
    if verdict == 0:  # "not a lesion" for every candidate: all dropped
        assert not after.any()
    else:  # a lesion of either class: every candidate kept as the U-Net labelled it, never relabelled
        assert np.array_equal(after, before)


def test_train_verifier_adds_a_second_stage_that_a_finetune_keeps_and_retrains(tmp_path, capsys):
    from training_scenes import TINY, write_blob_subject

    from napari_deepmir.cli import main
    from napari_deepmir.model.files import read_card
    from napari_deepmir.training.common import TrainingConfig
    from napari_deepmir.training.trainer import train

    data = tmp_path / "data"
    for i in range(3):
        write_blob_subject(data, i)
    base = tmp_path / "base"
    train(TrainingConfig(out=base, data=[data], steps=30, val_share=0.0, lr=3e-3, device="cpu", **TINY))
    before = model_sha256(base)
    two = tmp_path / "two-stage"
    common = ["--data", str(data), "--device", "cpu", "--val-share", "0"]
    assert main(["train-verifier", *common, "--base", str(base), "--out", str(two), "--steps", "6"]) == 0
    assert "verifier kept" in capsys.readouterr().out
    card = read_card(two)
    assert card.verifier is not None and card.training["verifier"]["steps"] == 6
    assert card.parent["name"] == "base" and card.training["verifier"]["examples"]["cmb"] > 0
    assert load_model(two).verifier is not None and model_sha256(base) == before  # the base is untouched
    assert predict_subject(head_subject(), two, device="cpu").labels.shape == head_subject().shape

    tuned = tmp_path / "tuned"
    tiny_patches = ["--batch-size", "4", "--patch-size", "32"]
    args = ["finetune", *common, *tiny_patches, "--base", str(two), "--out", str(tuned), "--steps", "3"]
    assert main([*args, "--verifier-steps", "4"]) == 0
    card = read_card(tuned)
    assert card.verifier is not None and card.training["verifier"]["steps"] == 4  # retrained on the new U-Net
    assert card.parent["name"] == "two-stage" and load_model(tuned).verifier is not None
    assert main([*args[:-4], "--out", str(tmp_path / "kept"), "--steps", "3", "--verifier-steps", "0"]) == 0
    assert read_card(tmp_path / "kept").verifier == read_card(two).verifier  # carried over as it was


def test_the_threshold_removes_false_positives_but_not_the_lesions_the_unet_finds():
    from napari_deepmir.training.verifier import VERIFIER_THRESHOLDS, choose_threshold

    def metrics(found, false_positives):
        n_pred = found + false_positives
        f1 = 2 * found / (20 + n_pred)
        row = {"n_truth": 20, "n_truth_found": found, "n_pred": n_pred, "n_pred_true": found, "f1": f1}
        return {"cmb": row, "iron": {**row, "n_truth": 0, "n_truth_found": 0, "n_pred": 0, "f1": float("nan")}}

    results = {"unet": metrics(18, 10)}
    false_positives = {0.3: 9, 0.4: 7, 0.5: 5, 0.6: 4}
    for t in VERIFIER_THRESHOLDS:  # higher thresholds: fewer false positives, then microbleeds lost
        results[t] = metrics(18, false_positives[t]) if t in false_positives else metrics(16, 0)
    assert results[0.7]["cmb"]["f1"] > results[0.6]["cmb"]["f1"]
    threshold, chosen = choose_threshold(results)
    assert threshold == 0.6 and chosen["cmb"]["n_truth_found"] == 18  # 0.7-0.9: a better F1, 2 microbleeds lost


def test_a_synthetic_subjects_veins_and_mimics_become_hard_negatives_and_a_broken_record_is_refused(tmp_path):
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.phantom import Acquisition, World, generate_subject, write_subject
    from napari_deepmir.training.verifier import SIMULATED_VEIN_POINTS, simulated_mimic_seeds

    small = Acquisition(shape=(80, 96, 30), voxel_mm=(2.0, 2.0, 4.0))
    made = generate_subject(3, small, world=World.wide(lesion_burden="default"), fine_voxel_mm=(1.0, 1.0, 2.0))
    folder = write_subject(made, tmp_path)["swi"].parent
    subject = load_subject_dir(folder)
    seeds = simulated_mimic_seeds(folder, subject)
    assert 10 < len(seeds) <= SIMULATED_VEIN_POINTS + sum(o["kind"] != "vein" for o in made.lesions)
    assert subject.mask[tuple(seeds.T)].all()  # inside the brain, where the U-Net looks
    mimics = [o for o in made.lesions if o["label"] == 0 and o["kind"] != "vein"]
    at = np.rint([(np.linalg.inv(subject.affine) @ np.append(o["centre_mm"], 1))[:3] for o in mimics]).astype(int)
    inside = [tuple(v) for v in at if ((v >= 0) & (v < subject.shape)).all() and subject.mask[tuple(v)]]
    assert inside and set(inside) <= {tuple(v) for v in seeds}  # every flow void, calcification... in the brain
    assert (simulated_mimic_seeds(folder, subject) == seeds).all()  # the same points in every run

    assert len(simulated_mimic_seeds(tmp_path, subject)) == 0  # no record: a user's subject
    record = next(folder.glob("*_lesions.json"))
    record.write_text('{"lesions": [{"kind": "vein"}]}')
    with pytest.raises(InputError, match="_lesions.json.*object record"):
        simulated_mimic_seeds(folder, subject)


@pytest.mark.parametrize("verdict", [0, 1])
def test_the_verifier_adds_a_microbleed_the_unet_missed_but_never_a_calcification(tmp_path, verdict):
    _, unet, verifier, card = with_verifier(tmp_path, verdict)
    card.postprocess["min_probability"] = 1.0  # a U-Net that keeps nothing
    card.verifier.update(blob_candidates=10, blob_min_probability=0.5)
    blind = save_model(tmp_path / "blind", unet, card, verifier=verifier)
    subject = head_subject()
    balls = {}
    for name, centre, susceptibility in (("bleed", (12, 8, 0), 400.0), ("calcification", (-14, -6, 4), -400.0)):
        balls[name] = sphere_world(subject.shape, subject.affine, centre, 3.5) > 0
        subject.swi[balls[name]], subject.qsm[balls[name]] = 20.0, susceptibility  # dark on SWI, each its sign
    labels = predict_subject(subject, blind, device="cpu").labels
    assert not labels[balls["calcification"]].any()  # diamagnetic: the guidance rejects it before the verifier
    if verdict == 0:
        assert not labels.any()
    else:  # the paramagnetic blob becomes a microbleed, and nothing else does
        assert (labels[balls["bleed"]] == 1).mean() > 0.5 and set(np.unique(labels[~balls["bleed"]])) == {0}
    with pytest.raises(ValueError, match="blob_min_probability must be in 0..1"):  # a hostile card is refused
        dataclasses.replace(card, verifier={**card.verifier, "blob_min_probability": 1.5})
