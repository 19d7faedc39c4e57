"""Models for each input set: the shipped SWI+QSM+T2, SWI+QSM and SWI models, chosen by the inputs a
subject has (CLI, Detect widget, cohort), and the channel-dropping start they were trained from."""

import json
import shutil

import numpy as np
import pytest
import torch
from training_scenes import TINY, write_blob_subject

from napari_deepmir.cli import main
from napari_deepmir.io import InputError
from napari_deepmir.io.outputs import OutputSet
from napari_deepmir.model.files import load_model, model_sha256, read_card
from napari_deepmir.model.registry import choose_model, default_model_path, shipped_model_path
from napari_deepmir.training.transfer import drop_modalities

WORKER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    """sub-strong01: SWI+QSM (no T2); sub-strong02: SWI only; sub-strong03: all three."""
    root = tmp_path_factory.mktemp("inputsets")
    folders = [write_blob_subject(root, index) for index in (1, 2, 3)]
    (folders[0] / "sub-strong01_T2w.nii.gz").unlink()
    for suffix in ("T2w", "Chimap"):
        (folders[1] / f"sub-strong02_{suffix}.nii.gz").unlink()
    return root, folders


def test_dropping_t2_keeps_the_default_models_other_weights_exactly():
    base = load_model(default_model_path())
    module, card = drop_modalities(base.module, base.card, ["swi", "qsm"], "no-t2")
    assert card.modalities == ["swi", "qsm"] and card.in_channels == 6 and card.name == "no-t2"
    assert base.card.modalities == ["swi", "qsm", "t2"]  # the base is left as it was
    before, after = base.module.state_dict(), module.state_dict()
    first = "encoders.0.0.weight"
    assert before[first].shape[1] == 9 and after[first].shape[1] == 6
    assert torch.equal(after[first], before[first][:, :6])  # SWI and QSM, each with its 3 slices
    assert all(torch.equal(after[k], before[k]) for k in before if k != first)
    # so the new network computes what the base computes with its T2 channels at 0 (the brain's median)
    x = torch.randn(1, 6, 32, 32)
    with torch.inference_mode():
        expected = base.module(torch.cat([x, torch.zeros(1, 3, 32, 32)], dim=1))
        assert torch.allclose(module.eval()(x), expected, atol=1e-5)


def test_dropping_qsm_and_t2_keeps_the_swi_channels_and_refuses_what_the_base_lacks():
    base = load_model(default_model_path())
    module, card = drop_modalities(base.module, base.card, ["swi"])
    assert card.modalities == ["swi"]
    assert torch.equal(
        module.state_dict()["encoders.0.0.weight"], base.module.state_dict()["encoders.0.0.weight"][:, :3]
    )
    with pytest.raises(InputError, match="subset of the base's"):
        drop_modalities(module, card, ["swi", "t2"])
    with pytest.raises(InputError, match="SWI among them"):
        drop_modalities(base.module, base.card, ["qsm", "t2"])


def test_finetune_with_fewer_modalities_starts_from_the_base_on_subjects_without_them(tmp_path):
    data = tmp_path / "data"
    for index in (4, 5):
        write_blob_subject(data, index)
    base, out = tmp_path / "base", tmp_path / "no-t2"
    arch = [f"--{k.replace('_', '-')}={TINY[k]}" for k in ("base_filters", "depth", "context_slices")]
    common = ["--data", str(data), "--steps", "2", "--batch-size", "2", "--patch-size", "32", "--device", "cpu"]
    assert main(["train", *common, "--out", str(base), *arch]) == 0
    for t2 in data.glob("*/*_T2w.nii.gz"):  # the new model trains on subjects without T2
        t2.unlink()
    assert main(["finetune", *common, "--base", str(base), "--out", str(out), "--modalities", "swi", "qsm"]) == 0
    card = read_card(out)
    assert card.modalities == ["swi", "qsm"] and card.parent["dropped_modalities"] == ["t2"]
    assert card.parent["name"] == "base" and card.name == "no-t2"
    assert main(["finetune", *common, "--base", str(out), "--out", str(tmp_path / "x"), "--modalities", "t2"]) == 2


@pytest.mark.parametrize(
    ("available", "shipped", "reason"),
    [
        (("swi", "qsm", "t2"), "default", "the subject has SWI+QSM+T2"),
        (("swi", "qsm"), "swi-qsm", "the subject has no T2"),
        (("swi",), "swi", "the subject has no QSM or T2"),
        (("swi", "t2"), "swi", "the subject has no QSM; T2 not used (no shipped model reads SWI+T2)"),
    ],
)
def test_the_shipped_model_for_the_largest_subset_of_inputs_is_chosen(available, shipped, reason):
    choice = choose_model(available)
    assert choice.path == shipped_model_path(shipped)
    assert choice.card.modalities == [m for m in ("swi", "qsm", "t2") if m in read_card(choice.path).modalities]
    assert choice.reason == reason and choice.describe() == f"model {choice.card.name}: {reason}"


