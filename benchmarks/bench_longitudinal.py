"""Follow-up reading on synthetic pairs: new-microbleed sensitivity, false new lesions, ARIA-H grade accuracy.

    .venv/bin/python benchmarks/bench_longitudinal.py [--pairs 8] [--no-change 4] [--detections truth|model]
        [--shape 80 96 30 --voxel 2 2 4] [--max-rotation 5 --max-shift 5]

Each pair is ``deepmir synth --sessions 2``'s: one head scanned twice, the follow-up with the head turned by up
to ``--max-rotation`` degrees and shifted by up to ``--max-shift`` mm, other noise, 0-12 new microbleeds and
maybe one resolved. ``--no-change`` pairs more have no new and no resolved lesion (only motion and noise).
Each pair goes through :func:`napari_deepmir.longitudinal.run.run_comparison` as ``deepmir longitudinal``
runs it: lesions from the truth label maps of each session (``truth``: isolates registration, matching and
grading) or from the shipped model (``model``: the whole chain).

Prints one line per pair (registration error: how far from where the true motion puts it a corner of the
brain's bounding box lands) and the summary: new-lesion sensitivity, false new lesions per pair, grade exact
share and weighted kappa, persisting lesions called new; for the no-change pairs, new lesions called and grades.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_deepmir.io.registration import max_displacement_mm
from napari_deepmir.longitudinal.evaluate import score_pair, summarise
from napari_deepmir.longitudinal.outputs import session_outputs
from napari_deepmir.longitudinal.run import run_comparison
from napari_deepmir.phantom import Acquisition
from napari_deepmir.phantom.sessions import generate_pair, write_pair


def _pair(root: Path, seed: int, index: int, args, **change) -> tuple[Path, str, pd.DataFrame, dict]:
    """Write pair ``index`` under ``root/data`` (or read it back when the cache has it): its folder, name, truth
    change table and head motion."""
    name = f"sub-{index:03d}"
    folder = root / "data" / name
    truth_path = folder / f"{name}_desc-truth_changes.tsv"
    if not truth_path.exists():
        acquisition = Acquisition(shape=tuple(args.shape), voxel_mm=tuple(args.voxel))
        pair = generate_pair(
            seed,
            acquisition,
            name=name,
            fine_voxel_mm=tuple(args.fine_voxel),
            max_rotation_deg=args.max_rotation,
            max_shift_mm=args.max_shift,
            **change,
        )
        write_pair(pair, root / "data")
    motion = json.loads(truth_path.with_suffix(".json").read_text())["HeadMotion"]
    return folder, name, pd.read_csv(truth_path, sep="\t"), motion


def _one(root: Path, seed: int, index: int, args, **change) -> dict:
    saved = root / "scores" / f"sub-{index:03d}.json"
    if args.from_scores:
        return json.loads(saved.read_text())
    folder, name, truth, motion = _pair(root, seed, index, args, **change)
    sessions = [folder / "ses-1", folder / "ses-2"]
    labels = {}
    for role, session in zip(("baseline", "followup"), sessions):
        if args.detections == "truth":
            labels[f"{role}_labels"] = session / "anat" / f"{name}_{session.name}_dseg.nii.gz"
        elif session_outputs(root / "out", name, session.name).is_complete():  # detected by an earlier run
            labels[f"{role}_labels"] = session_outputs(root / "out", name, session.name).labels
    start = time.perf_counter()
    comparison, _ = run_comparison(*sessions, root / "out", device=args.device, overwrite=True, **labels)
    score = score_pair(comparison.changes, truth)
    moved = np.array(motion["BaselineToFollowupRasMm"])
    score |= {
        "rotation_deg": motion["RotationDeg"],
        "shift_mm": motion["ShiftMm"],
        "residual_mm": comparison.registration.residual_mm,
        "error_mm": max_displacement_mm(
            np.linalg.inv(moved) @ comparison.registration.transform,
            comparison.baseline.subject.mask,
            comparison.baseline.subject.affine,
        ),
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{name}: motion {score['rotation_deg']:.1f} deg {score['shift_mm']:.1f} mm, registration error "
        f"{score['error_mm']:.2f} mm (residual {score['residual_mm']:.2f}); new {score['found']}/{score['truth_new']} "
        f"found, {score['false_new']} false new, {score['persisting_called_new']} persisting called new; "
        f"grade {score['grade']} (truth {score['truth_grade']}); {score['seconds']:.0f} s",
        flush=True,
    )
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps({k: v.item() if isinstance(v, np.generic) else v for k, v in score.items()}))
    return score


def _scores(root: Path, args) -> tuple[list[dict], list[dict]]:
    """Scores of the changing pairs and of the no-change pairs (those of this ``--shard``)."""
    mine = range(args.shard[0], args.pairs + args.no_change, args.shard[1])
    if args.from_scores:  # the pairs an earlier run scored
        mine = [i for i in mine if (root / "scores" / f"sub-{i + 1:03d}.json").exists()]
    scores = [_one(root, 1000 + i, i + 1, args) for i in mine if i < args.pairs]
    calm = [_one(root, 2000 + i - args.pairs, i + 1, args, new_cmbs=0, resolved=False) for i in mine if i >= args.pairs]
    return scores, calm


def run(args) -> None:
    if args.cache:
        scores, calm = _scores(Path(args.cache), args)
    else:
        with tempfile.TemporaryDirectory() as folder:
            scores, calm = _scores(Path(folder), args)
    print(
        f"\n{len(scores)} pairs, grid {tuple(args.shape)} of {tuple(args.voxel)} mm, lesions from {args.detections}, "
        f"motion up to {args.max_rotation:g} deg / {args.max_shift:g} mm"
    )
    if scores:
        s = summarise(scores)
        print(
            f"new-microbleed sensitivity {s['sensitivity']:.3f} ({s['found']}/{s['truth_new']}); "
            f"false new per pair {s['false_new_per_pair']:.2f}; grade exact {100 * s['grade_exact']:.0f} %; "
            f"weighted kappa {s['grade_kappa']:.3f}; persisting called new {s['persisting_called_new']}; "
            f"largest registration error {max(x['error_mm'] for x in scores):.2f} mm"
        )
    if calm:
        new = [x["called_new"] for x in calm]
        grades = sorted({x["grade"] for x in calm})
        print(f"no-change pairs: {len(calm)}, new microbleeds called {new}, grades {grades}")
    print(f"median seconds per comparison {np.median([x['seconds'] for x in scores + calm]):.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--no-change", type=int, default=4)
    parser.add_argument("--detections", choices=("truth", "model"), default="truth")
    parser.add_argument("--shape", type=int, nargs=3, default=(80, 96, 30))
    parser.add_argument("--voxel", type=float, nargs=3, default=(2.0, 2.0, 4.0))
    parser.add_argument("--fine-voxel", type=float, nargs=3, default=(1.0, 1.0, 2.0))
    parser.add_argument("--max-rotation", type=float, default=5.0)
    parser.add_argument("--max-shift", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", help="keep the pairs and the model's detections here and reuse them")
    parser.add_argument("--from-scores", action="store_true", help="summarise the scores an earlier --cache run kept")
    parser.add_argument("--shard", type=int, nargs=2, default=(0, 1), metavar=("K", "N"), help="run pairs i %% N == K")
    run(parser.parse_args())
