"""Detection on an independent world: anatomy from the MNI152 2009 template (nilearn), physics from qsm-forward.

Nothing here comes from the project's phantom: tissue classes and deep grey nuclei come from the grey/white-matter
probability maps of the ICBM 2009a symmetric template that nilearn ships (no download); the field, the GRE signal,
the noise and the k-space cropping (1 mm simulation -> 1 x 1 x 2 mm acquisition) are qsm-forward's (Stewart et al.,
after the QSM reconstruction challenge 2.0 forward model, Marques et al., MRM 2021); the QSM pipeline (Laplacian
unwrapping, V-SHARP, TV-ADMM inversion) is written here and is none of the phantom's (anatomy, lesions and veins in
``template_world_anatomy.py``, physics and reconstruction in ``template_world_physics.py``). SWI is
``napari_deepmir.io.swi``. Lesions: microbleeds (lobar, deep, infratentorial), iron deposits in putamen and
pallidum, and as mimics calcifications, medullary and cortical veins. Subjects are cached in ``--cache``.

Benchmark-only packages (not project dependencies): ``pip install nilearn qsm-forward``.

    python benchmarks/bench_template_world.py --cache tw/ [--subjects 4] [--normal 3] [--model default swi-qsm swi]
    python benchmarks/bench_template_world.py --cache tw/ --generate-only
    python benchmarks/bench_template_world.py --cache tw/ --figure docs/images/template-world.png
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from template_world_anatomy import add_veins, load_template, nucleus_masks, place_lesions, random_warp, warp
from template_world_physics import (
    SWI_VOXEL_MM,
    acquire,
    reconstruct,
    relaxation_maps,
    susceptibility,
    t2_image,
    z_triangle,
)

# --- subjects ------------------------------------------------------------------------------------------------------


def prepare_template() -> dict:
    """The cropped template and its nuclei (template space), computed once per run."""
    t1, gm, wm, brain, affine = load_template()
    grid = np.indices(t1.shape, dtype=np.float32).reshape(3, -1)
    coords = (affine[:3, :3] @ grid + affine[:3, 3:4]).reshape(3, *t1.shape)
    volumes = {"t1": t1, "gm": gm, "wm": wm, "brain": brain}
    volumes.update({k: v.astype(np.float32) for k, v in nucleus_masks(t1, gm, coords).items()})
    return {"volumes": volumes, "affine": affine}


def subject_maps(template: dict, rng) -> tuple[dict, np.ndarray]:
    """The template warped into one subject: probability maps, binary brain and nuclei, and the MNI coordinates."""
    volumes, affine = template["volumes"], template["affine"]
    coords = random_warp(volumes["t1"].shape, affine, rng)
    maps = {}
    for name, volume in volumes.items():
        binary = name not in ("t1", "gm", "wm")
        warped = warp(volume, coords, affine, order=1)
        maps[name] = warped > 0.5 if binary else warped
    for name in ("gm", "wm", "t1"):
        maps[name] = maps[name] * maps["brain"]
    return maps, coords


def _coarse_index(centre_vox) -> tuple[int, int, int]:
    x, y, z = np.round(np.asarray(centre_vox) / SWI_VOXEL_MM).astype(int)
    return int(x), int(y), int(z)


def truth_labels(occ, records, shape) -> np.ndarray:
    """Labels on the 1 x 1 x 2 mm grid: where a lesion fills >= 30 % of a voxel (CMB over iron), and each
    lesion's centre voxel at least, so the smallest microbleeds stay in the truth."""
    cmb, iron = z_triangle(occ["cmb"]), z_triangle(occ["iron"])
    labels = np.zeros(cmb.shape, np.uint8)
    labels[iron >= 0.3] = 2
    labels[cmb >= 0.3] = 1
    for record in records:
        value = {"cmb": 1, "iron": 2}.get(record["kind"])
        index = _coarse_index(record["centre_vox"])
        if value == 1:
            labels[index] = 1
        elif value == 2 and not (labels[tuple(slice(max(i - 2, 0), i + 3) for i in index)] == 2).any():
            labels[index] = 2
    return labels


