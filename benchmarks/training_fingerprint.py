"""A fingerprint of tiny seeded training runs, to show that a refactor of ``training/`` changed no behaviour.

Trains on three tiny blob subjects (tests/training_scenes.py), on the CPU: a new U-Net with validation,
threshold tuning and checkpoints; one without validation subjects (threshold tuned on the training
subjects); one interrupted and resumed from its checkpoint; a second stage for the first
(``iter_train_verifier``, kept without validation subjects); a fine-tune of that two-stage model, its
verifier retrained after the U-Net (``run_training``); and a fine-tune stopped mid-run. The fingerprint
holds every report (step, loss, learning rate, scores), a SHA-256 of each model's tensors, its card (less
its date) and the run's result.

    python benchmarks/training_fingerprint.py before.json               # on the old code
    python benchmarks/training_fingerprint.py after.json --compare before.json

``--compare`` exits 1 and names the first difference when the two fingerprints differ. A few minutes.
"""

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from training_scenes import TINY, write_blob_subject

from napari_deepmir.model.files import read_card
from napari_deepmir.training.common import TrainingConfig
from napari_deepmir.training.trainer import iter_train, run_training
from napari_deepmir.training.verifier import iter_train_verifier


def _report(report) -> dict:
    return {key: value for key, value in vars(report).items() if key != "elapsed_s"}


def _weights_sha256(folder: Path) -> str:
    """SHA-256 of the tensors (names, dtypes, shapes, values): the weights file's own bytes are not stable,
    as safetensors writes its header's metadata in a random order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(str(folder / "model.safetensors")).items()):
        digest.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _card(card) -> dict:
    """The card less its date and its parent's file hash (see :func:`_weights_sha256`)."""
    card = card.to_dict()
    card.pop("created", None)
    if card.get("parent"):
        card["parent"].pop("sha256", None)
    return card


def _model(folder: Path) -> dict:
    return {"weights_sha256": _weights_sha256(folder), "card": _card(read_card(folder))}


def _forward(generator) -> tuple[list[dict], object]:
    """Every report of ``generator`` and its return value."""
    reports = []
    while True:
        try:
            reports.append(_report(next(generator)))
        except StopIteration as end:
            return reports, end.value


def fingerprint(root: Path) -> dict:
    torch.set_num_threads(2)
    data = root / "data"
    for i in range(3):
        write_blob_subject(data, i)
    common = {"data": [data], "device": "cpu", "lr": 3e-3, **TINY}
    result: dict = {}

    new = root / "new"
    config = TrainingConfig(out=new, steps=40, eval_every=10, val_share=0.34, checkpoint_every=15, **common)
    result["new"] = {"reports": [_report(r) for r in iter_train(config)], "model": _model(new)}

    plain = root / "plain"
    config = TrainingConfig(out=plain, steps=8, val_share=0.0, seed=3, **common)
    result["no_validation"] = {"reports": [_report(r) for r in iter_train(config)], "model": _model(plain)}

    resumed = root / "resumed"
    config = TrainingConfig(out=resumed, steps=6, val_share=0.0, seed=3, checkpoint_every=2, **common)
    run, reports = iter_train(config), []
    for report in run:
        reports.append(_report(report))
        if report.step == 3:
            break
    run.close()
    reports += [_report(r) for r in iter_train(dataclasses.replace(config, resume=True))]
    result["resumed"] = {"reports": reports, "model": _model(resumed)}

    two = root / "two-stage"
    config = TrainingConfig(out=two, base=new, steps=4, val_share=0.0, **common)  # kept: nothing to beat
    result["verifier"] = {"reports": [_report(r) for r in iter_train_verifier(config)], "model": _model(two)}

    tuned = root / "tuned"
    config = TrainingConfig(out=tuned, base=two, steps=6, eval_every=3, val_share=0.34, verifier_steps=3, **common)
    reports, outcome = _forward(run_training(config))
    summary = {k: v for k, v in vars(outcome).items() if k != "card"} | {"card": _card(outcome.card)}
    result["finetune"] = {"reports": reports, "model": _model(tuned), "result": summary}

    stopped = root / "stopped"
    config = TrainingConfig(out=stopped, base=new, steps=20, eval_every=4, val_share=0.34, **common)
    run, reports = iter_train(config), []
    for report in run:
        reports.append(_report(report))
        if report.step >= 6:
            break
    run.close()
    result["stopped"] = {"reports": reports, "model": _model(stopped)}
    text = json.dumps(result, default=str).replace(str(root), "<root>")  # the temporary folder aside
    return json.loads(text)  # the form it has once written


def _first_difference(a, b, where="") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'after' if key not in a else 'before'}"
            found = _first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} entries before, {len(b)} after"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    same_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return None if a == b or same_nan else f"{where}: {a!r} before, {b!r} after"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the fingerprint (JSON)")
    parser.add_argument("--compare", type=Path, help="a fingerprint to compare with (e.g. of the code before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = fingerprint(Path(folder))
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    runs = ", ".join(f"{name}: {len(run['reports'])} reports" for name, run in result.items())
    print(f"fingerprint -> {args.out} ({runs})")
    if args.compare:
        difference = _first_difference(json.loads(args.compare.read_text(encoding="utf-8")), result)
        print(f"differs from {args.compare}: {difference}" if difference else f"identical to {args.compare}")
        return 1 if difference else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
