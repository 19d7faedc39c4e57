"""The CPU training recipe's parts (issue 21): modality dropout, and a run killed mid-way that resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from training_scenes import write_blob_subject

from napari_deepmir.training.augment import Augmentation, augment_patch

torch.set_num_threads(2)

TINY_ARGS = ["--base-filters", "4", "--depth", "3", "--context-slices", "1", "--spacing", "1", "1", "2"]
TINY_ARGS += ["--patch-size", "32", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("blobs")
    for i in range(3):
        write_blob_subject(root, i)
    return root


def _crops(rng, n_mod=3):
    image = rng.normal(size=(n_mod, 3, 32, 32)).astype(np.float32)
    return image, np.zeros((32, 32), np.uint8)


def _flat_channels(out: np.ndarray, n_mod: int = 3) -> list[int]:
    per_modality = out.reshape(n_mod, -1, *out.shape[1:])
    return [m for m in range(n_mod) if not per_modality[m].any()]


def test_modality_dropout_flattens_one_modality_at_its_rate_t2_most_often_never_all():
    aug = Augmentation.for_training(True, 0.4, ("swi", "qsm", "t2"))
    rng = np.random.default_rng(0)
    dropped = []
    for _ in range(600):
        out, _ = augment_patch(*_crops(rng), 16, rng, aug)
        flat = _flat_channels(out)
        assert len(flat) <= 1  # never all, never two
        dropped += flat
    assert abs(len(dropped) / 600 - 0.4) < 0.06
    share_t2 = dropped.count(2) / len(dropped)
    assert 0.5 < share_t2 < 0.7  # 3:1:1 odds
    assert dropped.count(0) > 20 and dropped.count(1) > 20  # any modality may go


def test_without_modality_dropout_the_augmentation_is_unchanged_and_a_single_modality_is_never_dropped():
    first, second = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):
        a = augment_patch(*_crops(first), 16, first, Augmentation())
        b = augment_patch(*_crops(second), 16, second, Augmentation.for_training(True, 0.0, ("swi", "qsm", "t2")))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    rng = np.random.default_rng(1)
    only_swi = Augmentation.for_training(True, 1.0, ("swi",))
    assert all(_flat_channels(augment_patch(*_crops(rng, 1), 16, rng, only_swi)[0], 1) == [] for _ in range(20))


def _deepmir(*args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "napari_deepmir.cli", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_the_card_records_modality_dropout_only_when_it_was_used(blob_data, tmp_path):
    from training_scenes import TINY

    from napari_deepmir.training.common import TrainingConfig
    from napari_deepmir.training.trainer import train

    settings = dict(data=[blob_data], steps=2, val_share=0.0, tune_threshold=False, **TINY)
    plain = train(TrainingConfig(out=tmp_path / "plain", **settings))
    dropout = train(TrainingConfig(out=tmp_path / "dropout", modality_dropout=0.3, **settings))
    assert "modality_dropout" not in plain.card.training
    assert dropout.card.training["modality_dropout"] == 0.3


def test_a_training_killed_after_its_checkpoint_resumes_from_it_and_its_model_stays_valid(blob_data, tmp_path):
    from napari_deepmir.model.files import load_model, recover_folder
    from napari_deepmir.training.checkpoint import STATE

    out, checkpoint = tmp_path / "model", tmp_path / ".model.checkpoint"
    args = ["train", "--data", str(blob_data), "--out", str(out), "--steps", "24", "--eval-every", "4"]
    args += ["--checkpoint-every", "8", "--val-share", "0.34", "--modality-dropout", "0.3", *TINY_ARGS]
    first = _deepmir(*args)
    deadline = time.monotonic() + 300
    while not (checkpoint / STATE).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = json.loads((recover_folder(checkpoint) / STATE).read_text())["step"]
    assert killed_at == 8  # the first checkpoint
    assert load_model(out, "cpu").card.training["steps_run"] <= killed_at  # the best model so far, intact

    again = _deepmir(*args)  # without --resume the interrupted run's work is not thrown away
    assert again.wait(timeout=120) == 2 and "--resume" in again.stderr.read()
    assert (recover_folder(checkpoint) / STATE).exists()

    resumed = _deepmir(*args, "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    log, summary = resumed.stderr.read(), resumed.stdout.read()
    assert ": 24 steps, best at step" in summary
    validated = [int(line.split()[1].rstrip(":")) for line in log.splitlines() if ": validation" in line]
    assert validated and min(validated) == killed_at + 4  # no validation of step 0 or 4: it went on from 8
    model = load_model(out, "cpu")
    assert model.card.training["modality_dropout"] == 0.3
    assert not checkpoint.exists()  # a finished run leaves no checkpoint behind