def make_subject(template: dict, seed: int, with_lesions: bool) -> dict:
    """Every image of one subject (arrays and affines) and its lesion records."""
    rng = np.random.default_rng(seed)
    affine = template["affine"]
    maps, coords = subject_maps(template, rng)
    counts = (rng.integers(5, 9), rng.integers(2, 5), rng.integers(1, 3)) if with_lesions else (0, 0, 0)
    occ, chi_add, records, taken = place_lesions(maps, coords, affine, rng, *counts)
    vein_occ = add_veins(maps, coords, rng, taken)
    chi, drawn = susceptibility(maps, rng, chi_add, vein_occ)
    r2s, r1, m0 = relaxation_maps(maps, occ, chi_add, vein_occ)
    signal = acquire(chi, r2s, r1, m0, maps["brain"], affine, rng)
    del chi, r2s, r1, m0
    brain_coarse = z_triangle(maps["brain"].astype(np.float32)) > 0.5
    swi, qsm, _ = reconstruct(signal, brain_coarse)
    swi *= brain_coarse
    t2, t2_affine = t2_image(maps["t1"], maps, occ, vein_occ, affine, rng)
    swi_affine = affine @ np.diag([*SWI_VOXEL_MM, 1.0])
    return {
        "swi": (swi / max(float(np.percentile(swi[brain_coarse], 99)), 1e-6) * 1000).astype(np.float32),
        "qsm": qsm,
        "t2": t2,
        "labels": truth_labels(occ, records, swi.shape),
        "affine": swi_affine,
        "t2_affine": t2_affine,
        "record": {"seed": seed, "susceptibility_ppm": drawn, "lesions": records},
    }


def write_subject(subject: dict, folder: Path) -> None:
    """``folder/sub-X_{swi,Chimap,T2w,dseg}.nii.gz`` and ``sub-X_lesions.json``, written whole or not at all."""
    import shutil

    import nibabel as nib

    name = folder.name
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for key, suffix in (("swi", "swi"), ("qsm", "Chimap"), ("t2", "T2w"), ("labels", "dseg")):
        grid = subject["t2_affine"] if key == "t2" else subject["affine"]
        nib.save(nib.Nifti1Image(subject[key], grid), partial / f"{name}_{suffix}.nii.gz")
    (partial / f"{name}_lesions.json").write_text(json.dumps(subject["record"], indent=1))
    partial.rename(folder)


