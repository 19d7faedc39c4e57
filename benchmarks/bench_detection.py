"""Lesion-wise detection quality of a model on held-out synthetic subjects, per acquisition variant or per
stress set (worlds the training never saw: ``--stress``).

Generates subjects with seeds never used for training (default 9000+), one set per variant, predicts them
with the model (default: the shipped one) and prints pooled lesion-wise sensitivity, precision and false
positives per subject for each class, as a Markdown table next to the paper's.

    python benchmarks/bench_detection.py [--model DIR] [--subjects 3] [--seed 9000] [--variants default tilted_b0 ...]
    python benchmarks/bench_detection.py --stress [--fine-voxel 0.7 0.7 1.2] [--cache stress/]
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER = {"cmb": (0.89, 0.49), "iron": (0.81, 0.64)}  # multiclass SWI+QSM+T2, Rashid et al. 2021
PAPER_BEST = {"cmb": (0.89, 0.59), "iron": (0.81, 0.75)}  # best sensitivity and best precision of any row


def variants():
    """Acquisition variants: name -> keyword arguments of ``phantom.Acquisition``."""
    tilt = np.deg2rad(15)
    return {
        "default": {},
        "0.8 mm in-plane / 1.5 mm slices": {"voxel_mm": (0.8, 0.8, 1.5), "shape": (220, 260, 85)},
        "thick slices (3 mm)": {"voxel_mm": (1.0, 1.0, 3.0), "shape": (176, 208, 43)},
        "B0 tilted 15 deg": {"b0_direction": (0.0, float(np.sin(tilt)), float(np.cos(tilt)))},
        "SNR 15": {"snr": 15.0},
        "QSM in ppm": {"qsm_units": "ppm"},
        "T2 on its own grid (1x1x4 mm)": {"t2_voxel_mm": (1.0, 1.0, 4.0)},
        "beyond training: B0 tilted 30 deg": {"b0_direction": (0.0, 0.5, float(np.sqrt(0.75)))},
        "beyond training: SNR 10": {"snr": 10.0},
        "beyond training: 0.6 mm in-plane / 1.2 mm slices": {"voxel_mm": (0.6, 0.6, 1.2), "shape": (293, 347, 107)},
    }


def stress_sets():
    """Worlds the training did not use: name -> (``Acquisition`` keywords, world).

    The world is ``World`` keywords for a fixed world, or ``("wide", pins)`` for ``World.randomized`` per
    subject with ``pins`` fixed; the pinned values lie outside what ``World.randomized`` draws (``HELD_OUT``),
    so the sets stay unseen by a model trained on wide worlds too.
    """
    from napari_deepmir.phantom.world import HELD_OUT

    return {
        "training world, veins x3": ({}, {"vein_density": 3.0}),
        "training world, lesion-free": ({}, {"lesion_burden": "none"}),
        "wide world": ({}, ("wide", {})),
        "wide, veins x3": ({}, ("wide", {"vein_density": HELD_OUT["vein_density"]})),
        "wide, CG inversion": ({}, ("wide", {"inversion": HELD_OUT["inversion"]})),
        "wide, boxy heads": ({}, ("wide", {"head_shape": HELD_OUT["head_shape"]})),
        "wide, lesion-free": ({}, ("wide", {"lesion_burden": "none"})),
        "wide, 1.5 T": ({"field_t": 1.5}, ("wide", {})),
        "wide, 7 T": ({"field_t": 7.0}, ("wide", {})),
    }


def make_world(spec):
    """A ``World`` or a per-subject ``World.randomized`` from a :func:`stress_sets` world spec (None: default)."""
    from functools import partial

    from napari_deepmir.phantom import World

    if spec is None:
        return None
    if isinstance(spec, tuple):
        return partial(World.randomized, **spec[1])
    return World(**spec)


def calcifications_predicted(
    subject_dir: Path, affine: np.ndarray, labels: np.ndarray, truth: np.ndarray
) -> tuple[int, int]:
    """(calcifications touched by a false-positive predicted lesion, calcifications), from the generator's
    lesion JSON. A predicted lesion that matches a true one (a bleed beside a calcification) does not count."""
    import json

    from scipy import ndimage

    from napari_deepmir.io.bids import subject_files_matching
    from napari_deepmir.lesions.components import CONNECTIVITY_26

    components, _ = ndimage.label(labels > 0, structure=CONNECTIVITY_26)
    true_ids = set(np.unique(components[truth > 0]).tolist())

    record = json.loads(subject_files_matching(subject_dir, "*_lesions.json")[0].read_text())
    calcifications = [m for m in record["lesions"] if m["kind"] == "calcification"]
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    hit = 0
    for calcification in calcifications:
        radius = calcification["diameter_mm"] / 2 + spacing.max()  # its blooming rim on the grid
        centre = np.linalg.solve(affine, [*calcification["centre_mm"], 1.0])[:3]
        low = np.maximum(np.floor(centre - radius / spacing), 0).astype(int)
        high = np.minimum(np.ceil(centre + radius / spacing) + 1, labels.shape).astype(int)
        box = np.indices(high - low).reshape(3, -1) + low[:, None]
        world = affine[:3, :3] @ box + affine[:3, 3:4]
        near = np.linalg.norm(world - np.asarray(calcification["centre_mm"])[:, None], axis=0) <= radius
        touching = set(np.unique(components[tuple(box[:, near])]).tolist()) - {0}
        hit += bool(touching - true_ids)
    return hit, len(calcifications)


def evaluate_variant(model, folder: Path, device: str, rules: bool = True) -> tuple[dict, float, tuple[int, int]]:
    """Pooled lesion-wise metrics over every subject in ``folder``, the mean predict time (s) and
    (calcifications predicted as lesions, calcifications). Each subject is loaded with only the modalities
    the model reads, as a subject that has no others would be (an SWI-only model gets no QSM rule).
    ``rules=False`` keeps the detections the protocol's rules reject (to measure the rules)."""
    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.io.bids import find_subject_files, find_subject_folders
    from napari_deepmir.lesions.components import load_label_map
    from napari_deepmir.lesions.evaluate import score_lesions
    from napari_deepmir.training.common import pooled_metrics

    scores, seconds, calcified = [], [], np.zeros(2, int)
    for subject_dir in find_subject_folders(folder):
        subject = load_subject_dir(subject_dir, only=tuple(model.card.modalities))
        truth = load_label_map(find_subject_files(subject_dir)["labels"]).data
        start = time.perf_counter()
        labels = predict_subject(subject, model, device=device, rules=rules).labels
        seconds.append(time.perf_counter() - start)
        scores.append(score_lesions(truth, labels))
        calcified += calcifications_predicted(subject_dir, subject.affine, labels, truth)
    return pooled_metrics(scores), float(np.mean(seconds)), tuple(int(n) for n in calcified)