def test_a_chosen_model_must_have_its_inputs():
    assert choose_model(("swi", "qsm"), "swi").path == shipped_model_path("swi")  # fewer inputs is allowed
    with pytest.raises(InputError, match=r"needs SWI\+QSM\+T2 but the subject has no T2"):
        choose_model(("swi", "qsm"), "default")


@pytest.mark.parametrize(("subject", "shipped", "reason"), [(0, "swi-qsm", "no T2"), (1, "swi", "no QSM or T2")])
def test_predict_runs_the_model_for_the_subjects_inputs(subjects, tmp_path, capsys, subject, shipped, reason):
    _, folders = subjects
    folder = folders[subject]
    name = read_card(shipped_model_path(shipped)).name
    assert main(["predict", "--subject", str(folder), "--out", str(tmp_path), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"{folder.name}: model {name}: the subject has {reason}" in err
    made_by = OutputSet(tmp_path, folder.name).provenance()["GeneratedBy"]
    assert made_by["Model"] == name and made_by["ModelChoice"] == f"the subject has {reason}"
    assert made_by["ModelSha256"] == model_sha256(shipped_model_path(shipped))


def test_a_models_caution_is_repeated_in_every_detection(subjects, tmp_path, capsys):
    _, folders = subjects
    model = tmp_path / "cautious"
    shutil.copytree(shipped_model_path("swi"), model)
    card = json.loads((model / "model.json").read_text())
    card["caution"] = "experimental: trained on three subjects"  # the weights, and so their hash, are unchanged
    (model / "model.json").write_text(json.dumps(card))
    out = tmp_path / "out"
    assert main(["predict", "--subject", str(folders[1]), "--out", str(out), "--model", str(model)]) == 0
    assert f"warning: model {card['name']}: experimental: trained on three subjects" in capsys.readouterr().err
    warnings = OutputSet(out, folders[1].name).provenance()["Warnings"]
    assert any("experimental: trained on three subjects" in w for w in warnings)


def test_the_prediction_api_without_a_model_takes_the_one_for_the_inputs(subjects):
    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.io import load_subject_dir

    _, folders = subjects
    subject = load_subject_dir(folders[1])  # SWI only: the default model would refuse it
    assert predict_subject(subject, device="cpu").labels.shape == subject.shape
    assert load_subject_dir(folders[2], only=("swi", "qsm")).available == ("swi", "qsm")  # T2 left unread


def test_predict_refuses_a_model_needing_a_missing_modality(subjects, tmp_path, capsys):
    _, folders = subjects
    args = ["predict", "--subject", str(folders[1]), "--out", str(tmp_path), "--model", "swi-qsm", "--device", "cpu"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "needs SWI+QSM but the subject has no QSM" in error and not list(tmp_path.iterdir())


def test_detect_widget_picks_the_model_for_the_layers_chosen(make_napari_viewer, qtbot, subjects):
    from napari_deepmir.widgets._model_inputs import AUTOMATIC, select_model

    _, folders = subjects
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    viewer.open(str(folders[0]), plugin="napari-deepmir")  # SWI + QSM
    assert widget.model_box.value == AUTOMATIC
    swi_qsm = read_card(shipped_model_path("swi-qsm")).name
    assert widget.status_label.text() == f"Model {swi_qsm}: the subject has no T2."
    widget.device_box.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert "sub-strong01 lesions" in viewer.layers
    assert widget.detection.result.model["Model"] == swi_qsm
    first = widget.status_label.text().split("\n")[0]
    assert f"(model {swi_qsm}: the subject has no T2)" in first

    widget.inputs.pickers["qsm"].value = None  # SWI only
    swi = read_card(shipped_model_path("swi")).name
    assert widget.status_label.text() == f"Model {swi}: the subject has no QSM or T2."
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    assert widget.detection.result.model["Model"] == swi

    select_model(widget.model_box, default_model_path())  # the user's choice
    assert widget.missing_modalities() == ["qsm", "t2"] and "needs SWI+QSM+T2" in widget.status_label.text()
    assert np.isin(np.unique(viewer.layers["sub-strong01 lesions"].data), [0, 1, 2]).all()