def generate_set(cache: Path, template_cache: dict, name: str, count: int, seed: int, with_lesions: bool) -> Path:
    """``cache/name/sub-twNNN`` subjects, generated when missing."""
    folder = cache / name
    for index in range(count):
        subject_folder = folder / f"sub-tw{seed + index:04d}"
        if subject_folder.exists():
            continue
        if "template" not in template_cache:
            template_cache["template"] = prepare_template()
        start = time.perf_counter()
        write_subject(make_subject(template_cache["template"], seed + index, with_lesions), subject_folder)
        print(f"generated {subject_folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return folder


# --- scoring -------------------------------------------------------------------------------------------------------


def predict_options(no_rules: bool) -> dict:
    """``rules=False`` for ``predict_subject`` when asked and when this version has the keyword, else nothing."""
    import inspect

    from napari_deepmir.detection.pipeline import predict_subject

    if not no_rules:
        return {}
    if "rules" not in inspect.signature(predict_subject).parameters:
        print("predict_subject has no 'rules' keyword here: --no-rules ignored", file=sys.stderr)
        return {}
    return {"rules": False}


def evaluate_set(model, folder: Path, options: dict) -> dict:
    """Pooled lesion-wise metrics over the subjects of ``folder``, CMB sensitivity by size and location,
    calcifications predicted as lesions and the mean predict time."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_detection import calcifications_predicted

    from napari_deepmir.conventions import CLASS_NAMES
    from napari_deepmir.detection.pipeline import predict_subject
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.io.bids import find_subject_files, find_subject_folders
    from napari_deepmir.lesions.components import load_label_map
    from napari_deepmir.lesions.evaluate import compare_maps, lesion_metrics
    from napari_deepmir.training.common import pooled_metrics

    scores, seconds, calcified, groups = [], [], np.zeros(2, int), {}
    for subject_dir in find_subject_folders(folder):
        subject = load_subject_dir(subject_dir, only=tuple(model.card.modalities))
        truth = load_label_map(find_subject_files(subject_dir)["labels"]).data
        start = time.perf_counter()
        labels = predict_subject(subject, model, device="cpu", **options).labels
        seconds.append(time.perf_counter() - start)
        comparisons = compare_maps(truth, labels)
        scores.append({CLASS_NAMES[v]: lesion_metrics(**c.counts()) for v, c in comparisons.items()})
        calcified += calcifications_predicted(subject_dir, subject.affine, labels, truth)
        record = json.loads(next(subject_dir.glob("*_lesions.json")).read_text())
        for lesion in (m for m in record["lesions"] if m["kind"] == "cmb"):
            number = comparisons[1].truth.ids[_coarse_index(lesion["centre_vox"])]
            found = bool(number and comparisons[1].found[number - 1])
            size = "CMB < 3 mm" if lesion["diameter_mm"] < 3 else "CMB >= 3 mm"
            for group in (size, lesion["location"]):
                groups.setdefault(group, [0, 0])[0] += found
                groups[group][1] += 1
    return {
        "metrics": pooled_metrics(scores),
        "groups": groups,
        "calcified": tuple(int(n) for n in calcified),
        "seconds": float(np.mean(seconds)) if seconds else math.nan,
        "subjects": len(scores),
    }


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _group(groups: dict, name: str) -> str:
    found, count = groups.get(name, (0, 0))
    return f"{found}/{count}" if count else "n/a"


def table_row(model_name: str, set_name: str, result: dict) -> str:
    c, i = result["metrics"]["cmb"], result["metrics"]["iron"]
    groups = result["groups"]
    cells = [
        model_name,
        set_name,
        str(result["subjects"]),
        _cell(c["sensitivity"]),
        _cell(c["precision"]),
        f"{c['fp_per_subject']:.2f}",
        _cell(i["sensitivity"]),
        _cell(i["precision"]),
        f"{i['fp_per_subject']:.2f}",
        "{}/{}".format(*result["calcified"]),
        *(_group(groups, g) for g in ("CMB < 3 mm", "CMB >= 3 mm", "lobar", "deep", "infratentorial")),
        f"{result['seconds']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| model | set | subjects | CMB sens | CMB prec | CMB FP/subj | iron sens | iron prec | iron FP/subj "
    "| calcifications predicted | CMB < 3 mm | CMB >= 3 mm | lobar | deep | infratentorial | s/subject |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


# --- figure --------------------------------------------------------------------------------------------------------


def save_figure(subject_dir: Path, out: Path) -> None:
    """Axial SWI, QSM and T2 through the basal ganglia of one subject, truth outlined (red CMB, blue iron)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib

    name = subject_dir.name
    images = {k: nib.load(subject_dir / f"{name}_{k}.nii.gz") for k in ("swi", "Chimap", "T2w", "dseg")}
    labels = np.asarray(images["dseg"].dataobj)
    affine = images["swi"].affine
    z_of = [(affine @ [0, 0, k, 1])[2] for k in range(labels.shape[2])]
    candidates = [k for k, z in enumerate(z_of) if -4 <= z <= 12]
    k = max(
        candidates, key=lambda k: ((labels[:, :, k] == 2).sum() * 10 + (labels[:, :, k] == 1).sum(), -abs(z_of[k] - 4))
    )
    t2_img = images["T2w"]
    t2_k = int(np.clip(round(np.linalg.solve(t2_img.affine, [0, 0, z_of[k], 1])[2]), 0, t2_img.shape[2] - 1))
    panels = [
        ("SWI", np.asarray(images["swi"].dataobj)[:, :, k], "gray", None),
        ("QSM (ppm)", np.asarray(images["Chimap"].dataobj)[:, :, k], "gray", (-0.15, 0.25)),
        ("T2 (1 x 1 x 4 mm)", np.asarray(t2_img.dataobj)[:, :, t2_k], "gray", None),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(13, 5.2))
    for axis, (title, image, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits or np.percentile(image[image > 0], [1, 99.5])
        axis.imshow(image.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        if title != panels[2][0]:
            for value, colour in ((1, "red"), (2, "deepskyblue")):
                if (labels[:, :, k] == value).any():
                    axis.contour((labels[:, :, k] == value).T, levels=[0.5], colors=colour, linewidths=1.0)
        axis.set_title(title)
        axis.axis("off")
    figure.suptitle(f"{name}: MNI152 2009 anatomy, qsm-forward physics, slice z = {z_of[k]:.0f} mm (MNI)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)


# --- main ----------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="generated subjects are kept here and reused")
    parser.add_argument("--subjects", type=int, default=4, help="subjects with lesions")
    parser.add_argument("--normal", type=int, default=3, help="lesion-free subjects")
    parser.add_argument("--seed", type=int, default=7100)
    parser.add_argument("--model", nargs="+", default=["default"], help="shipped names or model folders")
    parser.add_argument("--no-rules", action="store_true", help="predict with rules=False (when the code has it)")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--figure", type=Path, default=None, help="save a PNG of the first subject with lesions")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    template_cache: dict = {}
    start = time.perf_counter()
    sets = {
        "with lesions": generate_set(args.cache, template_cache, "lesions", args.subjects, args.seed, True),
        "lesion-free": generate_set(args.cache, template_cache, "normal", args.normal, args.seed + 500, False),
    }
    print(f"subjects ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.figure:
        save_figure(min(sets["with lesions"].glob("sub-*")), args.figure)
    if args.generate_only:
        return 0

    from napari_deepmir.model.files import load_model
    from napari_deepmir.model.registry import resolve_model

    options = predict_options(args.no_rules)
    print(TABLE_HEADER)
    for choice in args.model:
        model = load_model(resolve_model(choice), "cpu")
        label = f"{model.card.name}{' (rules off)' if options else ''}"
        for set_name, folder in sets.items():
            print(table_row(label, set_name, evaluate_set(model, folder, options)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