def _generate_missing(folder: Path, n_subjects: int, seed: int, acquisition, world=None, fine_voxel=None) -> Path:
    from napari_deepmir.phantom import generate_cohort

    if not folder.exists():
        options = {} if fine_voxel is None else {"fine_voxel_mm": tuple(fine_voxel)}
        generate_cohort(folder, n_subjects, seed, acquisition, world=make_world(world), **options)
    return folder


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def main(argv=None) -> int:
    import torch

    from napari_deepmir.model.files import load_model
    from napari_deepmir.model.registry import resolve_model
    from napari_deepmir.phantom import Acquisition

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder or shipped name (default: default)")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=9000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="*", default=None, help="subset of variant names (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="keep generated subjects here and reuse them")
    parser.add_argument("--generate-only", action="store_true", help="only write the held-out subjects (needs --cache)")
    parser.add_argument("--jobs", type=int, default=1, help="variants generated in parallel with --generate-only")
    parser.add_argument("--stress", action="store_true", help="the stress sets (worlds the training never saw)")
    parser.add_argument(
        "--no-rules", action="store_true", help="keep detections the protocol's rules reject (measures the rules)"
    )
    parser.add_argument(
        "--fine-voxel", type=float, nargs=3, default=None, help="finest simulation voxel in mm (default: the phantom's)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.stress:
        prefix, sets = "stress", stress_sets()
    else:
        prefix, sets = "variant", {name: (settings, None) for name, settings in variants().items()}
    chosen = {k: v for k, v in sets.items() if not args.variants or k in args.variants}
    seed = args.seed + (5000 if args.stress else 0)
    if args.generate_only:
        from concurrent.futures import ProcessPoolExecutor

        jobs = [
            (
                args.cache / f"{prefix}{i}",
                args.subjects,
                seed + 100 * i,
                Acquisition(**settings),
                world,
                args.fine_voxel,
            )
            for i, (name, (settings, world)) in enumerate(sets.items())
            if name in chosen
        ]
        with ProcessPoolExecutor(args.jobs) as pool:
            for folders in pool.map(_generate_missing, *zip(*jobs)):
                print(f"generated {folders}", flush=True)
        return 0
    model = load_model(resolve_model(args.model), args.device)
    print(
        f"model {model.card.name} ({model.path}); {args.subjects} held-out subjects per set, seeds {seed}+",
        file=sys.stderr,
    )
    print(
        f"| {'set' if args.stress else 'acquisition'} | CMB sens | CMB prec | CMB FP/subj | iron sens | iron prec "
        "| iron FP/subj | calcifications predicted | s/subject |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| DEEPMIR paper (SWI+QSM+T2, multiclass) | {PAPER['cmb'][0]} | {PAPER['cmb'][1]} | | {PAPER['iron'][0]} | "
        f"{PAPER['iron'][1]} | | | |"
    )
    print(
        f"| DEEPMIR paper, best cell of any row | {PAPER_BEST['cmb'][0]} | {PAPER_BEST['cmb'][1]} | | "
        f"{PAPER_BEST['iron'][0]} | {PAPER_BEST['iron'][1]} | | | |"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, (settings, world)) in enumerate(sets.items()):
            if name not in chosen:
                continue
            folder = _generate_missing(
                (args.cache or Path(tmp)) / f"{prefix}{index}",
                args.subjects,
                seed + 100 * index,
                Acquisition(**settings),
                world,
                args.fine_voxel,
            )
            m, seconds, (calcified, n_calcifications) = evaluate_variant(
                model, folder, args.device, rules=not args.no_rules
            )
            c, i = m["cmb"], m["iron"]
            print(
                f"| {name} | {_cell(c['sensitivity'])} | {_cell(c['precision'])} | {c['fp_per_subject']:.1f} "
                f"| {_cell(i['sensitivity'])} | {_cell(i['precision'])} | {i['fp_per_subject']:.1f} | "
                f"{calcified}/{n_calcifications} | {seconds:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
